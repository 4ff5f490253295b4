"""``am status``'s and ``am list``'s outside calls, begun first thing: each engine's ``stats``
call for the container agents the state file says are running (for a status), and tmux's list
of sessions, start before am imports what reads their answers, so the calls, most of a
status's time, overlap am's own start-up (``am/prefetch.py``). If an agent ended meanwhile,
the list the backend asks for differs and it makes its own call.

The state file is read first, and tmux asked after: a spawn starts its session before it
records the agent as running, so a session a record calls running is always in the answer."""

import os

from am import enginestats, paths, prefetch
from am.record import detached
from am.store import open_store

_read: dict | None = None  # the state file's records as the first start read them


def start(agent_id: str | None = None, records: dict | None = None, engines: bool = True) -> None:
    """Start them for AGENT_ID's record, or for every record (RECORDS: the state file's, if
    read already; none without ENGINES), and tmux's list of sessions. Only a head start:
    where anything is amiss (AM_HOME or the state file unusable, a record no engine would
    take) it starts nothing, and the command's own steps report it or make the call
    themselves."""
    global _read
    try:
        layout = paths.layout()
        if records is None:
            records = _read = open_store(layout).agents()
        if agent_id is not None:
            records = {agent_id: records[agent_id]} if agent_id in records else {}
        if engines:  # a list asks no engine: no look at the run folder for one
            try:
                present = set(os.listdir(layout.run_text))
            except OSError:
                present = set()
            wanted = running(records, present)
            # The keeper reads the cgroups of the containers it holds: no engine call for those.
            ids = sorted(i for agents in wanted.values() for i in agents)
            kept = enginestats.ask_keeper(layout.run_text, ids) if ids else {}
            enginestats.keep(kept)
            for runtime, agents in wanted.items():
                names = sorted({c for i, c in agents.items() if i not in kept})
                if names:
                    prefetch.start(enginestats.argv(runtime, names))
        from am import session

        prefetch.start(session.list_sessions_argv())
    except Exception:  # noqa: BLE001 (hostile records: the backends meet them as before)
        return


def records_read() -> dict | None:
    """The records ``start`` read from the state file, once (None if it read none): the
    command's first round shows what its calls were begun for, without a second read."""
    global _read
    read, _read = _read, None
    return read


def running(records: dict, present: set[str]) -> dict[str, dict[str, str]]:
    """Engine -> agent id -> container name, of RECORDS that run detached there and have no
    exit file among PRESENT, the run folder's names (pure): whose figures ``am status``
    will ask for when their views say running."""
    out: dict[str, dict[str, str]] = {}
    for r in records.values():
        if not isinstance(r, dict):
            continue
        runtime, container = r.get("runtime"), r.get("container")
        if (
            isinstance(runtime, str)
            and detached(r)
            and runtime in enginestats.SHAPES
            and r.get("status") == "running"
            and isinstance(container, str)
            and container
            and isinstance(r.get("id"), str)
            and f"{r['id']}.exit.json" not in present
        ):
            out.setdefault(runtime, {})[r["id"]] = container
    return out

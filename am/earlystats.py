"""``am status``'s engine calls, begun first thing: each engine's ``stats`` call for the container
agents the state file says are running starts before am imports what reads its answer, so the
call, most of a status's time, overlaps am's own start-up (``am/prefetch.py``). If an agent
ended meanwhile, the list the backend asks for differs and it makes its own call."""

import os

from am import enginestats, paths, prefetch
from am.errors import AmError
from am.record import detached
from am.store import open_store


def start(agent_id: str | None = None) -> None:
    """Start them for AGENT_ID's record, or for every record; nothing where the state file or
    AM_HOME is unusable (the command's own read reports it)."""
    try:
        layout = paths.layout()
        records = open_store(layout).agents()
    except AmError:
        return
    if agent_id is not None:
        records = {agent_id: records[agent_id]} if agent_id in records else {}
    try:
        present = set(os.listdir(layout.run_text))
    except OSError:
        present = set()
    for runtime, names in running(records, present).items():
        prefetch.start(enginestats.argv(runtime, names))


def running(records: dict, present: set[str]) -> dict[str, list[str]]:
    """Engine -> the sorted container names of RECORDS that run detached there and have no
    exit file among PRESENT, the run folder's names (pure): what ``Engine.stats`` will ask
    for when their views say running."""
    out: dict[str, set[str]] = {}
    for r in records.values():
        if not isinstance(r, dict):
            continue
        runtime, container = r.get("runtime"), r.get("container")
        if (
            detached(r)
            and runtime in enginestats.SHAPES
            and r.get("status") == "running"
            and isinstance(container, str)
            and container
            and f"{r.get('id')}.exit.json" not in present
        ):
            out.setdefault(runtime, set()).add(container)
    return {runtime: sorted(names) for runtime, names in out.items()}

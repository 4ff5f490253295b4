"""Live status: the state file reconciled against tmux in one call, however many agents."""

import json
import sys
from pathlib import Path

from am import paths, session
from am.store import open_store

STATUSES = ("running", "stopped", "exited", "error", "starting")


def read_exit(path: Path | str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_files(run: str) -> set[str]:
    """The names in the run folder, read once: most agents have no exit or health file, and
    one listing costs less than a failed open for each."""
    import os

    try:
        return set(os.listdir(run))
    except OSError:
        return set()


def detached(record: dict) -> bool:
    """Whether the agent runs detached in a local or remote engine, looked after by am's keeper
    (a tmux agent, and a Kubernetes agent's ``kubectl attach``, run in a tmux session)."""
    return record.get("mode") == "container" and record.get("runtime") != "kubernetes"


def derive(record: dict, session_alive: bool, exit_info: dict | None) -> dict:
    """The user-facing view of one record given what is live (pure)."""
    view = dict(record)
    intent = record.get("status")
    view["exit_code"] = record.get("exit_code")
    view["oom_killed"] = bool(record.get("oom_killed"))
    if intent == "stopped":
        status = "stopped"
    elif intent == "starting":
        # A spawn still at work, or one that died before it finished: an error even when its
        # session lives on (the same verdict as 'am doctor', whose --fix settles it).
        from am.drift import spawn_alive

        status = "starting" if spawn_alive(record) else "error"
    elif session_alive:
        # A tmux agent's session lives as long as the agent; a container agent runs until the
        # keeper records how it ended.
        status = "running"
    else:
        status = "exited"
        if exit_info:
            view["exit_code"] = exit_info.get("exit_code")
            view["oom_killed"] = bool(exit_info.get("oom_killed"))
            view["finished"] = exit_info.get("finished")
    view["status"] = status
    return view


def views(records: dict[str, dict] | None = None, layout=None) -> list[dict]:
    """Every agent with its live status, in creation order."""
    layout = layout or paths.layout()
    everyone = records is None
    if everyone:
        records = open_store(layout).agents()
    live_sessions = session.sessions()
    home = str(layout.root)
    known = {r.get("session") for r in records.values()}
    orphans = sorted(n for n, owner in live_sessions.items()
                     if owner == home and n.startswith("am-") and n not in known)
    if everyone and orphans:
        print(f"am: warning: {len(orphans)} session(s) with no agent record "
              f"({', '.join(orphans[:3])}{', ...' if len(orphans) > 3 else ''}): "
              "run 'am doctor --fix'", file=sys.stderr)
    out = []
    keeper_checked = False
    run = str(layout.run)  # paths as text: a Path per agent costs more than the rest
    present = run_files(run)
    for r in sorted(records.values(), key=lambda r: (str(r.get("created") or ""), r["id"])):
        name = f"{r['id']}.exit.json"
        exit_file = f"{run}/{name}" if name in present else None
        if detached(r):
            # Detached in its engine: it runs until am's keeper writes how it ended.
            exit_info = exit_file and read_exit(exit_file)
            alive = r.get("status") == "running" and exit_info is None
            if alive and not keeper_checked:
                keeper_checked = True
                from am import keeper

                keeper.ensure(layout)  # a keeper killed meanwhile: the next one catches up
        else:
            alive = r.get("session") in live_sessions
            exit_info = None if alive or not exit_file else read_exit(exit_file)
        out.append(derive(r, alive, exit_info))
    return out


def view(agent_id: str, layout=None) -> dict:
    """One agent's live view; a clear error for an unknown id."""
    layout = layout or paths.layout()
    record = open_store(layout).get(agent_id)
    return views({agent_id: record}, layout)[0]

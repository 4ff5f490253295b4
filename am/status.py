"""Live status: the state file reconciled against tmux in one call, however many agents."""

import sys

from am import files, paths, runfiles, session
from am.record import Status, detached  # noqa: F401 (detached: asked of status)
from am.store import open_store

read_exit = files.read_json_dict


def run_files(run: str) -> set[str]:
    """The names in the run folder, read once: most agents have no exit or health file, and
    one listing costs less than a failed open for each."""
    import os

    try:
        return set(os.listdir(run))
    except OSError:
        return set()


def spawn_alive(record: dict) -> bool:
    """Whether the spawn that made RECORD (its ``spawn_pid``) is still at work."""
    pid = record.get("spawn_pid")
    if not pid:
        return False
    try:
        import psutil

        from am import clock

        p = psutil.Process(pid)
        created = clock.epoch(record.get("created")) or 0.0
        return "am" in " ".join(p.cmdline()) and p.create_time() <= created + 5
    except Exception:
        return False


def maker(record: dict) -> str:
    """The command that makes (or made) RECORD's agent."""
    return "'am restore'" if record.get("restored_from") else "'am spawn'"


def refuse_while_spawning(record: dict) -> None:
    """An error while RECORD's spawn or restore is still at work: it still writes the
    workspace until it ends, 'am stop' or not."""
    if spawn_alive(record):
        from am.errors import AmError

        raise AmError(
            f"agent {record['id']} is still being made by its {maker(record)} (process "
            f"{record['spawn_pid']})",
            "try again once that has ended",
        )


def as_recorded(record: dict) -> dict:
    """The user-facing view of one record as the record says it, nothing live asked (pure):
    what ``am info`` shows of an invalid one."""
    view = dict(record)
    view["exit_code"] = record.get("exit_code")
    view["oom_killed"] = bool(record.get("oom_killed"))
    view["status"] = str(record.get("status"))
    return view


def derive(record: dict, session_alive: bool, exit_info: dict | None) -> dict:
    """The user-facing view of one record given what is live (pure)."""
    view = as_recorded(record)
    intent = record.get("status")
    if intent == Status.STOPPED:
        status = Status.STOPPED
    elif intent == Status.STARTING:
        # A spawn still at work, or one that died before it finished: an error even when its
        # session lives on (the same verdict as 'am doctor', whose --fix settles it).
        status = Status.STARTING if spawn_alive(record) else Status.ERROR
    elif session_alive:
        # A tmux agent's session lives as long as the agent; a container agent runs until the
        # keeper records how it ended.
        status = Status.RUNNING
    else:
        status = Status.EXITED
        if exit_info:
            view["exit_code"] = exit_info.get("exit_code")
            view["oom_killed"] = bool(exit_info.get("oom_killed"))
            view["finished"] = exit_info.get("finished")
    view["status"] = str(status)  # a plain word, as the record's own
    return view


def views(
    records: dict[str, dict] | None = None, layout=None, everyone: bool | None = None
) -> list[dict]:
    """Every agent with its live status, in creation order; RECORDS: the state file's if not
    given. EVERYONE (by default: no RECORDS given) says them all, so sessions of no record are
    reported."""
    layout = layout or paths.layout()
    if everyone is None:
        everyone = records is None
    if records is None:
        records = open_store(layout).agents()
    live_sessions = session.sessions()
    home = layout.root_text
    orphans = session.orphans(live_sessions, records, home)
    if everyone and orphans:
        print(
            f"am: warning: {len(orphans)} session(s) with no agent record "
            f"({', '.join(orphans[:3])}{', ...' if len(orphans) > 3 else ''}): "
            "run 'am doctor --fix'",
            file=sys.stderr,
        )
    out = []
    keeper_checked = False
    run = layout.run_text  # paths as text: a Path per agent costs more than the rest
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
                # A keeper killed meanwhile: the next one catches up.
                if not runfiles.keeper_alive(run):
                    from am import keepersock

                    keepersock.start(layout)
        else:
            name = r.get("session")
            alive = isinstance(name, str) and name in live_sessions  # a hand edit: any type
            exit_info = None if alive or not exit_file else read_exit(exit_file)
        out.append(derive(r, alive, exit_info))
    return out


def view(agent_id: str, layout=None) -> dict:
    """One agent's live view; a clear error for an unknown id."""
    layout = layout or paths.layout()
    record = open_store(layout).get(agent_id)
    return views({agent_id: record}, layout)[0]

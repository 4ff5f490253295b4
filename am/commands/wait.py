"""``am wait``: block until an agent ends or goes idle; the exit status says which.

Polling is cheap: each round is a few ``stat`` calls (the agent's exit file, which its
supervisor writes when it ends; the state file; the log, whose age is the idle time), and the
state file is read again only when it changed. tmux is asked (one call) only every few
seconds, to notice a session that ended without its supervisor writing anything.
"""

import os
import sys
import time

from am import health, output, paths, status
from am.errors import AmError
from am.record import Status

EXITED_OK = 0  # the agent exited with code 0
IDLE = 3  # it is running and printed nothing for the idle time
EXITED_FAILED = 4  # it exited with another code, was OOM-killed, or its spawn failed
STOPPED = 5  # it was stopped with 'am stop'
TIMEOUT = 124  # --timeout passed first (as timeout(1))

POLL = 0.25  # seconds between cheap checks
CHECK_SESSION = 3.0  # seconds between calls to tmux


def outcome(view: dict, until: str, idle_for: float | None, idle_after: float):
    """(event, exit status) if VIEW ends the wait, else None (pure)."""
    state = view["status"]
    if state == Status.STOPPED:
        return "stopped", STOPPED
    if state in (Status.EXITED, Status.ERROR):
        ok = state == Status.EXITED and view.get("exit_code") == 0 and not view.get("oom_killed")
        return state, EXITED_OK if ok else EXITED_FAILED
    if (
        state == Status.RUNNING
        and until in ("idle", "any")
        and idle_for is not None
        and idle_for >= idle_after
    ):
        return "idle", IDLE
    return None


def _mtime(path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def run(args) -> int:
    from am import config

    layout = paths.layout()
    idle_after = args.idle_after
    if idle_after is None:
        idle_after = config.load(layout).resolve()["idle_after"].value
    elif not idle_after > 0:
        raise AmError("--idle-after must be a positive number of seconds")
    if args.timeout is not None and args.timeout < 0:
        raise AmError("--timeout must be 0 or more seconds")
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    view = status.view(args.id, layout)  # also: a clear error for an unknown id
    checked = time.monotonic()
    exit_file = layout.exit_file(args.id)
    seen = (_mtime(layout.state_file), _mtime(exit_file))
    while True:
        log_time = health.last_output(view)
        idle_for = None if log_time is None else time.time() - log_time
        done = outcome(view, args.until, idle_for, idle_after)
        if done:
            return report(args, view, *done)
        if deadline is not None and time.monotonic() >= deadline:
            return report(args, view, "timeout", TIMEOUT)
        time.sleep(POLL)
        now = (_mtime(layout.state_file), _mtime(exit_file))
        # An exit file is written just before a tmux agent's session ends: look again at
        # once until the session has gone, not CHECK_SESSION later.
        if now != seen or now[1] is not None or time.monotonic() - checked >= CHECK_SESSION:
            seen, checked = now, time.monotonic()
            view = status.view(args.id, layout)


def report(args, view: dict, event: str, code: int) -> int:
    """Say what ended the wait: a word on stdout (or JSON), and the exit status."""
    if args.json:
        output.print_json(
            {
                "id": view["id"],
                "event": event,
                "status": view["status"],
                "exit_code": view.get("exit_code"),
                "oom_killed": bool(view.get("oom_killed")),
            }
        )
    else:
        print(output.status_text(view) if event == "exited" else event)
    sys.stdout.flush()
    return code

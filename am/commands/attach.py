"""``am attach``: the agent's own terminal: its tmux session, or its container's terminal."""

import sys

from am import paths, records, session, status
from am.errors import AmError
from am.record import Status

DETACH_KEYS = "ctrl-b,d"  # as tmux's default prefix and detach key


def attach_argv(runtime: str, container: str) -> list[str]:
    """The engine's own attach, detaching on Ctrl-b d as a tmux session does; Ctrl-C and the
    rest go to the agent."""
    return [runtime, "attach", "--detach-keys", DETACH_KEYS, "--sig-proxy=false", container]


def run(args) -> int:
    layout = paths.layout()
    view = records.check(status.view(args.id), layout, args.id)
    if view["status"] != Status.RUNNING:
        raise AmError(
            f"agent {args.id} is not running (status: {view['status']})",
            f"see its output with 'am logs {args.id}'",
        )
    if not status.detached(view):
        return session.attach(view["session"], lambda: need_terminal(args.id))
    need_terminal(args.id)
    from am import proc
    from am.commands.logs import screen

    # The engine replays nothing on attach: show the end of the log first, then its terminal.
    sys.stdout.buffer.write(screen(view, layout))
    sys.stdout.buffer.write(
        b"\r\n[am: attached to " + view["id"].encode() + b"; Ctrl-b d detaches]\r\n"
    )
    sys.stdout.flush()

    from am import ptyrelay

    argv = attach_argv(view["runtime"], view["container"])
    if not proc.which(argv[0]):
        raise proc.NotFound(f"{argv[0]} not found in PATH")
    # am's own terminal relay detaches on Ctrl-b d (the engine's client may not: ptyrelay).
    # 0 when the user detached; else the client's own status (the agent ended, or it failed)
    return ptyrelay.relay(argv)


def need_terminal(agent_id: str) -> None:
    """Refuse, in am's words, an attach whose input is no terminal (tmux's own is 'open
    terminal failed: not a terminal')."""
    if not sys.stdin.isatty():
        raise AmError(
            f"am attach needs a terminal: its input is not one (agent {agent_id})",
            f"run it in a terminal; from a script, 'am send {agent_id} TEXT' types into it",
        )

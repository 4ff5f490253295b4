"""tmux sessions: every agent, in either mode, lives in a host tmux session ``am-<id>``.

In tmux mode the session runs the agent itself; in container mode it runs the engine's attached
client. Either way the session gives ``am attach`` the agent's own terminal and, through
``pipe-pane``, a log file on the host that outlives the session and the container.

tmux parses its own arguments further: an argument ending in ``;`` separates commands and some
arguments are format-expanded (``#{...}``, ``#(...)`` runs a shell), so everything am passes is
escaped by ``_arg`` and ``_fmt``; the agent's own command line never reaches tmux at all (the
supervisor reads it from a file).
"""

from __future__ import annotations

import os

from am import proc
from am.errors import AmError

TYPE_CHECKING = False  # am list imports this module: no typing, no pathlib
if TYPE_CHECKING:
    from pathlib import Path

HOME_OPTION = "@am_home"


def _arg(value: str) -> str:
    """Keep tmux from reading a trailing ';' as a command separator."""
    return value[:-1] + "\\;" if value.endswith(";") else value


def _fmt(value: str) -> str:
    """Keep tmux from format-expanding VALUE."""
    return value.replace("#", "##")


def target(name: str) -> str:
    """An exact-match tmux target (a bare name would also match by prefix)."""
    return f"={name}:"


def new_session_argv(
    name: str, argv: list[str], log: Path, home: str, env: dict[str, str] | None = None
) -> list[str]:
    """Start NAME detached running ARGV, tag it with HOME, and pipe its output into LOG."""
    new = ["new-session", "-d", "-s", name, "-x", "200", "-y", "50"]
    for k, v in (env or {}).items():
        new += ["-e", f"{k}={v}"]
    new += ["--", *argv]
    tag = ["set-option", "-t", target(name), HOME_OPTION, home]
    # Same command list as new-session: the pipe is in place before tmux reads any output.
    import shlex

    pipe = ["pipe-pane", "-t", target(name), "-o", "exec cat >> " + _fmt(shlex.quote(str(log)))]
    # Separators are placed here, never recognised by value: an argument that is itself ';'
    # (as in `find -exec ... ;`) is escaped like any other.
    cmd = ["tmux"]
    for i, command in enumerate((new, tag, pipe)):
        cmd += [";"] if i else []
        cmd += [_arg(a) for a in command]
    return cmd


def list_sessions_argv() -> list[str]:
    return ["tmux", "list-sessions", "-F", f"#{{session_name}}\t#{{{HOME_OPTION}}}"]


def kill_session_argv(name: str) -> list[str]:
    return ["tmux", "kill-session", "-t", target(name)]


def attach_argv(name: str, socket: str | None = None) -> list[str]:
    """Attach this terminal to NAME (on the server at SOCKET, when nested inside tmux)."""
    return ["tmux", *(["-S", socket] if socket else []), "attach-session", "-t", target(name)]


def switch_argv(name: str, client: str) -> list[str]:
    """Show NAME on CLIENT, and only on it: without -c tmux picks its 'best' client, which is
    someone else's terminal when the caller's own session has none."""
    return ["tmux", "switch-client", "-c", client, "-t", target(name)]


def own_clients_argv(pane: str) -> list[str]:
    """The clients showing the session of PANE (the caller's pane), with their last activity."""
    return ["tmux", "list-clients", "-t", pane, "-F", "#{client_activity}\t#{client_name}"]


def paste_argv(name: str, buffer: str, enter: bool) -> list[str]:
    """Type the text on tmux's standard input into session NAME, as a paste: read into BUFFER
    (``load-buffer -``: the text is data, never a command, key name or format), pasted and
    deleted, then Enter. ``-p``: bracketed, if the program asked for it, so a multi-line text
    arrives as one paste rather than one submission a line."""
    cmd = [
        "tmux",
        "load-buffer",
        "-b",
        buffer,
        "-",
        ";",
        "paste-buffer",
        "-d",
        "-p",
        "-b",
        buffer,
        "-t",
        target(name),
    ]
    return cmd + ([";", "send-keys", "-t", target(name), "Enter"] if enter else [])


def paste(name: str, text: str, enter: bool = True) -> None:
    """Type TEXT into session NAME's terminal (see ``paste_argv``)."""
    buffer = f"am-send-{os.getpid()}-{os.urandom(4).hex()}"
    if text:
        res = proc.run(paste_argv(name, buffer, enter), stdin=text)
    else:  # nothing to paste (tmux refuses an empty buffer): only the Enter key
        res = proc.run(["tmux", "send-keys", "-t", target(name), "Enter"])
    if not res.ok:
        proc.run(["tmux", "delete-buffer", "-b", buffer])
        raise AmError(f"cannot type into session {name}: {res.brief()}")


def capture_argv(name: str) -> list[str]:
    """The visible screen of session NAME, its colours and attributes as SGR sequences."""
    return ["tmux", "capture-pane", "-p", "-e", "-t", target(name)]


def capture(name: str) -> str | None:
    """Session NAME's screen (see ``capture_argv``), or None if it has none (it ended)."""
    try:
        res = proc.run(capture_argv(name), timeout=10)
    except proc.NotFound:
        return None
    return res.out if res.ok else None


# What tmux's client says when the server it reached exits before answering: the server
# leaves once its last session has ended (an agent that just finished), and a client that
# connected in that moment finds it gone. Nothing was made; the next try starts a new server.
SERVER_GONE = "server exited unexpectedly"
START_TRIES = 5


def start(name: str, argv: list[str], log: Path, home: str, env=None) -> None:
    from am import paths

    paths.private_dir(log.parent)
    log.touch()
    # If this starts the tmux server, it keeps the user's own umask, not am's: the user's
    # later sessions in it are theirs (the supervisor sets its own).
    for _ in range(START_TRIES):
        with paths.umask(paths.user_umask()):
            # Settled: a client killed mid-way (by an interrupt) could leave its session made
            # after the spawn's undo looked for it.
            res = proc.run(new_session_argv(name, argv, log, home, env), settle=True)
        if res.ok or SERVER_GONE not in res.err:
            break
    if not res.ok:
        raise AmError(f"cannot start tmux session {name}: {res.brief()}")


def sessions() -> dict[str, str]:
    """All tmux sessions, name -> am home they belong to ('' if not am's), in one tmux call."""
    try:
        res = proc.quick(list_sessions_argv())
    except proc.NotFound:
        return {}
    if not res.ok:  # no server running: no sessions
        return {}
    out = {}
    for line in res.out.splitlines():
        name, _, home = line.partition("\t")
        out[name] = home
    return out


def orphans(live: dict[str, str], records: dict[str, dict], home: str) -> list[str]:
    """Sessions of LIVE (``sessions()``) that am made for HOME and that no record names
    (pure)."""
    known = {r.get("session") for r in records.values() if isinstance(r.get("session"), str)}
    return sorted(
        name
        for name, owner in live.items()
        if owner == home and name.startswith("am-") and name not in known
    )


def kill(name: str) -> None:
    try:
        proc.run(kill_session_argv(name))
    except proc.NotFound:
        pass


def own_client(pane: str | None) -> str | None:
    """The most recently active client showing the caller's own session (PANE's), or None."""
    if not pane:
        return None
    res = proc.run(own_clients_argv(pane))
    clients = [line.split("\t", 1) for line in res.out.splitlines() if "\t" in line]
    if not res.ok or not clients:
        return None
    return max(clients, key=lambda c: int(c[0]) if c[0].isdigit() else 0)[1]


def kill_own(name: str, home: str) -> None:
    """Kill session NAME if, and only if, it carries HOME as its @am_home."""
    if sessions().get(name) == home:
        kill(name)


def attach(name: str, need_terminal=lambda: None) -> int:
    """Attach this terminal to session NAME. Inside tmux, switch the caller's own client to
    it; a caller whose session has no client (a script in a detached session) attaches nested,
    in its own pane, and never moves another client. NEED_TERMINAL() comes first where tmux
    needs this process's terminal (all but the switch): it raises if there is none."""
    inside = os.environ.get("TMUX")
    if not inside:
        need_terminal()
        return proc.run_fg(attach_argv(name))
    client = own_client(os.environ.get("TMUX_PANE"))
    if client:
        res = proc.run(switch_argv(name, client))
        if not res.ok:
            raise AmError(f"cannot switch to session {name}: {res.brief()}")
        return 0
    need_terminal()
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    return proc.run_fg(attach_argv(name, inside.rsplit(",", 2)[0]), env=env)


def server_groups() -> tuple[int | None, set[int] | None]:
    """The tmux server's pid and the groups it runs with (None when there is none to ask)."""
    try:
        res = proc.run(["tmux", "display-message", "-p", "#{pid}"])
    except proc.NotFound:
        return None, None
    pid = res.out.strip()
    if not res.ok or not pid.isdigit():
        return None, None
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:
        return int(pid), None
    for line in status.splitlines():
        if line.startswith("Groups:"):
            return int(pid), {int(g) for g in line.split()[1:]}
    return int(pid), None


def require_tmux() -> None:
    if not proc.which("tmux"):
        raise AmError("tmux not found in PATH", "install it, e.g. 'apt-get install tmux'")

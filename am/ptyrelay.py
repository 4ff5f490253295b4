"""The terminal between the user and a container agent's attach client, with am's own detach.

The engine's attach client runs on a pseudo-terminal of its own; the user's keys pass through
to it, and Ctrl-b d (tmux's detach, as for a tmux agent) ends the client and returns 0. am
detaches itself because podman 4.3's client here ignores its ``--detach-keys`` (and its
default ones): the keys reach the agent and the user has no way out but closing the terminal.
"""

import os
import select
import signal
import sys

PREFIX = b"\x02"  # Ctrl-b
DETACH = PREFIX + b"d"


def split_detach(pending: bytes, data: bytes) -> tuple[bytes, bytes, bool]:
    """What of PENDING + DATA goes to the agent now, what is held back (a trailing Ctrl-b
    that may start the detach), and whether the user detached (pure)."""
    buf = pending + data
    at = buf.find(DETACH)
    if at >= 0:
        return buf[:at], b"", True
    if buf.endswith(PREFIX):
        return buf[:-1], PREFIX, False
    return buf, b"", False


def relay(argv: list[str]) -> int:
    """Run ARGV on a new pseudo-terminal wired to this one; its exit code, or 0 on detach."""
    import fcntl
    import pty
    import termios
    import tty

    pid, master = pty.fork()
    if pid == 0:  # the child: the engine's client
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    on_tty = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if on_tty else None

    def resize(*_):
        if on_tty:
            fcntl.ioctl(
                master, termios.TIOCSWINSZ, fcntl.ioctl(stdin, termios.TIOCGWINSZ, b"\0" * 8)
            )

    resize()
    previous = signal.signal(signal.SIGWINCH, resize)
    detached, pending = False, b""
    try:
        if on_tty:
            tty.setraw(stdin)
        sources = [master, stdin]
        while not detached:
            try:
                ready, _, _ = select.select(sources, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    out = os.read(master, 1 << 16)
                except OSError:  # EIO: the client ended and its terminal closed
                    out = b""
                if not out:
                    break
                os.write(stdout, out)
            if stdin in ready:
                keys = os.read(stdin, 4096)
                if not keys:
                    sources.remove(stdin)  # no more input; the agent's output still comes
                    continue
                now, pending, detached = split_detach(pending, keys)
                if now:
                    os.write(master, now)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous)
    if detached:
        # The client only (the agent runs on); docker's ignores SIGTERM with --sig-proxy=false.
        os.kill(pid, signal.SIGKILL)
    _, raw = os.waitpid(pid, 0)
    os.close(master)
    if detached:
        return 0
    return os.waitstatus_to_exitcode(raw) if os.WIFEXITED(raw) else 128 + os.WTERMSIG(raw)

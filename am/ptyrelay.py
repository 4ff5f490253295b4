"""The terminal between the user and a container agent's attach client, with am's own detach.

The engine's attach client runs on a pseudo-terminal of its own; the user's keys pass through
to it, and Ctrl-b d (tmux's detach, as for a tmux agent) ends the client and returns 0. am
detaches itself because podman 4.3's client here ignores its ``--detach-keys`` (and its
default ones): the keys reach the agent and the user has no way out but closing the terminal.
The keys go through a bounded buffer, never a blocking write, so an agent that stops reading
its input can neither stall its output nor keep the user from detaching.
"""

import os
import select
import signal

from am import wakeup

PREFIX = b"\x02"  # Ctrl-b
DETACH = PREFIX + b"d"
KEYS_HELD = 1 << 20  # typed ahead of an agent that does not read; more is dropped


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


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _leave(signum, _frame):
    raise SystemExit(128 + signum)  # through the finally below, which restores the terminal


def relay(argv: list[str]) -> int:
    """Run ARGV on a new pseudo-terminal wired to this one (stdin must be a terminal); its
    exit code, or 0 when the user detached."""
    import fcntl
    import pty
    import termios
    import tty

    stdin, stdout = 0, 1  # the process's own terminal, whatever sys.stdin was replaced by
    saved = termios.tcgetattr(stdin)
    pid, master = pty.fork()
    if pid == 0:  # the child: the engine's client
        try:
            os.execvp(argv[0], argv)
        except OSError as e:
            os.write(2, f"am: error: cannot run {argv[0]}: {e.strerror}\r\n".encode())
        os._exit(127)

    def resize(*_):
        fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(stdin, termios.TIOCGWINSZ, b"\0" * 8))

    handlers = {s: signal.getsignal(s) for s in (signal.SIGWINCH, signal.SIGTERM, signal.SIGHUP)}
    detached = ended = False
    pending, to_agent = b"", bytearray()
    # A signal's byte wakes the select below, so that its handler runs at once: one that
    # came just before the select began (or that another thread took) would else wait for
    # the next key or output.
    woken, wake = wakeup.pipe()
    wakeup_before = None
    try:
        resize()
        signal.signal(signal.SIGWINCH, resize)
        signal.signal(signal.SIGTERM, _leave)
        signal.signal(signal.SIGHUP, _leave)
        wakeup_before = signal.set_wakeup_fd(wake, warn_on_full_buffer=False)
        tty.setraw(stdin)
        os.set_blocking(master, False)
        while not detached:
            ready, writable, _ = select.select(
                [master, stdin, woken], [master] if to_agent else [], []
            )
            if woken in ready:
                wakeup.drain(woken)  # the handlers run as Python goes on
            if writable:
                try:
                    del to_agent[: os.write(master, to_agent)]
                except BlockingIOError:
                    pass
                except OSError:
                    ended = True  # the client's side is gone
                    break
            if master in ready:
                try:
                    out = os.read(master, 1 << 16)
                except BlockingIOError:
                    out = None
                except OSError:  # EIO: the client ended and its terminal closed
                    out = b""
                if out == b"":
                    ended = True
                    break
                if out:
                    write_all(stdout, out)
            if stdin in ready:
                keys = os.read(stdin, 4096)
                if not keys:
                    break  # the user's terminal is gone: leave the agent running
                now, pending, detached = split_detach(pending, keys)
                to_agent += now[: max(0, KEYS_HELD - len(to_agent))]
    finally:
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        if wakeup_before is not None:
            signal.set_wakeup_fd(wakeup_before)
        os.close(woken)
        os.close(wake)
        for s, h in handlers.items():
            signal.signal(s, h)
        if not ended:
            # Detached, or leaving: the client only (the agent runs on); docker's ignores
            # SIGTERM with --sig-proxy=false.
            os.kill(pid, signal.SIGKILL)
        _, raw = os.waitpid(pid, 0)
        os.close(master)
    if not ended:
        return 0
    return os.WEXITSTATUS(raw) if os.WIFEXITED(raw) else 128 + os.WTERMSIG(raw)

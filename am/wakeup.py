"""A pipe for ``signal.set_wakeup_fd``: the signal module writes a byte to it for each
signal, so a wait on it (poll, select) ends when a signal comes, even one that came just
before the wait began or that another thread took; the signal's Python handler then runs
as Python goes on."""

import os


def pipe() -> tuple[int, int]:
    """A new (read, write) pair, both ends non-blocking (as set_wakeup_fd needs its end),
    closed on exec."""
    return os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)


def drain(fd: int) -> None:
    """Read what is waiting in the read end FD, and let it go."""
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass

"""The start gate of a local podman agent: one ``podman run --detach`` instead of ``create``,
``init`` and ``start`` (three engine processes, the dearest part of a spawn at scale), and
still not a byte of the agent's output before am's keeper holds its terminal.

The container's first command is a shell that waits on a FIFO, bind-mounted from am's run
folder, and then becomes the agent's command. The keeper attaches to the terminal, and only
then writes the one line that lets it go (``release``), and removes the FIFO's host path.
A read-only mount does not stop writes to a FIFO, so the agent (the FIFO's owner under a
rootless podman) can write to it once it runs: nobody reads it then, and each start has a new
FIFO, which only the watch that saw it releases.
"""

import errno
import os
import select
import stat
import time
from pathlib import Path

TARGET = "/run/am-gate"  # where the FIFO is in the container
# $0 is a name for error messages; the agent's command follows as "$@". A gate that cannot
# be read is said, and the agent never runs unheld.
SCRIPT = f'read -r _ < {TARGET} && exec "$@"'
WAIT = 60.0  # seconds the keeper waits for the container's shell to open the FIFO


def command(argv: list[str]) -> list[str]:
    """ARGV behind the gate."""
    return ["sh", "-c", SCRIPT, "am-gate", *argv]


def make(path: Path) -> tuple[int, int]:
    """A fresh FIFO at PATH (a stale one, of a start that failed, replaced), readable by the
    agent's user, whoever that is inside; its (st_dev, st_ino), which names this one."""
    from am import paths

    path.unlink(missing_ok=True)
    with paths.umask(0o022):  # am's own (077) would leave it unreadable to the agent's user
        os.mkfifo(path, 0o644)
    st = os.lstat(path)
    return st.st_dev, st.st_ino


def discard(path: Path, same: tuple[int, int] | None = None) -> None:
    """Remove the FIFO at PATH; with SAME, only if it is still that one (another start of
    the agent may have made its own since)."""
    try:
        if same is not None:
            st = os.lstat(path)
            if (st.st_dev, st.st_ino) != same:
                return
        path.unlink()
    except FileNotFoundError:
        pass


def release(path: Path, running=lambda: True, same=None, wait: float = WAIT) -> bool:
    """Let the command waiting on the FIFO PATH go: True once it has its line, or when there
    is no gate and no SAME (released before). False when no reader came within WAIT
    seconds, RUNNING() turned false meanwhile (checked each second), or PATH is no longer
    the FIFO SAME (st_dev, st_ino): a later start's gate is never released by the watch of
    an earlier one."""
    deadline = time.monotonic() + wait
    checked = time.monotonic()
    while True:
        try:
            if same is not None:
                # Never open another start's FIFO: a writer that leaves without the line
                # would end its shell (EOF), and so that agent.
                st = os.lstat(path)
                if (st.st_dev, st.st_ino) != same:
                    return False
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return same is None  # SAME's FIFO is gone: never delivered
        except OSError as e:
            # ENXIO: nobody reads it yet (the container's shell is starting)
            if e.errno != errno.ENXIO or time.monotonic() > deadline:
                return False
            if time.monotonic() - checked > 1:
                checked = time.monotonic()
                if not running():
                    return False
            time.sleep(0.005)
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISFIFO(st.st_mode) or same not in (None, (st.st_dev, st.st_ino)):
                return False
            os.write(fd, b"go\n")
            # Its reader closes the FIFO once it has the line, right before it becomes the
            # agent's command: a writer sees that as POLLERR. Returning then, not at the
            # write, lets the spawn's look at an agent that ends at once see its end.
            poll = select.poll()
            poll.register(fd, 0)
            poll.poll(max(0.0, deadline - time.monotonic()) * 1000)
        except OSError:  # EPIPE: its reader went between the open and the write
            return False
        finally:
            os.close(fd)
        discard(path, same)
        return True

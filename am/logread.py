"""Reading an agent's log while it is written and cut (``am logs``, ``am ui``, ``am attach``).

A log is cut at ``logs.max_size`` in one of two ways. The keeper makes a new log and renames
it into place, the old one becoming ``.log.1`` (``runfiles.rotate_written``). A tmux agent's
supervisor cuts in place, under an exclusive flock: the log's end to a new ``.log.1``, the
byte of the old log it ends at to ``.log.1.at``, then the log emptied (``supervise``). Here
both parts are read under a shared flock, so as of one moment, and a follower tells the cuts
apart by the files' identities: it prints each byte once, across either kind.
"""

import contextlib
import os
import time
from pathlib import Path

from am import files

ROTATED = ".1"
CUT_AT = ".1.at"


open_log = files.open_regular  # never through a link, never waiting on a FIFO


def ident(path) -> tuple[int, int] | None:
    """PATH's file, as (device, inode); None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def ident_of(f) -> tuple[int, int]:
    st = os.fstat(f.fileno())
    return st.st_dev, st.st_ino


@contextlib.contextmanager
def steady(f, wait: float = 2.0):
    """Hold a shared flock on the open log F for the block (read only in it: a paused pager
    must not hold the supervisor's cut). Given up after WAIT seconds: the log is read anyway."""
    import fcntl

    deadline = time.monotonic() + wait
    held = False
    while not held:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        except OSError:
            break
    try:
        yield
    finally:
        if held and not f.closed:  # closing it (for the keeper's new log) let go
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def older_part(log: Path, *skip: tuple[int, int]) -> bytes:
    """The ``.1`` file's bytes, unless it is one of the files SKIP (for an instant of the
    keeper's rotation both names name one file)."""
    rotated = open_log(f"{log}{ROTATED}")
    if rotated is None:
        return b""
    with rotated:
        return b"" if ident_of(rotated) in skip else rotated.read()


def whole(f, log: Path) -> tuple[bytes, tuple[int, int] | None]:
    """The older part and the open log F to its end, read as of one moment, and the ``.1``
    file's identity then (``follow``'s CUT)."""
    with steady(f):
        data = older_part(log, ident_of(f)) + f.read()
        return data, ident(f"{log}{ROTATED}")


def read_log(log: Path) -> bytes:
    """The whole log as the agent printed it: the older part first, if any."""
    f = open_log(log)
    if f is None:
        return older_part(log)
    with f:
        return whole(f, log)[0]


def _cut_at(log: Path) -> int | None:
    try:
        with open(f"{log}{CUT_AT}", "rb") as f:
            return int(f.read(32))
    except (OSError, ValueError):
        return None


def _next(f, log: Path, cut):
    """One look of ``follow`` under the lock: (what to print, the file to read on, CUT)."""
    mine, current = ident_of(f), ident(log)
    if current is not None and current != mine:
        # The keeper made a new log: the rest of this one; a whole log between the two, if
        # it rotated twice since the last look (the .1 file is then neither: looked at after
        # the new log is open, which may be newer than CURRENT by now); the new one.
        data = f.read()
        new = open_log(log)
        if new is None:  # gone meanwhile (am rm): nothing more to follow
            return data, f, cut
        data += older_part(log, mine, ident_of(new))
        f.close()
        return data + new.read(65536), new, ident(f"{log}{ROTATED}")
    now = ident(f"{log}{ROTATED}")
    if now is not None and now not in (cut, mine):
        # The supervisor cut in place: the end of the old log that was not read yet is the
        # end of the new .1 file; then the log from its start.
        at, read_to = _cut_at(log), f.tell()
        missed = b""
        if at is not None and at > read_to:
            older = older_part(log)
            missed = older[-(at - read_to) :] if at - read_to < len(older) else older
        f.seek(0)
        return missed + f.read(65536), f, now
    return f.read(65536), f, cut


def follow(f, log: Path, cut, out, running, quiet: float = 1.0) -> object:
    """Print what is written to the open log F from here on, across its cuts, until RUNNING()
    says no (asked once output has paused for QUIET seconds); CUT: the ``.1`` file's identity
    when F was last read (``whole``). Returns the file last read, for the caller to close."""
    quiet_since = time.monotonic()
    while True:
        with steady(f):
            chunk, f, cut = _next(f, log, cut)
        if chunk:
            out.write(chunk)
            out.flush()
            quiet_since = time.monotonic()
            continue
        if time.monotonic() - quiet_since > quiet:
            if not running():
                with steady(f):
                    chunk, f, cut = _next(f, log, cut)
                    chunk += f.read()
                out.write(chunk)
                out.flush()
                return f
            quiet_since = time.monotonic()
        # A 64k log at the keeper's 1 MiB/s is cut every 60 ms: a look more often than that
        # finds each whole log before the next cut drops it.
        time.sleep(0.05)

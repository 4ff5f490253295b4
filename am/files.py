"""Small file primitives am uses in several places: atomic replace, an exclusive lock, a cache
that processes missing it at once fill once, a JSON object read from a file that may be
missing, torn or written by someone else, and a content digest."""

import io
import os
import stat
import sys

from am import jsonread

StrPath = str | os.PathLike[str]

TYPE_CHECKING = False  # typing costs am list an import
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import TypeVar

    from am.errors import AmError

    T = TypeVar("T")


def write_atomic(
    path: StrPath, text: str, *, sync: bool = False, tmp: StrPath | None = None
) -> None:
    """Replace PATH with TEXT in one step: readers see the old file or the new one, never a
    part. SYNC also puts both on disk (the file and its folder's entry) before returning. The
    temporary file (TMP, or PATH.<pid>.<thread>.tmp: two of the keeper's threads may write one
    file at once) is never followed if it is a link, and removed when the write fails."""
    if tmp is None:
        import _thread  # built in: no import cost

        tmp = f"{os.fspath(path)}.{os.getpid()}.{_thread.get_ident()}.tmp"
    tmp = os.fspath(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync:
        dirfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)


class locked:
    """Hold an exclusive flock on the lock file PATH (made 0600, never through a link) for the
    block; the kernel drops it when the process dies. Without WAIT, BlockingIOError if another
    holds it. A class, not a ``contextlib`` generator: am list imports this module, and no
    contextlib."""

    def __init__(self, path: StrPath, *, wait: bool = True):
        self.path, self.wait = path, wait

    def __enter__(self) -> None:
        import fcntl  # here: am list reads files with this module but locks none

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if self.wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the flock


def create_locked(path: StrPath, dir_fd: int | None = None) -> int | None:
    """A new file PATH (0600, never through a link; relative to the folder DIR_FD if given),
    made and flocked, as a descriptor that holds the lock until it is closed or this process
    dies; None if PATH exists, or if ``take_if_free`` took and removed it between the making
    and the lock. OSError if the file system cannot lock it (the file is removed again: no
    lock could ever tell it from a live one)."""
    import fcntl

    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600, dir_fd=dir_fd)
    except FileExistsError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink == 0:  # taken as left over before the lock
            os.close(fd)
            return None
    except BaseException:
        try:
            os.unlink(path, dir_fd=dir_fd)
        except OSError:
            pass
        os.close(fd)
        raise
    return fd


def take_if_free(path: StrPath) -> int | None:
    """A descriptor of the existing file PATH holding its flock, if no process holds it (the
    one that made it with ``create_locked`` has died): the caller may remove it while it
    holds this. None while a process holds it, when there is no such file, or when it
    cannot be told (no access, a link, a file system without locks): never taken then.
    Opened for writing: an NFS lock (fcntl's, underneath) needs it."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held (BlockingIOError), or no lock to be had
        os.close(fd)
        return None
    return fd


HELD = ".held"  # the lock file of a held_temp_dir folder, the first thing in it


class held_temp_dir:
    """A new folder in PARENT named PREFIX<random>, held for the block (an flock on the file
    ``HELD`` in it), then removed: doctor tells one at work from one a kill left
    (``held_left_by_a_kill``), and takes no folder without that file for one of these."""

    def __init__(self, parent: StrPath, prefix: str):
        self.parent, self.prefix = parent, prefix

    def __enter__(self) -> "Path":
        import shutil
        import tempfile
        from pathlib import Path

        while True:
            try:
                self.path = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.parent))
            except OSError as e:
                raise cannot_write(self.parent, e) from None
            try:
                fd = create_locked(self.path / HELD)
            except FileNotFoundError:  # doctor took it, empty, for a dead one's: another
                continue
            except BaseException as e:
                shutil.rmtree(self.path, ignore_errors=True)
                if isinstance(e, OSError):
                    raise cannot_write(self.parent, e) from None
                raise
            if fd is not None:
                self.fd = fd
                return self.path
            # doctor took it for a dead one's between the making and the lock: another

    def __exit__(self, *exc: object) -> None:
        import shutil

        # Its lock file last, and only once nothing else is left: a kill in between, or what
        # could not be removed, leaves a folder doctor still knows for one.
        try:
            for entry in os.scandir(self.path):
                if entry.name == HELD:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            if os.listdir(self.path) == [HELD]:
                os.unlink(self.path / HELD)
                os.rmdir(self.path)
        except OSError:
            pass
        finally:
            os.close(self.fd)


def cannot_write(folder: StrPath, e: OSError) -> "AmError":
    """The AmError for OSError E while am wrote in FOLDER, with the way out its cause needs."""
    import errno

    from am.errors import AmError

    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = f"make room in {folder}"
    elif e.errno in (errno.ENOLCK, errno.EOPNOTSUPP):
        hint = "its file system has no file locks: give AM_HOME a folder on one that has"
    else:
        hint = f"am needs to write in {folder}: check its owner and permissions"
    return AmError(f"cannot write in {folder}: {e.strerror or e}", hint)


def left_by_a_kill(path: StrPath) -> bool:
    """Whether PATH, a file ``create_locked`` made, is one its maker no longer holds (it
    died). Anything else of that name but a folder (a link, say) is no maker's, and left
    over too; nothing there is nothing left."""
    import stat

    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    if stat.S_ISDIR(mode):
        return False
    if not stat.S_ISREG(mode):
        return True
    fd = take_if_free(path)
    if fd is None:
        return False  # held, gone, or not to be told
    os.close(fd)
    return True


def held_left_by_a_kill(folder: StrPath) -> bool:
    """Whether FOLDER is a ``held_temp_dir`` folder (its ``HELD`` file in it) that its maker
    no longer holds. A folder without that file is no such folder."""
    import stat

    held = os.path.join(folder, HELD)
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return False
        if not stat.S_ISREG(os.lstat(held).st_mode):
            return False
    except FileNotFoundError:  # killed before its lock file was made: left empty
        try:
            return not os.listdir(folder)
        except OSError:
            return False
    except OSError:
        return False
    return left_by_a_kill(held)


FILL_WAIT = 10.0  # seconds a miss waits for another process's fill before doing its own


def fill_once(
    lock: StrPath,
    lookup: "Callable[[], T | None]",
    fill: "Callable[[], T | None]",
    wait: float = FILL_WAIT,
) -> "T | None":
    """LOOKUP()'s answer, or on a miss (None) FILL()'s: processes that miss a cache at once
    run one FILL, and the rest read what it wrote.

    A miss takes an exclusive flock on LOCK and looks again; the first to hold it fills while
    holding it. One that had to wait and still misses (that answer is not kept: no cache
    here) fills at once, the lock let go, beside the others rather than after each. No process
    waits longer than WAIT seconds (a holder stopped or hung, or FILL itself calling here with
    the same LOCK), and with no lock to be had (a read-only AM_HOME) each fills its own."""
    got = lookup()
    if got is not None:
        return got
    import fcntl  # here, after a hit: am list reads files with this module but locks none
    import time

    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
    try:
        try:
            fd = os.open(lock, flags, 0o600)
        except FileNotFoundError:  # a new home: its folder is made as the cache's would be
            os.makedirs(os.path.dirname(os.fspath(lock)), mode=0o700, exist_ok=True)
            fd = os.open(lock, flags, 0o600)
    except OSError:
        return fill()
    try:
        deadline, pause, waited = time.monotonic() + wait, 0.005, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return fill()
                waited = True
                time.sleep(pause)  # a poll: a blocking flock cannot be given a timeout
                pause = min(pause * 2, 0.05)
            except OSError:  # a file system without flock
                return fill()
        got = lookup()
        if got is not None:
            return got
        if waited:
            os.close(fd)
            fd = -1
        return fill()
    finally:
        if fd >= 0:
            os.close(fd)


def write_cache(path: StrPath, text: str) -> None:
    """Replace the cache file PATH with TEXT, its folder made; a cache that cannot be written
    only costs time, so a failure is ignored."""
    try:
        os.makedirs(os.path.dirname(os.fspath(path)), exist_ok=True)
        write_atomic(path, text)
    except OSError:
        pass


def open_regular(path: StrPath, dir_fd: int | None = None) -> io.BufferedReader | None:
    """PATH (relative to the folder DIR_FD if given) opened for reading, never through a link
    and never waiting on a FIFO; None if it is no regular file (or cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def read_json_dict(path: StrPath) -> dict[str, object] | None:
    """The JSON object in the regular file PATH, or None when it is missing, unreadable, a
    link, a FIFO or anything but a file, or not an object."""
    f = open_regular(path)
    if f is None:
        return None
    try:
        with f:
            data = jsonread.loads(f.read().decode("utf-8"))  # UTF-8 alone, as always
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of DATA in hex. Through the interpreter's own built-in module where it has
    one: ``hashlib`` loads OpenSSL first, 3 ms of a spawn that hashes one small file."""
    # Python 3.11's first, 3.12's on, any other: a name that is not there costs a search of
    # sys.path, and ``importlib`` itself 0.4 ms.
    names = ("_sha256", "_sha2") if sys.version_info < (3, 12) else ("_sha2",)
    for name in (*names, "hashlib"):
        try:
            digest: str = __import__(name).sha256(data).hexdigest()
        except (ImportError, AttributeError):
            continue
        return digest
    raise ImportError("no sha256 in this interpreter")

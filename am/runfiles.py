"""What the supervisor and the keeper write beside a running agent, for ``am list`` and
``am status`` to read: its exit file, its health events, a gVisor sandbox's task count, and the
note where its log was rotated; the rotation of a log this process writes and the cap on a log
another process writes; and whether the keeper that writes them is alive."""

import os

from am import clock, files


def write_exit(path: str, result: dict) -> None:
    import json  # here: am list reads these files (am.jsonread) and imports no json

    files.write_atomic(path, json.dumps(result), sync=True)


def write_health(path: str | None):
    """A callback that records what the cgroup watch saw, while the agent still runs."""

    def write(watch) -> None:
        if path:
            write_exit(path, {"oom": watch.killed, "pids_limit": watch.pids_hit, "at": clock.iso()})

    return write


def write_guest(path: str | None):
    """A callback that keeps a gVisor sandbox's task count where ``am status`` reads it: a
    figure replaced every few seconds, so not synced to disk like the files above."""

    def write(count: int) -> None:
        if path:
            import json

            files.write_atomic(path, json.dumps({"pids": count}))

    return write


def rotation_note(limit: int) -> bytes:
    return (
        f"\r\n[am: the log reached logs.max_size ({limit} bytes) here; the output before "
        "this line is in the .log.1 file beside it, older output was dropped]\r\n"
    ).encode()


def rotate_written(path: str, limit: int) -> int:
    """Start the log at PATH, which this process writes, again: its content becomes the
    ``.1`` file, and PATH a new file that opens with the rotation note. PATH names a file at
    every moment (``am logs`` opens it while the agent writes); for an instant it and ``.1``
    name the same file, which readers skip. The new file's descriptor."""
    fd = os.open(f"{path}.new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    try:
        os.write(fd, rotation_note(limit))
        try:
            os.unlink(f"{path}.old")
        except FileNotFoundError:
            pass
        try:
            os.link(path, f"{path}.old")
        except OSError:  # a file system without hard links: a moment without the log
            os.replace(path, f"{path}.1")
        else:
            os.replace(f"{path}.old", f"{path}.1")
        os.replace(f"{path}.new", path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def cap_appended(path: str, limit: int) -> bool:
    """Keep a log that another process appends to (a limited agent's proxy, through a bind
    mount) near LIMIT bytes: once it is larger, its newest LIMIT bytes of whole lines move to
    ``PATH.1`` (replacing the older one; what came before them is dropped, however much was
    written since the last look) and the file is emptied in place. The writer opened it with
    O_APPEND, so it goes on at the new end; it cannot be renamed away from it, as the writer
    holds the inode. Lines it appends between the last read and the truncation
    (microseconds) are lost, and so is one it was writing while read. Whether a rotation
    happened."""
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        import stat

        if not stat.S_ISREG(st.st_mode) or st.st_size <= limit:
            return False
        tmp = f"{path}.{os.getpid()}.tmp"
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(out, "wb") as f:
                start = max(0, st.st_size - limit)
                os.lseek(fd, start, os.SEEK_SET)
                # a line begun before START is dropped, up to its end
                cut = start > 0 and os.pread(fd, 1, start - 1) != b"\n"
                whole = 0  # bytes up to the last newline copied
                while chunk := os.read(fd, 1 << 20):
                    if cut:
                        nl = chunk.find(b"\n")
                        chunk, cut = (b"", True) if nl < 0 else (chunk[nl + 1 :], False)
                    f.write(chunk)
                    if (nl := chunk.rfind(b"\n")) >= 0:
                        whole = f.tell() - len(chunk) + nl + 1
                os.ftruncate(fd, 0)
                # A line the writer was still writing when read is cut by the truncation:
                # the .1 file keeps whole lines only (the cut one is lost, as above).
                f.truncate(whole)
        except BaseException:
            os.unlink(tmp)
            raise
        os.replace(tmp, f"{path}.1")
        return True
    finally:
        os.close(fd)


def keeper_alive(run: str) -> bool:
    """Whether a keeper holds the lock in the run folder RUN (a flock test: no process list,
    no call). Here, not in ``am.keeper``: ``am list`` asks it, and the keeper's own imports
    (socket, threading) cost more than the rest of a list."""
    import fcntl

    try:
        fd = os.open(f"{run}/keeper.lock", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)

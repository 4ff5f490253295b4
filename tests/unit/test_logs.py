"""``am logs``' reading of a log and its older part while they are cut (am/commands/logs.py)."""

import fcntl
import os
import threading

from am.commands import logs


def test_a_log_is_read_after_a_cut_in_place_never_during_it(tmp_path):
    """A tmux agent's supervisor cuts its log under an exclusive flock: the end moves to
    .1 and the log starts again. A read begun during the cut sees the log after it, whole:
    here it starts while the lock is held and the cut is made, so it must return exactly
    the new .1 and the new log (a read without the lock returns the old log, or a mix)."""
    log = tmp_path / "a.log"
    log.write_bytes(b"old start\nold end\n")
    holder = os.open(log, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    got = []
    reader = threading.Thread(target=lambda: got.append(logs.read_log(log)))
    reader.start()
    (tmp_path / "a.log.1.tmp").write_bytes(b"old end\n")
    os.replace(tmp_path / "a.log.1.tmp", tmp_path / "a.log.1")
    os.truncate(log, 0)
    with open(log, "ab") as f:
        f.write(b"[note]\n")
    fcntl.flock(holder, fcntl.LOCK_UN)
    os.close(holder)
    reader.join()
    assert got == [b"old end\n[note]\n"]


def test_a_log_that_is_a_link_or_missing_is_no_log(tmp_path):
    (tmp_path / "secret").write_bytes(b"host file\n")
    os.symlink(tmp_path / "secret", tmp_path / "a.log")
    assert logs.open_log(tmp_path / "a.log") is None
    assert logs.read_log(tmp_path / "a.log") == b""
    assert logs.open_log(tmp_path / "missing.log") is None
    os.symlink(tmp_path / "secret", tmp_path / "b.log.1")  # nor is a linked older part read
    (tmp_path / "b.log").write_bytes(b"new\n")
    assert logs.read_log(tmp_path / "b.log") == b"new\n"


class Out:
    """A stand-in for stdout's buffer that says when it holds a text."""

    def __init__(self):
        self.data = bytearray()
        self.changed = threading.Condition()

    def write(self, b):
        with self.changed:
            self.data += b
            self.changed.notify_all()

    def flush(self):
        pass

    def wait_for(self, text: bytes):
        with self.changed:
            assert self.changed.wait_for(lambda: text in self.data, timeout=30), bytes(self.data)


def following(log):
    """``logs.follow`` of LOG from its end, in a thread, until ``done`` is set."""
    f = logs.open_log(log)
    f.seek(0, os.SEEK_END)
    out, done = Out(), threading.Event()
    t = threading.Thread(
        target=logs.follow, args=(f, log, logs.inode(f"{log}.1"), out, lambda: not done.is_set())
    )
    t.start()
    return out, done, t


def test_follow_goes_on_in_the_keepers_new_log_and_loses_nothing(tmp_path):
    from am.runfiles import rotate_written, rotation_note

    log = tmp_path / "a.log"
    log.write_bytes(b"before\n")
    out, done, t = following(log)
    with open(log, "ab") as w:
        w.write(b"one\n")
    out.wait_for(b"one\n")
    with open(log, "ab") as w:
        w.write(b"two\n")  # written just before the rotation, read from the old file
    fd = rotate_written(str(log), 1000)
    os.write(fd, b"three\n")
    os.close(fd)
    out.wait_for(b"three\n")
    done.set()
    t.join()
    assert bytes(out.data) == b"one\ntwo\n" + rotation_note(1000) + b"three\n"


def test_follow_starts_again_after_a_cut_in_place(tmp_path):
    log = tmp_path / "a.log"
    log.write_bytes(b"x" * 5000 + b"\n")
    out, done, t = following(log)
    with open(log, "ab") as w:
        w.write(b"one\n")
    out.wait_for(b"one\n")
    # the supervisor's cut: the end to .1, the log emptied, then the agent writes a little
    (tmp_path / "a.log.1").write_bytes(b"one\n")
    os.truncate(log, 0)
    with open(log, "ab") as w:
        w.write(b"[note]\nafter\n")
    out.wait_for(b"after\n")
    done.set()
    t.join()
    assert bytes(out.data) == b"one\n[note]\nafter\n"

"""Reading an agent's log while it is cut (am/logread.py), against the real cuts: the keeper's
rotation (``runfiles.rotate_written``) and a tmux supervisor's cut in place
(``supervise.cut_in_place``)."""

import fcntl
import os
import threading
import time

import pytest

from am import logread
from am.runfiles import rotate_written, rotation_note
from am.supervise import cut_in_place


@pytest.fixture
def blocked(monkeypatch):
    """An event set once a reader has found the log's lock taken (it then waits in
    ``time.sleep``, which only a reader that asks for the lock does)."""
    event = threading.Event()
    real = time.sleep

    def sleep(seconds):
        event.set()
        real(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return event


def test_a_log_is_read_after_a_cut_in_place_never_during_it(tmp_path, blocked):
    """A reader that begins while the supervisor holds the lock for its cut waits, and reads
    the log after the cut, whole: the new .1 and the new log. (Without the lock it reads at
    once, the old log or a mix; the test then fails at 'blocked'.)"""
    log = tmp_path / "a.log"
    log.write_bytes(b"old start\nold end\n")
    holder = os.open(log, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    got = []
    reader = threading.Thread(target=lambda: got.append(logread.read_log(log)))
    reader.start()
    assert blocked.wait(10)  # it asked for the lock and found it taken
    (tmp_path / "a.log.1").write_bytes(b"old end\n")  # the cut's steps, under the lock
    os.truncate(log, 0)
    with open(log, "ab") as f:
        f.write(b"[note]\n")
    os.close(holder)
    reader.join()
    assert got == [b"old end\n[note]\n"]


def test_a_cut_in_place_waits_for_a_reader_and_says_where_it_cut(tmp_path):
    """cut_in_place never blocks on a reader (a paused pager): it leaves the cut to its next
    look. Then the end moves to .1, .1.at says at which byte it ends, the log starts again."""
    log = tmp_path / "a.log"
    log.write_bytes(b"x" * 100 + b"y" * 60)
    with open(log, "rb") as reader, logread.steady(reader):
        assert not cut_in_place(str(log), 60)
    assert log.stat().st_size == 160 and not (tmp_path / "a.log.1").exists()
    assert cut_in_place(str(log), 60)
    assert (tmp_path / "a.log.1").read_bytes() == b"y" * 60
    assert (tmp_path / "a.log.1.at").read_text() == "160"
    assert log.read_bytes() == rotation_note(60)
    assert not cut_in_place(str(log), 60 + len(rotation_note(60)))  # under the cap: left alone


def test_a_log_that_is_a_link_or_missing_is_no_log(tmp_path):
    (tmp_path / "secret").write_bytes(b"host file\n")
    os.symlink(tmp_path / "secret", tmp_path / "a.log")
    assert logread.open_log(tmp_path / "a.log") is None
    assert logread.read_log(tmp_path / "a.log") == b""
    assert logread.open_log(tmp_path / "missing.log") is None
    os.symlink(tmp_path / "secret", tmp_path / "b.log.1")  # nor is a linked older part read
    (tmp_path / "b.log").write_bytes(b"new\n")
    assert logread.read_log(tmp_path / "b.log") == b"new\n"


class Out:
    """A stand-in for stdout's buffer that can be waited on for a text."""

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
    """``logread.follow`` of LOG from its end, in a thread, until ``done`` is set."""
    f = logread.open_log(log)
    data, cut = logread.whole(f, log)
    out, done = Out(), threading.Event()
    t = threading.Thread(
        target=logread.follow, args=(f, log, cut, out, lambda: not done.is_set(), 0.2)
    )
    t.start()
    return out, done, t


def append(path, data: bytes):
    with open(path, "ab") as w:
        w.write(data)


def test_follow_prints_each_byte_once_across_the_keepers_rotations(tmp_path):
    """Across one rotation and across two between its looks (held off by the lock on the file
    it reads): the rest of the old log, the whole log between, the new one."""
    log = tmp_path / "a.log"
    log.write_bytes(b"before\n")
    out, done, t = following(log)
    append(log, b"one\n")
    out.wait_for(b"one\n")
    append(log, b"two\n")  # just before the rotation: read from the old file
    fd = rotate_written(str(log), 1000)
    os.write(fd, b"three\n")
    os.close(fd)
    out.wait_for(b"three\n")
    with open(log, "rb") as held:  # the file it reads now: no look until both rotations
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        fd = rotate_written(str(log), 1000)
        os.write(fd, b"four\n")
        os.close(fd)
        fd = rotate_written(str(log), 1000)
        os.write(fd, b"five\n")
        os.close(fd)
    out.wait_for(b"five\n")
    done.set()
    t.join()
    note = rotation_note(1000)
    assert (
        bytes(out.data) == b"one\ntwo\n" + note + b"three\n" + note + b"four\n" + note + b"five\n"
    )


def test_follow_prints_each_byte_once_across_a_cut_in_place(tmp_path):
    """What the agent wrote after the follower's last read and before the cut is only in the
    new .1 file: printed from there (.1.at), then the log from its start, nothing twice."""
    log = tmp_path / "a.log"
    log.write_bytes(b"x" * 5000 + b"\n")
    out, done, t = following(log)
    append(log, b"one\n")
    out.wait_for(b"one\n")
    with open(log, "r+b") as held:  # no look between the write and the cut
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        append(log, b"two\n")
        # cut_in_place's steps (above), under this lock: the end to .1, where it ends
        size = os.fstat(held.fileno()).st_size
        held.seek(size - 1000)
        (tmp_path / "a.log.1").write_bytes(held.read())
        (tmp_path / "a.log.1.at").write_text(str(size))
        held.truncate(0)
        append(log, rotation_note(1000))
    append(log, b"after\n")
    out.wait_for(b"after\n")
    done.set()
    t.join()
    assert bytes(out.data) == b"one\ntwo\n" + rotation_note(1000) + b"after\n"


def test_follow_goes_on_when_the_older_part_is_removed(tmp_path):
    """A .1 file that goes (am rm meanwhile) is no cut: nothing is printed again."""
    log = tmp_path / "a.log"
    log.write_bytes(b"start\n")
    (tmp_path / "a.log.1").write_bytes(b"older\n")
    out, done, t = following(log)
    (tmp_path / "a.log.1").unlink()
    append(log, b"more\n")
    out.wait_for(b"more\n")
    done.set()
    t.join()
    assert bytes(out.data) == b"more\n"

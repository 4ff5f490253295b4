"""am/files.py, am/clock.py and the orphan-session rule: helpers every module shares."""

import multiprocessing
import os
import threading

import pytest

from am import clock, files, session


def test_write_atomic_replaces_whole_and_leaves_no_temp(tmp_path):
    path = tmp_path / "f.json"
    path.write_text("old")
    files.write_atomic(path, "new", sync=True)
    assert path.read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["f.json"]
    assert (path.stat().st_mode & 0o777) == 0o600


def test_two_threads_writing_one_file_each_replace_it_whole(tmp_path, monkeypatch):
    """The keeper's OOM and pids threads may write an agent's health file at once. Thread A
    is held between its write and its replace while B writes the file whole: A's own
    temporary file must still be there (with one per process, B's replace took it)."""
    path = tmp_path / "health.json"
    real_replace = os.replace
    b_done = threading.Event()

    def replace(src, dst):
        if threading.current_thread().name == "A":
            assert b_done.wait(10)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    errors = []

    def write(text):
        try:
            files.write_atomic(path, text)
        except OSError as e:
            errors.append(e)

    a = threading.Thread(target=write, args=('{"oom": true, "pids_limit": false}',), name="A")
    a.start()
    b = threading.Thread(target=write, args=('{"oom": true}',), name="B")
    b.start()
    b.join()
    b_done.set()
    a.join()
    assert errors == []
    assert path.read_text() == '{"oom": true, "pids_limit": false}'  # A's, replaced last
    assert sorted(os.listdir(tmp_path)) == ["health.json"]


def test_write_atomic_never_follows_a_planted_temp_link(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep")
    path = tmp_path / "f"
    os.symlink(target, tmp_path / "planted.tmp")
    with pytest.raises(OSError):
        files.write_atomic(path, "x", tmp=tmp_path / "planted.tmp")
    assert target.read_text() == "keep" and not path.exists()


def _try_lock(path, queue):
    try:
        with files.locked(path, wait=False):
            queue.put("got it")
    except BlockingIOError:
        queue.put("busy")


def test_locked_excludes_another_process(tmp_path):
    lock = tmp_path / "x.lock"
    queue = multiprocessing.get_context("fork").Queue()
    with files.locked(lock):
        p = multiprocessing.get_context("fork").Process(target=_try_lock, args=(lock, queue))
        p.start()
        p.join(30)
        assert queue.get(timeout=5) == "busy"
    p = multiprocessing.get_context("fork").Process(target=_try_lock, args=(lock, queue))
    p.start()
    p.join(30)
    assert queue.get(timeout=5) == "got it"


@pytest.mark.parametrize(
    "text, expected",
    [('{"a": 1}', {"a": 1}), ("[1]", None), ("{torn", None), ("", None), (None, None)],
)
def test_read_json_dict(tmp_path, text, expected):
    path = tmp_path / "x.json"
    if text is not None:
        path.write_text(text)
    assert files.read_json_dict(path) == expected


def test_clock_round_trip():
    assert clock.iso(0) == "1970-01-01T00:00:00Z"
    assert clock.epoch("2026-11-28T07:41:49Z") == 1795851709.0
    assert clock.epoch(clock.iso(1795851709)) == 1795851709.0
    for bad in (None, "", "2026-11-28 07:41:49", 5):
        assert clock.epoch(bad) is None


def test_orphan_sessions_are_ams_own_with_no_record():
    live = {"am-a": "/h", "am-b": "/h", "am-c": "/other", "mine": "/h", "am-d": ""}
    records = {"a": {"session": "am-a"}}
    assert session.orphans(live, records, "/h") == ["am-b"]


def test_a_json_object_is_read_from_utf_8_alone(tmp_path):
    """Run files are UTF-8 JSON as am writes them: a byte-order mark, UTF-16 or an encoded
    surrogate is refused as it always was, though json.loads of the bytes would take each
    (the control)."""
    import json

    from am.files import read_json_dict

    good = tmp_path / "good.json"
    good.write_bytes(b'{"exit_code": 0}')
    assert read_json_dict(good) == {"exit_code": 0}
    for i, data in enumerate(
        [
            b'\xef\xbb\xbf{"exit_code": 0}',
            '{"exit_code": 0}'.encode("utf-16"),
            b'{"a": "\xed\xa0\x80"}',
        ]
    ):
        assert isinstance(json.loads(data), dict)
        path = tmp_path / f"odd{i}.json"
        path.write_bytes(data)
        assert read_json_dict(path) is None, data


def test_a_json_object_is_read_from_a_regular_file_alone(tmp_path):
    """An exit or health file planted as a FIFO hung am list and am status; one planted as
    a link was read through it. Controls: a plain open of the link reads the file behind it,
    and a plain open of the FIFO does not return within two seconds."""
    import json
    import subprocess
    import sys

    from am.files import read_json_dict

    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"exit_code": 0}')
    link = tmp_path / "link.json"
    link.symlink_to(elsewhere)
    assert json.loads(link.read_text()) == {"exit_code": 0}
    assert read_json_dict(link) is None
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", f"open({str(fifo)!r}).read()"], timeout=2)
    assert read_json_dict(fifo) is None
    assert read_json_dict(tmp_path) is None  # a folder


def test_fill_once_fills_a_miss_and_reads_a_hit(tmp_path):
    cache, filled = {}, []

    def fill():
        filled.append(1)
        cache["k"] = "made"
        return "made"

    assert files.fill_once(tmp_path / "lock", lambda: cache.get("k"), fill) == "made"
    assert files.fill_once(tmp_path / "lock", lambda: cache.get("k"), fill) == "made"
    assert filled == [1]
    # No lock to be had (its folder is missing): each caller fills for itself.
    assert files.fill_once(tmp_path / "none" / "lock", lambda: None, lambda: "own") == "own"


def test_fill_once_waits_for_the_filler_and_reads_its_answer(tmp_path):
    """Two processes miss a cache at once: the second waits for the first's lock, finds the
    answer it wrote, and never fills (the burst of 50 spawns asked podman 50 times)."""
    lock, cache, filled = tmp_path / "lock", {}, []
    missed = threading.Event()

    def lookup():
        got = cache.get("k")
        if got is None:
            missed.set()
        return got

    def fill():
        filled.append(1)
        return "own"

    result = []
    with files.locked(lock):  # the first process, asking its engine
        t = threading.Thread(target=lambda: result.append(files.fill_once(lock, lookup, fill)))
        t.start()
        assert missed.wait(10)
        cache["k"] = "first's"
    t.join(10)
    assert result == ["first's"] and filled == []


def test_fill_once_waits_a_bounded_time_for_a_holder_that_never_lets_go(tmp_path):
    lock = tmp_path / "lock"
    with files.locked(lock):  # a spawn stopped with ^Z, or a hung engine call, holding it
        assert files.fill_once(lock, lambda: None, lambda: "own", wait=0.2) == "own"
    # Nor does a fill that asks for the same lock again wait on itself for ever.
    inner = lambda: files.fill_once(lock, lambda: None, lambda: "inner", wait=0.2)  # noqa: E731
    assert files.fill_once(lock, lambda: None, inner) == "inner"


def test_fill_once_after_a_fill_that_kept_nothing_fills_with_the_lock_let_go(tmp_path, monkeypatch):
    """An answer no cache keeps (a podman store that is not overlay, an image that is
    missing): each waiter fills beside the others, not one after another under the lock."""
    import fcntl
    import time

    lock = tmp_path / "lock"
    free = []
    waiting = threading.Event()
    real_sleep = time.sleep

    def sleep(seconds):  # fill_once polls the lock: it has found it held
        waiting.set()
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)

    def fill():
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            free.append(True)
        except BlockingIOError:
            free.append(False)
        finally:
            os.close(fd)
        return "own"

    result = []
    with files.locked(lock):  # the first filler, which will keep nothing
        t = threading.Thread(
            target=lambda: result.append(files.fill_once(lock, lambda: None, fill))
        )
        t.start()
        assert waiting.wait(10)
    t.join(10)
    assert result == ["own"] and free == [True]
    # The control: a miss with nobody else there fills holding the lock.
    free.clear()
    assert files.fill_once(lock, lambda: None, fill) == "own" and free == [False]


def test_fill_once_in_a_new_home_makes_the_lock_folder(tmp_path):
    lock = tmp_path / "home" / "state" / "x.lock"
    assert files.fill_once(lock, lambda: None, lambda: "own") == "own"
    assert lock.is_file() and (lock.parent.stat().st_mode & 0o777) == 0o700


def test_a_file_made_locked_is_taken_only_once_its_maker_lets_go(tmp_path):
    path = tmp_path / "x.partial"
    fd = files.create_locked(path)
    assert fd is not None
    assert files.create_locked(path) is None  # made once
    assert files.take_if_free(path) is None  # held
    os.close(fd)  # as its maker's death does
    taken = files.take_if_free(path)
    assert taken is not None
    os.close(taken)
    assert files.take_if_free(tmp_path / "none") is None


def test_a_file_taken_and_removed_before_its_maker_locked_it_is_not_made(tmp_path, monkeypatch):
    """The maker's flock waits while doctor holds the file to remove it: the maker must then
    see its file gone, not write into a name nobody will find."""
    import fcntl

    path = tmp_path / "x.partial"
    real_flock = fcntl.flock

    def flock(fd, op):
        if not hasattr(flock, "done"):  # doctor comes between the making and the lock
            flock.done = True
            taken = files.take_if_free(path)
            assert taken is not None
            path.unlink()
            os.close(taken)
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    assert files.create_locked(path) is None
    assert not path.exists()


def test_what_am_could_not_write_is_said_with_the_way_out_its_cause_needs(tmp_path):
    import errno

    said = {
        code: files.cannot_write(tmp_path, OSError(code, os.strerror(code))).hint
        for code in (errno.ENOSPC, errno.ENOLCK, errno.EACCES)
    }
    assert said[errno.ENOSPC] == f"make room in {tmp_path}"
    assert "no file locks" in said[errno.ENOLCK]
    assert "owner and permissions" in said[errno.EACCES]


def test_a_held_folder_keeps_its_lock_file_while_anything_else_is_left_in_it(tmp_path):
    with files.held_temp_dir(tmp_path, "bundle-") as path:
        (path / "sub").mkdir()
        (path / "sub" / "f").write_text("x")
    assert list(tmp_path.iterdir()) == []  # all of it, the lock file last

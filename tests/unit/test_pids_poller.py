"""am/oomwatch.py's one poller of every watched ``pids.events``, over plain files laid out as
a cgroup's (the real cgroups are in tests/test_health.py's OOM and pids-limit tests)."""

import time

from am.oomwatch import OomWatch, PidsPoller


def wait_until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def cgroup(tmp_path, name, refused=0):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "pids.events").write_text(f"max {refused}\n")
    return folder


def test_one_thread_watches_them_all_and_ends_with_the_last(tmp_path):
    poller = PidsPoller(every=0.01)
    seen = []
    quiet, busy = OomWatch(), OomWatch(on_event=seen.append)
    a, b = cgroup(tmp_path, "a"), cgroup(tmp_path, "b")
    poller.add(quiet, a)
    poller.add(busy, b)
    thread = poller._thread
    assert thread is not None and thread.is_alive()
    (b / "pids.events").write_text("max 3\n")  # a fork refused in b only
    wait_until(lambda: busy.pids_hit)
    assert seen == [busy] and not quiet.pids_hit
    assert poller._thread is thread  # the same one thread
    (a / "pids.events").unlink()
    a.rmdir()  # the container of a ended: its cgroup is gone
    wait_until(lambda: poller._thread is None)
    thread.join(5)
    assert not thread.is_alive()
    assert not quiet.pids_hit


def test_a_watch_added_after_the_thread_ended_is_watched(tmp_path):
    poller = PidsPoller(every=0.01)
    gone = cgroup(tmp_path, "gone")
    (gone / "pids.events").unlink()
    gone.rmdir()
    poller.add(OomWatch(), gone)
    wait_until(lambda: poller._thread is None)
    late = OomWatch()
    poller.add(late, cgroup(tmp_path, "late", refused=1))
    wait_until(lambda: late.pids_hit)

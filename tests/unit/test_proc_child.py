"""am/proc.py's ``Child`` with real processes: the call am list, prefetch and a spawn's head
start make without the ``subprocess`` module. Its output is read whole or not past a deadline,
it keeps exactly the descriptors it is given, and ``end`` leaves no process behind."""

import os

import psutil
import pytest
from helpers import wait_for

from am import files, proc


def test_its_output_and_exit_code_are_read():
    child = proc.Child(["sh", "-c", "echo out; echo err >&2; exit 3"], reading=True)
    assert child.read() == b"out\n"  # errors go to /dev/null
    assert child.wait() == 3 and child.done()


def test_a_child_killed_by_a_signal_reads_as_a_shell_says():
    child = proc.Child(["sh", "-c", "kill -9 $$"])
    assert child.wait() == 128 + 9


@pytest.mark.parametrize("keep", [True, False])
def test_it_holds_a_lock_it_is_given_and_no_other(tmp_path, keep):
    """The head start's git keeps its folder's lock file open after am is gone; the positive
    control, without KEEP, shows the lock is the child's doing and not the parent's."""
    fd = files.create_locked(tmp_path / files.HELD)
    child = proc.Child(["sleep", "60"], keep=(fd,) if keep else ())
    try:
        assert not os.get_inheritable(fd)  # only that child got it
        os.close(fd)
        # as doctor asks it of a head start's folder
        if keep:
            assert not files.held_left_by_a_kill(tmp_path)
        else:
            # posix_spawn returns once the exec has begun, and the exec closes the child's
            # close-on-exec descriptors a moment later: the lock is let go then
            wait_for(lambda: files.held_left_by_a_kill(tmp_path), "the lock let go", 10, 0.001)
        assert child.done() is False  # held by a child that runs, or not at all
    finally:
        child.end()
    assert files.held_left_by_a_kill(tmp_path)


def test_a_read_past_its_deadline_gives_up_and_end_reaps_it(tmp_path):
    child = proc.Child(["sh", "-c", "echo early; exec sleep 60"], reading=True)
    assert child.read(within=0.2) is None
    assert not child.done(within=0.05)
    pid = child.pid
    child.end()
    assert child.code == 128 + 9
    assert not psutil.pid_exists(pid)  # killed and reaped, no zombie left


def test_done_waits_for_the_end_within_its_time():
    child = proc.Child(["sh", "-c", "exit 0"])
    assert child.done(within=30)  # ends long before: no waiting for the whole time
    assert child.code == 0
    assert proc.Child(["true"]).done(within=None)


def test_a_program_not_on_path_is_not_found():
    with pytest.raises(FileNotFoundError):
        proc.Child(["am-no-such-program-here"], reading=True)
    with pytest.raises(proc.NotFound, match="not found in PATH"):
        proc.quick(["am-no-such-program-here"])


@pytest.fixture
def no_pidfds(monkeypatch):
    """A system without pidfds (macOS, or a kernel before 5.3): ``os.pidfd_open`` missing."""
    monkeypatch.delattr(os, "pidfd_open")


def test_without_pidfds_done_polls_for_its_time(no_pidfds):
    ends = proc.Child(["sh", "-c", "sleep 0.2"])
    assert ends.done(within=30)  # it ended in time: not "not ended", not a traceback
    assert ends.code == 0
    runs = proc.Child(["sleep", "60"])
    try:
        assert not runs.done(within=0.1)
    finally:
        runs.end()


def test_without_pidfds_an_early_call_is_still_taken(tmp_path, no_pidfds):
    """Its output closes before it can be reaped: the wait for its exit, not a false
    timeout."""
    from am import prefetch

    argv = ["sh", "-c", "echo out; exec >&-; sleep 0.2"]
    prefetch.start(argv)
    res = prefetch.take(argv, timeout=30)
    assert res is not None and (res.code, res.out) == (0, "out\n")


def test_reading_what_was_never_piped_is_nothing():
    child = proc.Child(["true"])
    assert child.read() == b"" and child.wait() == 0


@pytest.mark.parametrize("defended", [True, False])
def test_a_descriptor_ams_parent_left_open_stays_out_of_the_child(tmp_path, defended):
    """A script's ``9>file`` reaches am open and inheritable; a program am starts never gets
    it, as ``subprocess`` would not give it. The positive control is the same spawn without
    the close actions: the child has it."""
    fd = os.open(tmp_path / "left-open", os.O_WRONLY | os.O_CREAT, 0o600)
    os.set_inheritable(fd, True)  # as a parent's shell leaves it
    probe = ["sh", "-c", f"[ -e /proc/self/fd/{fd} ] && echo open || echo closed"]
    try:
        if defended:
            child = proc.Child(probe, reading=True)
            seen = child.read()
            child.wait()
        else:
            r, w = os.pipe()
            pid = os.posix_spawnp(
                "sh", probe, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)]
            )
            os.close(w)
            with os.fdopen(r, "rb") as out:
                seen = out.read()
            os.waitpid(pid, 0)
        assert seen == (b"closed\n" if defended else b"open\n")
        assert fd in proc.inherited() and fd not in proc.inherited(keep=(fd,))
    finally:
        os.close(fd)

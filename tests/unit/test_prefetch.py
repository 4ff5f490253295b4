"""am/prefetch.py with real processes: a call begun early is taken by ``proc.run`` of the same
list instead of running again; a failed one runs again (its error read then); a different list
runs as it is; a call nobody takes is killed, on a timeout and at exit."""

import os
import subprocess
import sys
import time

import psutil
import pytest

from am import prefetch, proc


@pytest.fixture(autouse=True)
def _nothing_left():
    yield
    prefetch.discard()


def counting(tmp_path, *tail: str) -> tuple[list[str], object]:
    """A shell call that adds a line to a file each time it runs, then does TAIL."""
    runs = tmp_path / "runs"
    return ["sh", "-c", f"echo ran >> {runs}; " + "; ".join(tail)], runs


def ran(runs) -> int:
    return len(runs.read_text().splitlines()) if runs.exists() else 0


def test_am_lists_quick_call_takes_a_started_call_too(tmp_path):
    """``proc.quick`` (am list's tmux call) takes an early answer as ``proc.run`` does, a
    failed one too: it reads no error message, and tmux with no server fails."""
    argv, runs = counting(tmp_path, "echo out")
    proc.quick(argv)
    assert ran(runs) == 1  # positive control: quick runs it
    prefetch.start(argv)
    assert proc.quick(argv).out == "out\n" and ran(runs) == 2
    failing, _ = counting(tmp_path, "exit 1")
    prefetch.start(failing)
    assert proc.quick(failing).code == 1 and ran(runs) == 3  # the early call alone


def test_a_started_call_is_taken_not_run_again(tmp_path):
    argv, runs = counting(tmp_path, "echo out")
    proc.run(argv)
    proc.run(argv)
    assert ran(runs) == 2  # positive control: each run runs it
    prefetch.start(argv)
    res = proc.run(argv)
    assert res.code == 0 and res.out == "out\n"
    assert ran(runs) == 3  # one more, not two


def test_a_failed_early_call_runs_again_and_says_why(tmp_path):
    argv, runs = counting(tmp_path, "echo why >&2", "exit 3")
    prefetch.start(argv)
    res = proc.run(argv)
    assert (res.code, res.err) == (3, "why\n")  # the second run's words
    assert ran(runs) == 2


def test_another_list_is_not_taken(tmp_path):
    argv, runs = counting(tmp_path, "echo one")
    prefetch.start(argv)
    other = proc.run(counting(tmp_path, "echo two")[0])
    assert other.out == "two\n"
    assert prefetch.began("sh")  # still waiting for its own caller
    prefetch.discard()
    assert not prefetch.began("sh")


def test_an_early_call_that_takes_too_long_is_killed(tmp_path):
    argv = ["sh", "-c", f"echo $$ > {tmp_path / 'pid'}; exec sleep 60"]
    prefetch.start(argv)
    deadline = time.monotonic() + 30
    while not (tmp_path / "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = int((tmp_path / "pid").read_text())
    res = proc.run(argv, timeout=0.2)
    assert res.code == 124 and "timed out" in res.err
    assert not psutil.pid_exists(pid)  # killed and reaped


def test_the_timeout_holds_after_the_output_ends(tmp_path):
    """A call that closes its output and goes on is still bound by the caller's timeout."""
    argv = ["sh", "-c", f"exec >&-; echo $$ > {tmp_path / 'pid'}; exec sleep 60"]
    prefetch.start(argv)
    res = proc.run(argv, timeout=0.5)
    assert res.code == 124 and "timed out" in res.err
    pid = int((tmp_path / "pid").read_text())
    assert not psutil.pid_exists(pid)
    # positive control: the same call, run as proc.run runs it, times out too
    assert proc.run(["sh", "-c", "exec >&-; exec sleep 60"], timeout=0.5).code == 124


def test_an_argument_no_program_can_take_starts_nothing():
    prefetch.start(["sh", "-c", "echo a\0b"])  # a NUL: no exec takes it
    assert not prefetch.began("sh")
    prefetch.start(["am-no-such-program-here"])
    assert not prefetch.began("am-no-such-program-here")


@pytest.mark.parametrize("exit_call", ["sys.exit(0)", "os._exit(0)"])
def test_calls_nobody_took_are_killed_at_exit(tmp_path, exit_call):
    pidfile = tmp_path / "pid"
    script = f"""
import os, sys, time
from am import prefetch
prefetch.start(["sh", "-c", "echo $$ > {pidfile}; exec sleep 60"])
while not os.path.exists({str(pidfile)!r}) or not open({str(pidfile)!r}).read():
    time.sleep(0.01)
{exit_call}
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    pid = int(pidfile.read_text())
    try:
        alive = psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        # os._exit skips the exit handlers: the positive control, whose call outlives am
        assert alive == (exit_call == "os._exit(0)")
    finally:
        if exit_call == "os._exit(0)":
            os.kill(pid, 9)

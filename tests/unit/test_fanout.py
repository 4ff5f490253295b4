"""am/fanout.py with real forked children: exit codes by task, the bound on how many run at
once, and what a child leaves of the parent's streams and interrupts."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from am import fanout

ROOT = Path(__file__).resolve().parents[2]


def test_width_is_four_a_core_at_least_four_never_more_than_the_tasks():
    assert fanout.width(50, 2) == 8
    assert fanout.width(50, None) == 4
    assert fanout.width(3, 16) == 3
    assert fanout.width(1, 0) == 1


def test_each_tasks_exit_code_by_its_index():
    def task(i: int) -> int:
        if i == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        if i == 3:
            raise RuntimeError("task 3 broke")
        return i * 10

    assert fanout.run(5, 2, task) == [0, 10, 128 + signal.SIGKILL, 1, 40]


def children_once_waiting(thread: threading.Thread) -> list[str]:
    """The children of THREAD once it waits for one (its tasks block, so that stays)."""
    task = Path(f"/proc/self/task/{thread.native_id}")
    while (task / "wchan").read_text() != "do_wait":
        os.sched_yield()
    return (task / "children").read_text().split()


@pytest.mark.parametrize("most", [2, 6])
def test_no_more_than_most_run_at_once(most):
    """The tasks block at a gate: once the fan-out waits for one, it has forked all it may."""
    gate_r, gate_w = os.pipe()
    got: list = []
    runner = threading.Thread(
        target=lambda: got.append(fanout.run(6, most, lambda i: len(os.read(gate_r, 1)) - 1))
    )
    runner.start()
    try:
        assert len(children_once_waiting(runner)) == most
    finally:
        os.write(gate_w, b"x" * 6)
        runner.join(timeout=60)
    assert got == [[0] * 6]


PROGRAM = textwrap.dedent(
    """
    import os, sys
    from am import fanout

    print("before", end="")  # left in the buffer as the children fork
    gate = sys.argv[1]

    def task(i):
        print(f" child{i}", flush=True)
        if i == 0:
            with open(gate + ".started", "w"):
                pass
            with open(gate) as f:  # a FIFO: blocks until the test opens it
                f.read()
        return 0

    try:
        codes = fanout.run(3, 1, task)
    except KeyboardInterrupt:
        print(" interrupted", flush=True)
        sys.exit(130)
    print(" codes", codes, flush=True)
    """
)


def run_program(tmp_path, interrupt: bool) -> subprocess.CompletedProcess:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, str(gate)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    started = gate.with_suffix(".started")
    while not started.exists():  # the first child waits at its gate
        if proc.poll() is not None:
            pytest.fail("the program ended before its first child started")
        os.sched_yield()
    if interrupt:
        proc.send_signal(signal.SIGINT)  # the parent alone, as 'kill -INT' would
    with open(gate, "w") as f:  # then the first child goes on
        f.write("go")
    out, _ = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out)


def test_children_repeat_nothing_of_the_parents_output(tmp_path):
    res = run_program(tmp_path, interrupt=False)
    assert res.returncode == 0
    assert res.stdout.count("before") == 1, res.stdout
    assert " child0" in res.stdout and " child2" in res.stdout
    assert res.stdout.endswith(" codes [0, 0, 0]\n"), res.stdout


def test_an_interrupt_starts_no_further_child_and_waits_for_the_running_one(tmp_path):
    res = run_program(tmp_path, interrupt=True)
    assert res.returncode == 130
    # the running child finished its task; none after it began
    assert " child0" in res.stdout and " child1" not in res.stdout, res.stdout
    assert res.stdout.index(" child0") < res.stdout.index(" interrupted")

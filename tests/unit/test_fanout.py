"""am/fanout.py with real forked children: exit codes by task, the bound on how many run at
once, what a child leaves of the parent's output, and how a stop signal ends the fan-out."""

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from am import fanout

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60  # seconds: a wait that passes it fails the test instead of hanging it


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


def until(predicate, what: str):
    end = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"waited {DEADLINE} s for {what}")
        time.sleep(0.001)


def children_once_waiting(tid: int) -> list[str]:
    """The children of thread TID once it waits for one to end (in ``select``: its tasks
    block, so that stays)."""
    task = Path(f"/proc/self/task/{tid}")
    until(lambda: in_select((task / "wchan").read_text()), "the fan-out to wait")
    return (task / "children").read_text().split()


def in_select(wchan: str) -> bool:
    """Whether a thread whose wait channel is WCHAN sleeps in select(2), by the kernel's
    names for it (a thread waiting for the GIL sleeps on a futex instead)."""
    return wchan.startswith(("poll_schedule_timeout", "do_select", "core_sys_select"))


@pytest.mark.parametrize("most", [2, 6])
def test_no_more_than_most_run_at_once(most):
    """The tasks block at a gate: once the fan-out waits for one, it has forked all it may."""
    gate_r, gate_w = os.pipe()
    seen = []

    def watch():
        try:
            seen.append(len(children_once_waiting(threading.main_thread().native_id)))
        finally:
            os.write(gate_w, b"x" * 6)

    watcher = threading.Thread(target=watch)
    watcher.start()
    codes = fanout.run(6, most, lambda i: len(os.read(gate_r, 1)) - 1)
    watcher.join()
    assert seen == [most] and codes == [0] * 6


PROGRAM = textwrap.dedent(
    """
    import os, signal, sys
    from am import fanout

    print("before", end="")  # left in the buffer as the children fork
    gate = sys.argv[1]

    def task(i):
        print(f" child{i}", flush=True)
        if i == 0:
            try:
                with open(gate + ".started", "w"):
                    pass
                with open(gate) as f:  # a FIFO: blocks until the test opens it
                    f.read()
            except KeyboardInterrupt:
                print(" child0-interrupted", flush=True)
                os.kill(os.getppid(), signal.SIGTERM)  # the parent passes on one more
                with open(gate + ".undone", "w"):  # ... which no longer cuts this short
                    pass
                print(" child0-undone", flush=True)
                return 130
        return 0

    try:
        codes = fanout.run(3, 1, task)
    except fanout.Stopped as e:
        print(f" stopped-by-{e.signum} {e.codes}", flush=True)
        sys.exit(1)
    print(" codes", codes, flush=True)
    """
)


def run_program(tmp_path, stop=None, gate_opens=True) -> subprocess.CompletedProcess:
    """PROGRAM, its first child held at a gate; STOP(pid) is done to it there, then the gate
    opens if GATE_OPENS (else the child is to leave it on its own)."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, str(gate)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal gives a command
    )
    until(lambda: gate.with_suffix(".started").exists() or proc.poll() is not None, "child 0")
    if stop:
        stop(proc.pid)
    if gate_opens:
        os.close(os.open(gate, os.O_WRONLY))  # as the child reads it: no message, its end
    try:
        out, _ = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # it and its children: none outlives the test
        proc.communicate()
        pytest.fail(f"the program did not end within {DEADLINE} s")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out)


def test_children_repeat_nothing_of_the_parents_output(tmp_path):
    res = run_program(tmp_path)
    assert res.returncode == 0
    assert res.stdout.count("before") == 1, res.stdout
    assert " child0" in res.stdout and " child2" in res.stdout
    assert res.stdout.endswith(" codes [0, 0, 0]\n"), res.stdout


def interrupted_child_took(tmp_path, stop):
    """STOP the program while child 0 waits: no later child starts, and the program reports
    the stop once child 0 ended."""
    res = run_program(tmp_path, stop, gate_opens=False)
    assert res.returncode == 1, res.stdout
    assert " child1" not in res.stdout and " child2" not in res.stdout, res.stdout
    return res.stdout


def test_ctrl_c_reaches_the_children_and_stops_the_fan_out(tmp_path):
    out = interrupted_child_took(tmp_path, lambda pid: os.killpg(pid, signal.SIGINT))
    assert " child0-interrupted" in out  # the child took it as its own
    assert out.endswith(f" stopped-by-{int(signal.SIGINT)} [130, 130, 130]\n"), out


def test_sigterm_to_the_group_interrupts_the_children_once(tmp_path):
    def stop(pid):  # timeout(1)'s SIGTERM to all, then the parent passes on a SIGINT
        os.killpg(pid, signal.SIGTERM)

    out = interrupted_child_took(tmp_path, stop)
    assert out.count(" child0-interrupted") == 1  # not killed, and its undoing not cut:
    assert " child0-undone" in out  # the SIGINT passed on by the parent came to nothing
    assert out.endswith(f" stopped-by-{int(signal.SIGTERM)} [130, 130, 130]\n"), out


def test_sigterm_to_the_parent_alone_interrupts_its_children(tmp_path):
    out = interrupted_child_took(tmp_path, lambda pid: os.kill(pid, signal.SIGTERM))
    assert " child0-interrupted" in out  # passed on as SIGINT, which a spawn undoes on
    assert out.endswith(f" stopped-by-{int(signal.SIGTERM)} [130, 130, 130]\n"), out


def test_sigint_to_the_parent_alone_interrupts_its_children(tmp_path):
    out = interrupted_child_took(tmp_path, lambda pid: os.kill(pid, signal.SIGINT))
    assert " child0-interrupted" in out and " child0-undone" in out
    assert out.endswith(f" stopped-by-{int(signal.SIGINT)} [130, 130, 130]\n"), out


def test_a_signal_between_fork_and_the_books_is_neither_lost_nor_a_traceback():
    """SIGINT sent to the parent by its first child, first thing (as a Ctrl-C while it
    forks): no KeyboardInterrupt cuts the parent's books; it starts no other child, and
    passes the stop on to the one running."""
    never_r, _never_w = os.pipe()

    def task(i: int) -> int:
        os.kill(os.getppid(), signal.SIGINT)
        os.read(never_r, 1)  # only the stop passed on ends this
        return 7

    with pytest.raises(fanout.Stopped) as stopped:
        fanout.run(4, 1, task)
    assert stopped.value.signum == signal.SIGINT and stopped.value.codes == [130] * 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # ours again


def python(program: str) -> subprocess.CompletedProcess:
    """PROGRAM run by Python in a process group of its own, from the top of the checkout;
    killed, and the test failed, if it outlives the deadline."""
    try:
        return subprocess.run(
            [sys.executable, "-c", program],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the program did not end within {DEADLINE} s")


ELSEWHERE = textwrap.dedent(
    """
    import os, signal, sys, threading
    from pathlib import Path
    from am import fanout

    never_r, _never_w = os.pipe()
    started = sys.argv[1]
    main = Path(f"/proc/self/task/{threading.get_native_id()}/wchan")

    def task(i):
        open(started, "w").close()
        os.read(never_r, 1)  # only the stop passed on ends this
        return 7

    def elsewhere():
        # once the fan-out sleeps in its wait (not on the GIL): this thread takes the stop,
        # as any thread may take a signal sent to the process
        while not os.path.exists(started) or main.read_text() in ("0", "") or (
            main.read_text().startswith("futex")
        ):
            pass
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=elsewhere, daemon=True).start()
    try:
        fanout.run(2, 1, task)
    except fanout.Stopped as e:
        print(f"stopped-by-{e.signum} {e.codes}", flush=True)
    """
)


def test_a_stop_another_thread_takes_while_the_fan_out_waits_still_ends_it(tmp_path):
    """The signal's handler runs in a thread other than the waiting one (as when a stop
    comes just before the wait begins): the fan-out is woken all the same, passes it on to
    the child it waits for, and stops."""
    proc = subprocess.Popen(
        [sys.executable, "-c", ELSEWHERE, str(tmp_path / "started")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the fan-out did not see the stop within {DEADLINE} s")
    assert out == f"stopped-by-{int(signal.SIGTERM)} [130, 130]\n" and proc.returncode == 0


BLOCKED = textwrap.dedent(
    """
    import signal
    from am import fanout

    # as a launcher may leave it: a blocked mask outlives exec
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    print(fanout.run(3, 2, lambda i: i), signal.SIGCHLD in signal.pthread_sigmask(0, []))
    """
)


def test_a_fan_out_started_with_sigchld_blocked_still_learns_its_children_ended():
    """Its children's ends wake it whatever mask it was started with, which it gives back."""
    res = python(BLOCKED)
    assert (res.stdout, res.returncode) == ("[0, 1, 2] True\n", 0), res.stderr


def test_a_stop_just_after_the_last_child_ended_is_not_lost(monkeypatch):
    """SIGTERM as the fan-out reaps its last child: still its stop, said as such; the
    caller's handler is back, and the signal is not left blocked."""
    reap = fanout._reap

    def reap_then_stop(running, codes):
        got = reap(running, codes)
        if got and not running:
            os.kill(os.getpid(), signal.SIGTERM)
        return got

    monkeypatch.setattr(fanout, "_reap", reap_then_stop)
    with pytest.raises(fanout.Stopped) as stopped:
        fanout.run(2, 2, lambda i: 0)
    assert (stopped.value.signum, stopped.value.codes) == (signal.SIGTERM, [0, 0])
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert not set(fanout.STOPS) & signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_fork_that_fails_starts_no_more_and_waits_for_those_begun(monkeypatch, capsys):
    """No process to be had for the third task (EAGAIN): the two begun finish, the rest are
    never begun (130), one line says why, and the stops are not left blocked."""
    import errno

    fork, forks = os.fork, []

    def fork_twice():
        if len(forks) == 2:
            raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        forks.append(1)
        return fork()

    monkeypatch.setattr(os, "fork", fork_twice)
    assert fanout.run(4, 4, lambda i: 5) == [5, 5, 130, 130]
    err = capsys.readouterr().err
    assert err.startswith("am: error: cannot start another spawn: Resource temporarily")
    assert err.count("\n") == 1
    assert not set(fanout.STOPS) & signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_stop_the_caller_ignores_stays_ignored_by_the_fan_out_and_its_children():
    """As under nohup: a hang-up neither stops the fan-out nor reaches a child's task (nor
    what it runs) as anything but ignored."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:

        def task(i: int) -> int:
            os.kill(os.getppid(), signal.SIGHUP)
            return 0 if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN else 9

        assert fanout.run(2, 1, task) == [0, 0]
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


MANY_FILES = textwrap.dedent(
    """
    import os, resource
    from am import fanout

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # the fan-out's pipe: past 1023
    print(fanout.run(2, 2, lambda i: 3))
    """
)


def test_a_fan_out_in_a_process_with_many_files_open_waits_as_any():
    """Its wakeup pipe past descriptor 1023, where select() cannot look."""
    res = python(MANY_FILES)
    assert (res.stdout, res.returncode) == ("[3, 3]\n", 0), res.stderr


def test_a_stop_that_comes_as_the_fan_out_ends_is_the_callers_and_leaks_nothing(monkeypatch):
    """SIGINT once the fan-out has given the caller's handlers back (held back until its
    mask is too): the caller's handler takes it (here Python's, a KeyboardInterrupt), and
    the fan-out's pipe is closed all the same."""
    set_wakeup_fd, calls, parent = signal.set_wakeup_fd, [], os.getpid()

    def giving_back(fd, **kw):
        if os.getpid() != parent:  # a child's own call
            return set_wakeup_fd(fd, **kw)
        calls.append(fd)
        if len(calls) == 2:  # the second call gives the caller's back: a Ctrl-C now
            os.kill(os.getpid(), signal.SIGINT)
        return set_wakeup_fd(fd, **kw)

    monkeypatch.setattr(signal, "set_wakeup_fd", giving_back)
    fds = set(os.listdir("/proc/self/fd"))
    with pytest.raises(KeyboardInterrupt):
        fanout.run(2, 2, lambda i: 0)
    assert set(os.listdir("/proc/self/fd")) == fds and len(calls) == 2


def test_with_sigint_ignored_a_stop_is_passed_on_as_one_the_children_take():
    """A shell script's background job has SIGINT ignored: a SIGTERM to am alone still
    interrupts the spawns under way (passed on as SIGTERM), instead of waiting for them."""
    handlers = {s: signal.getsignal(s) for s in fanout.STOPS}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    never_r, never_w = os.pipe()
    try:

        def task(i: int) -> int:
            os.kill(os.getppid(), signal.SIGTERM)
            if select.select([never_r], [], [], DEADLINE)[0]:  # only a stop ends this
                return 5
            return 7  # the deadline: no stop came

        with pytest.raises(fanout.Stopped) as stopped:
            fanout.run(3, 1, task)
        assert (stopped.value.signum, stopped.value.codes) == (signal.SIGTERM, [130] * 3)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
        os.close(never_r)
        os.close(never_w)


STOP_AS_IT_ENDS = textwrap.dedent(
    """
    import os, signal, sys
    from am import fanout

    parent = os.getpid()

    class Out:  # the child's stdout: a Ctrl-C comes as the child flushes it on its way out
        def write(self, text):
            return sys.__stdout__.write(text)

        def flush(self):
            os.kill(os.getpid(), signal.SIGINT)
            sys.__stdout__.flush()

    def task(i):
        sys.stdout = Out()
        return 1

    print(fanout.run(1, 1, task), os.getpid() == parent, flush=True)
    """
)


def test_a_stop_as_a_child_ends_never_carries_it_into_the_fan_outs_own_code():
    """The child exits with its task's code; it does not go on as a second parent (which
    then tries to close the parent's pipe again, and fails on standard error)."""
    res = python(STOP_AS_IT_ENDS)
    assert (res.stdout, res.stderr, res.returncode) == ("[1] True\n", "", 0)


def test_a_stop_the_callers_handler_raises_as_the_fan_out_ends_leaves_all_given_back(
    monkeypatch,
):
    """The caller's SIGINT handler, back first, raises at once (as for a Ctrl-C another
    thread took): every other handler, the wakeup fd, the mask and the pipe are still given
    back, and the interrupt reaches the caller."""
    real, parent, calls = signal.signal, os.getpid(), []

    def putting_back(signum, handler):
        old = real(signum, handler)
        if os.getpid() == parent and signum == signal.SIGINT:
            calls.append(handler)
            if len(calls) == 2:  # the caller's, given back
                raise KeyboardInterrupt
        return old

    handlers = {s: signal.getsignal(s) for s in (*fanout.STOPS, signal.SIGCHLD)}
    fds = set(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(signal, "signal", putting_back)
    with pytest.raises(KeyboardInterrupt):
        fanout.run(2, 2, lambda i: 0)
    monkeypatch.undo()
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert set(os.listdir("/proc/self/fd")) == fds
    assert not set(fanout.STOPS) & signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert signal.set_wakeup_fd(-1) == -1  # none was left set

"""am/proc.py's settled calls, with real processes: the tmux session's start and the engine's
container start, which an undo then looks for. An interrupt while such a call runs waits for
it to end instead of killing it, and one while it starts is held until ``Popen`` has it:
either way the call's work is done before the interrupt goes on to the undo, never after."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def driver(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("settle", [True, False])
def test_an_interrupt_while_a_settled_call_runs_waits_for_it_to_end(tmp_path, settle):
    """The child is slower than the 0.25 s ``subprocess`` gives a child after an interrupt.
    The positive control, an unsettled call, kills it before it makes its file."""
    started, made = tmp_path / "started", tmp_path / "made"
    script = f"touch {started}; sleep 2; touch {made}"
    p = driver(
        f"""
        from am import proc
        try:
            proc.run(["sh", "-c", {script!r}], settle={settle})
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    try:
        wait_for(started.exists, "the call started", 30, 0.005)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
        p.wait()
    assert out == "interrupted\n", err
    assert made.exists() == settle


@pytest.mark.parametrize("hold", [True, False])
def test_a_stop_while_a_call_starts_is_held_until_it_has(hold):
    """A stop inside ``_held_stops`` runs its handler at ``deliver()``, not where it came (in
    ``Popen``, that left the child running unwaited). The control holds nothing."""
    p = driver(
        f"""
        import contextlib, os, signal
        from am import proc
        held = proc._held_stops() if {hold} else contextlib.nullcontext()
        try:
            with held:
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):  # Python runs a handler between bytecodes
                    pass
                print("inside", flush=True)
            print("after", flush=True)
            held.deliver()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        """
    )
    out, err = p.communicate(timeout=60)
    expected = "inside\nafter\ninterrupted\n" if hold else "interrupted\n"
    assert out == expected + "True\n", err


def test_nothing_is_held_where_no_handler_can_be_set():
    """'am ui' spawns from a worker thread: there the stops stay as they are."""
    p = driver(
        """
        import threading
        from am import proc
        def work():
            with proc._held_stops() as held:
                print(held.before, flush=True)
        t = threading.Thread(target=work)
        t.start()
        t.join()
        """
    )
    out, err = p.communicate(timeout=60)
    assert out == "{}\n", err


STOPS_SET = """
import os, signal, subprocess
from am import proc
stopped = []
def stop(signum, frame):
    stopped.append(signum)
    raise KeyboardInterrupt
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGHUP, stop)
"""


def test_a_stop_the_moment_its_handler_is_back_still_waits_for_the_call(tmp_path):
    """Python runs a pending handler within the next ``signal.signal``: a Ctrl-C right after
    SIGINT's handler is back comes while the others are set back. It must still find the call
    waited for, and leave no handler of am's in place."""
    made = tmp_path / "made"
    script = f"sleep 1; touch {made}"
    p = driver(
        STOPS_SET
        + f"""
real = signal.signal
def signal_then_a_stop(s, handler):
    before = real(s, handler)
    if s == signal.SIGINT and handler is signal.default_int_handler:
        os.kill(os.getpid(), signal.SIGINT)  # pending: it runs within the next call
    return before
signal.signal = signal_then_a_stop
try:
    proc.run(["sh", "-c", {script!r}], settle=True)
except KeyboardInterrupt:
    print("interrupted", os.path.exists({str(made)!r}))
signal.signal = real
print(signal.getsignal(signal.SIGTERM) is stop, signal.getsignal(signal.SIGHUP) is stop)
"""
    )
    out, err = p.communicate(timeout=60)
    assert out == "interrupted True\nTrue True\n", err


def test_a_stop_while_the_call_fails_to_start_is_the_stop(tmp_path):
    """SIGTERM as the call finds no such program: the spawn ends as stopped (143), not with
    'not found', which would drop the stop."""
    p = driver(
        STOPS_SET
        + """
real = proc._spawn
def stopped_meanwhile(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)
proc._spawn = stopped_meanwhile
try:
    proc.run(["no-such-program-here"], settle=True)
except KeyboardInterrupt:
    print("stopped", stopped)
except proc.NotFound:
    print("not found", stopped)
"""
    )
    out, err = p.communicate(timeout=60)
    assert out == f"stopped [{int(signal.SIGTERM)}]\n", err


def test_a_call_that_will_not_end_is_killed_and_reaped(tmp_path):
    """An interrupted call is let end for SETTLE_MAX at most (a hung tmux); then it is
    killed, and no zombie of it is left (a second Ctrl-C ends it the same way)."""
    started = tmp_path / "started"
    script = f"touch {started}; sleep 60"
    p = driver(
        f"""
import psutil
from am import proc
proc.SETTLE_MAX = 0.5
try:
    proc.run(["sh", "-c", {script!r}], settle=True)
except KeyboardInterrupt:
    print("interrupted", psutil.Process().children(), flush=True)
"""
    )
    try:
        wait_for(started.exists, "the call started", 30, 0.005)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=50)  # well within the child's own 60 s
    finally:
        p.kill()
        p.wait()
    assert out == "interrupted []\n", err


def test_a_stop_while_the_handlers_are_swapped_leaves_none_of_ams():
    """A SIGTERM whose handler raises, arriving as _held_stops swaps SIGTERM: SIGINT, swapped
    already, must not stay on the noting handler (every later Ctrl-C would be dropped)."""
    p = driver(
        STOPS_SET
        + """
real = signal.signal
def stop_as_swapped(s, handler):
    if s == signal.SIGTERM and getattr(handler, "__func__", None) is proc._held_stops._note:
        os.kill(os.getpid(), signal.SIGTERM)  # pending: runs within this very call
    return real(s, handler)
signal.signal = stop_as_swapped
try:
    proc.run(["true"], settle=True)
except KeyboardInterrupt:
    print("stopped", stopped)
signal.signal = real
print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""
    )
    out, err = p.communicate(timeout=60)
    assert out == f"stopped [{int(signal.SIGTERM)}]\nTrue\n", err

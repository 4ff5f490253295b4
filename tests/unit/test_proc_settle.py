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

"""Many tasks at once, each in a forked child: ``am spawn --count N``.

A child is forked from a process that has already imported and checked everything, so it
costs a fork (about 20 ms of CPU) where a separate ``am spawn`` costs a whole Python start
(about 45 ms). Each child is a process of its own, as a separate command would be: nothing a
task changes for its process (the umask, signal handlers, open files) reaches another.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# What ends the fan-out early. A child takes the first of them as a Ctrl-C (its task undoes
# its work), leaves the terminal's foreground group and only notes the rest, so that its
# undoing is not cut short by the same stop sent twice: to its group (a terminal's Ctrl-C or
# hang-up, timeout(1)'s SIGTERM), then passed on by the parent as SIGINT, in case it alone
# was told.
STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def held():
    """The stop signals held back (blocked) for the block's length: what it does is done
    whole, and one sent meanwhile arrives after it."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def width(count: int, cpus: int | None) -> int:
    """How many of COUNT tasks run at once on CPUS cores (pure): four a core, at least four.
    A spawn waits on git and the engine for most of its time; more at once only queue for the
    same cores (50 podman spawns on 2 cores: 6.1 s all at once, 5.3 s eight at a time)."""
    return max(1, min(count, 4 * max(cpus or 1, 1)))


class Stopped(Exception):
    """The fan-out was told to stop by SIGNUM; it started no further task and waited for
    the running ones."""

    def __init__(self, signum: int, codes: list[int]):
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum
        self.codes = codes


def run(count: int, most: int, task: Callable[[int], int]) -> list[int]:
    """TASK(i) for each i below COUNT, each in a child of its own, at most MOST at once; the
    children's exit codes by i (a child killed by signal N: 128+N). A task's output is its
    own: the streams are flushed before each fork, so a child repeats nothing of ours.

    A signal of ``STOPS`` only marks the fan-out stopped (no exception can cut its
    bookkeeping short): no further child starts, those running are waited for, then
    ``Stopped`` is raised, with 130 for each task that never started. The signals are
    blocked across each fork, so a child takes one sent then as its task's own, never as
    ours."""
    codes = [130] * count
    running: dict[int, int] = {}
    stopped: list[int] = []

    def stop(signum, _frame) -> None:
        # Passed on even when the group had it too: a child forked while it was blocked here
        # did not get it, and one that did takes only the first.
        if not stopped:
            for pid in running:
                _signal(pid, signal.SIGINT)
        stopped.append(signum)

    before = {s: signal.signal(s, stop) for s in STOPS}
    try:
        started = 0
        while started < count or running:
            while not stopped and started < count and len(running) < most:
                running[_fork(task, started)] = started
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)  # one sent meanwhile: now
                started += 1
            if not running:
                break
            pid, status = os.wait()  # a stop's handler returns: the wait goes on
            code = os.waitstatus_to_exitcode(status)
            if pid in running:
                codes[running.pop(pid)] = 128 - code if code < 0 else code
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    if stopped:
        raise Stopped(stopped[0], codes)
    return codes


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:  # ended, not yet reaped
        pass


def _interrupted_once(_signum, _frame) -> None:
    for s in STOPS:  # not SIG_IGN: one already on its way would then end in an OSError
        signal.signal(s, _taken)
    # Out of the terminal's foreground group, so a second Ctrl-C does not kill the commands
    # the undoing runs (a tmux or engine call killed there would leave its agent behind).
    try:
        os.setpgid(0, 0)
    except OSError:  # cannot: the undoing runs all the same
        pass
    raise KeyboardInterrupt


def _taken(_signum, _frame) -> None:
    """A stop after the first: the task is already undoing its work."""


def _fork(task: Callable[[int], int], i: int) -> int:
    """A child running TASK(i); returns its pid with the stop signals still blocked, for the
    caller to unblock once the child is on its books."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
    pid = os.fork()
    if pid:
        return pid
    code = 130
    try:
        for s in STOPS:
            signal.signal(s, _interrupted_once)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
        code = task(i) or 0
    except KeyboardInterrupt:  # before the task could take it: nothing of it was made
        code = 130
    except BaseException:  # the task's own handling failed: say why, as Python would
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)

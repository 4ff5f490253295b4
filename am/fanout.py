"""Many tasks at once, each in a forked child: ``am spawn --count N``.

A child is forked from a process that has already imported and checked everything, so it
costs a fork (about 20 ms of CPU) where a separate ``am spawn`` costs a whole Python start
(about 45 ms). Each child is a process of its own, as a separate command would be: nothing a
task changes for its process (the umask, signal handlers, open files) reaches another.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys

from am import wakeup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# What ends the fan-out early. A child takes the first of them as a Ctrl-C (its task undoes
# its work), leaves the terminal's foreground group and only notes the rest, so that its
# undoing is not cut short by the same stop sent twice: to its group (a terminal's Ctrl-C or
# hang-up, timeout(1)'s SIGTERM), then passed on by the parent as SIGINT (another of them if
# SIGINT is ignored), in case it alone was told.
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
    ours. One the caller ignores (a shell script's background job, nohup) stays ignored,
    here and in the children.

    The fan-out waits on the pipe the signal module writes a byte to for each signal
    (``signal.set_wakeup_fd``): a child's end or a stop wakes it even when it came just
    before the wait began, or another thread took it. (Waiting in ``os.wait`` left a stop
    sent in the moment before the call unseen until a child ended by itself.)"""
    codes = [130] * count
    running: dict[int, int] = {}
    stops = _Stops([s for s in STOPS if signal.getsignal(s) is not signal.SIG_IGN])
    # SIGCHLD is how an ended child is learnt: unblocked here even if whatever started am
    # blocked it (a mask outlives exec).
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    before: dict = {}
    undo = [lambda: signal.pthread_sigmask(signal.SIG_SETMASK, mask)]
    try:
        woken, wake = wakeup.pipe()
        undo += [lambda: os.close(wake), lambda: os.close(woken)]
        for s in stops.taken:
            before[s] = signal.signal(s, stops.seen.__setitem__)
        before[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, _woke)
        wakeup_before = signal.set_wakeup_fd(wake, warn_on_full_buffer=False)
        undo.append(lambda: signal.set_wakeup_fd(wakeup_before))
        _fan_out(count, most, task, codes, running, stops, before, (woken, wake))
    except BaseException:
        _end(running, stops.passed)  # nothing begun is left unattended
        raise
    finally:
        # From here on a stop is the caller's: one since the last look is read, the caller's
        # handlers go back before the wakeup fd, the mask last (one held back meanwhile then
        # reaches the caller's handler). Each step is done whatever one before raised (the
        # caller's handler, run there for a stop another thread took).
        signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
        undo += [lambda s=s, h=h: signal.signal(s, h) for s, h in reversed(before.items())]
        if len(undo) > 1:  # (last in, first done)
            undo.append(lambda: stops.read(woken))
        _all_of(reversed(undo))
    if stops:
        raise Stopped(stops.first(), codes)
    return codes


def _all_of(steps) -> None:
    """Each of STEPS (calls), in turn, whatever one raised; then the first exception."""
    error = None
    for step in steps:
        try:
            step()
        except BaseException as e:
            error = error or e
    if error is not None:
        raise error


class _Stops:
    """The stop signals the fan-out takes (TAKEN: those the caller does not ignore), those
    it was sent, and passing them on to the children, each told once.

    A stop is recorded twice over, for each way alone can miss one: by its handler,
    ``SEEN.__setitem__`` (C code, with no Python frame of its own, so that no handler runs
    inside another and records its signal first), and from its byte in the wakeup pipe
    (``read``), which the fan-out reads each time it wakes. The handler alone can be late:
    Python may run it only at the main thread's next check, after the wait began, when
    another thread took the signal. The byte alone misses one that comes once the wakeup fd
    is given back. The signals are kept in the order first recorded; those pending together,
    lowest first (as Python runs their handlers; their bytes come in reverse)."""

    def __init__(self, taken: list[int]):
        self.taken = taken
        self.seen: dict = {}
        self.told: set[int] = set()
        # What a stop is passed on as: one the children take (SIGINT, unless ignored).
        self.passed = signal.SIGINT if signal.SIGINT in taken or not taken else taken[0]

    def __bool__(self) -> bool:
        return bool(self.seen)

    def read(self, woken: int) -> None:
        """Record the stops whose wakeup bytes wait in WOKEN (the others: a child ended)."""
        while True:
            try:
                got = os.read(woken, 512)
            except BlockingIOError:
                return
            for signum in sorted(set(got)):
                if signum in self.taken:
                    self.seen.setdefault(signum, None)

    def first(self) -> int:
        return next(iter(self.seen))

    def pass_on(self, running: dict[int, int]) -> None:
        """Once stopped: the stop to each child of RUNNING not yet told. Passed on even when
        the group had it too: a child forked while it was blocked here did not get it, and
        one that did takes only the first."""
        if self.seen:
            for pid in running:
                if pid not in self.told:
                    self.told.add(pid)
                    _signal(pid, self.passed)


def _fan_out(count, most, task, codes, running, stops: _Stops, handlers, pipe) -> None:
    """``run``'s loop: fork while there is room and no stop, reap, wait on the PIPE."""
    woken = pipe[0]
    waiting = select.poll()  # not select(): a descriptor past 1023 is fine
    waiting.register(woken, select.POLLIN)
    started = 0
    while (started < count and not stops) or running:
        while not stops and started < count and len(running) < most:
            signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
            stops.read(woken)  # a stop that came since: no fork
            if stops:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
                break
            try:
                pid = _fork(task, started, handlers, pipe)
            except OSError as e:  # no more processes to be had: those begun run on
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
                print(
                    f"am: error: cannot start another spawn: {e.strerror or e}; "
                    "waiting for those begun",
                    file=sys.stderr,
                    flush=True,
                )
                count = started
                break
            running[pid] = started
            stops.pass_on(running)  # one another thread took as it forked
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)  # one sent meanwhile: now
            started += 1
        stops.pass_on(running)
        if running and not _reap(running, codes):
            waiting.poll()  # a child's end, or a stop
            stops.read(woken)
            stops.pass_on(running)


def _woke(_signum, _frame) -> None:
    """A child ended: its wakeup byte woke the fan-out, which reaps it."""


def _end(running: dict[int, int], passed: int) -> None:
    """Interrupt the children of RUNNING (with PASSED) and wait for each: the fan-out
    failed."""
    for pid in running:
        _signal(pid, passed)
    for pid in list(running):
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _reap(running: dict[int, int], codes: list[int]) -> bool:
    """Take the exit code of every child of RUNNING that has ended, into CODES by its task's
    index; whether any had."""
    reaped = False
    while running:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            break
        if pid in running:
            code = os.waitstatus_to_exitcode(status)
            codes[running.pop(pid)] = 128 - code if code < 0 else code
            reaped = True
    return reaped


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:  # ended, not yet reaped
        pass


def _interrupted_once(_signum, _frame) -> None:
    for s in STOPS:  # not SIG_IGN: one already on its way would then end in an OSError
        if signal.getsignal(s) is not signal.SIG_IGN:  # one the caller ignores stays so
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


def _fork(task: Callable[[int], int], i: int, handlers: dict, pipe: tuple[int, int]) -> int:
    """A child running TASK(i); the caller blocks the stop signals across it, and unblocks
    them once the child is on its books. The child has the caller's HANDLERS back (but its
    own for the stops), and none of the fan-out's wakeup PIPE."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 130
    try:
        signal.set_wakeup_fd(-1)
        for fd in pipe:
            os.close(fd)
        for s, handler in handlers.items():
            signal.signal(s, _interrupted_once if s in STOPS else handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
        code = task(i) or 0
    except KeyboardInterrupt:  # before the task could take it: nothing of it was made
        code = 130
    except BaseException:  # the task's own handling failed: say why, as Python would
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        # The child ends here, whatever comes: a stop now (the task done) must not carry it
        # out of this into the fan-out's own code, as if it were the parent.
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
        except BaseException:  # a stop's KeyboardInterrupt, taken before the block
            pass
        finally:
            os._exit(code)

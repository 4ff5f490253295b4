"""Many tasks at once, each in a forked child: ``am spawn --count N``.

A child is forked from a process that has already imported and checked everything, so it
costs a fork (about 20 ms of CPU) where a separate ``am spawn`` costs a whole Python start
(about 45 ms). Each child is a process of its own, as a separate command would be: nothing a
task changes for its process (the umask, signal handlers, open files) reaches another.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def width(count: int, cpus: int | None) -> int:
    """How many of COUNT tasks run at once on CPUS cores (pure): four a core, at least four.
    A spawn waits on git and the engine for most of its time; more at once only queue for the
    same cores (50 podman spawns on 2 cores: 6.1 s all at once, 5.3 s eight at a time)."""
    return max(1, min(count, 4 * max(cpus or 1, 1)))


def run(count: int, most: int, task: Callable[[int], int]) -> list[int]:
    """TASK(i) for each i below COUNT, each in a child of its own, at most MOST at once; the
    children's exit codes by i (a child killed by signal N: 128+N). A task's output is its
    own: the streams are flushed before each fork, so a child repeats nothing of ours.

    On KeyboardInterrupt no further child starts; those running are waited for (a terminal's
    Ctrl-C reached them too: each undoes its own work) before it is raised again. A task that
    never started reads as 130."""
    codes = [130] * count
    running: dict[int, int] = {}
    started = 0
    interrupted = False
    while started < count or running:
        try:
            while not interrupted and started < count and len(running) < most:
                running[_fork(task, started)] = started
                started += 1
            if not running:
                break
            pid, status = os.wait()
        except KeyboardInterrupt:
            interrupted = True
            continue
        if pid in running:
            code = os.waitstatus_to_exitcode(status)
            codes[running.pop(pid)] = 128 - code if code < 0 else code
    if interrupted:
        raise KeyboardInterrupt
    return codes


def _fork(task: Callable[[int], int], i: int) -> int:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        code = task(i) or 0
    except BaseException:  # the task's own handling failed: say why, as Python would
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)

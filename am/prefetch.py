"""Engine calls begun early, so that a command whose wall time is one engine call (``am status``)
overlaps that call with its own start-up: ``start`` runs an argument list at once, and
``proc.run`` of the same list later takes its answer instead of running it again.

Only an answer that succeeded is taken: a failed call is run again where it is asked for, which
reads its error message (an early call's messages go to /dev/null); a caller that reads no
message (``proc.quick``) takes a failed answer too. A call nobody took is killed
at exit. Callers start only their own engine's calls, composed by am (``am/enginestats.py``),
never a program named by a record.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # collections.abc imports all of collections: am list imports none
if TYPE_CHECKING:
    from collections.abc import Sequence

    from am.proc import Child

_started: dict[tuple[str, ...], Child] = {}


def start(argv: Sequence[str]) -> None:
    """Run ARGV now, its output kept for ``take``; nothing if it cannot start (the call made
    later says why)."""
    from am import paths, proc

    key = tuple(argv)
    if key in _started:
        return
    try:
        # The engine keeps its own files as it would for the user (as ``Engine.call``).
        with paths.umask(paths.user_umask()):
            child = proc.Child(key, reading=True)
    except (OSError, ValueError):  # not found; a NUL in an argument
        return
    if not _started:
        import atexit

        atexit.register(discard)
    _started[key] = child


def began(program: str) -> bool:
    """Whether a call of PROGRAM was started and not taken yet."""
    return any(key[0] == program for key in _started)


def take(argv: Sequence[str], timeout: float | None = None, failed: bool = False):
    """The answer of an early call of exactly ARGV, as a ``proc.Result``: its output if it
    succeeded (or, with FAILED, whatever its exit code), a timeout (code 124, as
    ``proc.run``'s) if it took longer than TIMEOUT seconds from now; None if there was none or
    it failed (the caller runs it again)."""
    from am.proc import Result

    key = tuple(argv)
    child = _started.pop(key, None)
    if child is None:
        return None
    deadline = None if timeout is None else time.monotonic() + timeout

    def left() -> float | None:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    try:
        out = child.read(left())
        # Its output may end before it does: the deadline holds for its exit too.
        ended = out is not None and child.done(left())
    except BaseException:  # a Ctrl-C, say: no child is left behind it
        child.end()
        raise
    if out is None or not ended:
        child.end()
        return Result(124, "", f"{key[0]} timed out after {timeout}s")
    if child.wait() != 0 and not failed:
        return None
    return Result(child.code, out.decode("utf-8", "replace"), "")


def discard() -> None:
    """Kill and reap every call nobody took (at exit)."""
    while _started:
        _started.popitem()[1].end()

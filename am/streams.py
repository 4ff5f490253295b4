"""Standard streams as a command needs them: descriptors 0-2 always open, and a standard error
whose reader went away ending the command (exit 141, as SIGPIPE ends other tools), never
letting a spawn it cut short pass for a success."""

import os
import sys

GONE_CODE = 128 + 13  # what a shell reports for a tool SIGPIPE ended


class ErrGone(BaseException):
    """Standard error's reader went away. Not an Exception: no ``except Exception`` on the way
    takes it, and a spawn's undo runs, as for an interrupt."""


class GuardedErr:
    """Standard error, raising ErrGone at the first write its reader is gone for, and dropping
    what is written after. Never while an undo runs (``holding``) or an exception is being
    handled: an undo is never cut short, and the error that started it is not replaced; the
    next write outside them raises instead."""

    def __init__(self, stream):
        self._stream, self.gone, self.holding, self.pending = stream, False, 0, False

    def write(self, text: str) -> int:
        self._through(self._stream.write, text)
        return len(text)

    def flush(self) -> None:
        self._through(self._stream.flush)

    def _through(self, call, *args) -> None:
        if not self.gone:
            try:
                call(*args)
            except BrokenPipeError:
                self.gone = self.pending = True
        if self.pending and not self.holding and sys.exc_info()[1] is None:
            self.pending = False
            raise ErrGone

    def __getattr__(self, name):
        return getattr(self._stream, name)


_guard: GuardedErr | None = None  # the one ``standard`` put on sys.stderr


class holding:  # noqa: N801 (used as a function: ``with holding():``)
    """While this lasts (an undo), standard error's reader found gone is not raised. A class,
    not contextlib's: ``am list`` imports no contextlib."""

    def __enter__(self):
        self.guard = _guard
        if self.guard is not None:
            self.guard.holding += 1

    def __exit__(self, *exc):
        if self.guard is not None:
            self.guard.holding -= 1


def standard() -> None:
    """Open /dev/null on any of descriptors 0-2 the caller closed (``2>&-``): else the first
    file am opened would take that number, and what am or its children write to standard error
    would land in it. Then guard standard error (``GuardedErr``)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.set_inheritable(os.open(os.devnull, os.O_RDWR), True)  # the lowest free: FD
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:  # Python found it closed at its start
            setattr(sys, name, open(os.devnull, mode))
    global _guard
    if not isinstance(sys.stderr, GuardedErr):
        sys.stderr = _guard = GuardedErr(sys.stderr)


def say_err(text: str) -> None:
    """TEXT on standard error as a line, unless its reader has gone."""
    try:
        print(text, file=sys.stderr)
    except ErrGone:
        pass

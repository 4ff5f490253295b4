"""Undoing what a failed command made, newest first, saying what could not be undone."""

import sys
from collections.abc import Callable

from am.errors import AmError

Step = tuple[Callable[..., object], tuple[object, ...]]


class Rollback:
    """Steps that reverse what a command made. ``run`` calls them newest first; a step that
    raises does not stop the others, and each failure is reported on stderr (and returned),
    so what is left behind is named instead of silently kept."""

    def __init__(self, what: str = "the command"):
        self.what = what
        self.steps: list[Step] = []

    def push(self, fn: Callable[..., object], *args: object) -> None:
        self.steps.append((fn, args))

    def run(self) -> list[str]:
        from am.streams import holding

        failures = []
        with holding():  # a standard error whose reader is gone cuts no step short
            for fn, args in reversed(self.steps):
                try:
                    fn(*args)
                except Exception as e:  # each one is reported below
                    why = e.message if isinstance(e, AmError) else f"{type(e).__name__}: {e}"
                    failures.append(f"{_name(fn)}({', '.join(map(str, args))}): {why}")
            self.steps.clear()
            for failure in failures:
                print(f"am: warning: undoing {self.what} failed: {failure}", file=sys.stderr)
        return failures


def _name(fn: Callable[..., object]) -> str:
    module = getattr(fn, "__module__", None) or ""
    name = (getattr(fn, "__qualname__", None) or repr(fn)).rpartition("<locals>.")[2]
    return f"{module.removeprefix('am.')}.{name}" if module.startswith("am") else name

"""The dashboard's actions are am's own commands: an argument list parsed by am's parser and
run by the command's ``run``, exactly as ``am COMMAND ...`` would, in this process.

What a command prints goes, line by line, to the caller's OUT (the dashboard's message line)
rather than to the terminal the dashboard draws on: while actions run, ``sys.stdout`` and
``sys.stderr`` route each thread's writes to that thread's action.
"""

import contextlib
import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable

from am.errors import AmError

Out = Callable[[str, bool], None]  # (line, from stderr)


def module_name(command: str) -> str:
    from am.main import MODULES

    return f"am.commands.{MODULES.get(command, command)}"


def available(command: str) -> bool:
    """Whether this am has COMMAND."""
    from am.cli import COMMANDS

    return (
        any(name == command for name, _, _ in COMMANDS)
        and importlib.util.find_spec(module_name(command)) is not None
    )


def parse(command: str, argv: list[str]):
    """ARGV parsed as ``am COMMAND ARGV...`` by am's own parser (its defaults and checks)."""
    from am.cli import build_parser

    try:
        return build_parser(command).parse_args([command, *argv])
    except SystemExit:  # argparse said why on stderr, which is routed to the action
        raise AmError(f"am {command}: invalid arguments") from None


def run(command: str, argv: list[str], out: Out) -> int:
    """Run ``am COMMAND ARGV...`` in this thread; its printed lines go to OUT. Raises AmError
    as the command does."""
    if not available(command):
        raise AmError(f"{command} is not available yet")
    with routed(out):
        args = parse(command, argv)
        return importlib.import_module(module_name(command)).run(args) or 0


def spawn_argv(
    source: str, task: str, agent: str, container: bool, runtime: str, network: str
) -> list[str]:
    """The ``am spawn`` arguments of the spawn form (pure). Options are written ``--x=VALUE``
    and the source follows ``--``, so no value is ever read as an option."""
    argv = []
    if task.strip():
        argv.append(f"--prompt={task}")
    if agent.strip():
        argv.append(f"--agent={agent.strip()}")
    if container:
        argv += ["--container", f"--runtime={runtime}", f"--network={network}"]
    return [*argv, "--", source.strip()]


class _Lines:
    """One thread's output, cut into lines for OUT."""

    def __init__(self, out: Out):
        self.out = out
        self.parts = {False: "", True: ""}

    def write(self, text: str, stderr: bool) -> None:
        *done, self.parts[stderr] = (self.parts[stderr] + text).split("\n")
        for line in done:
            self.out(line, stderr)

    def close(self) -> None:
        for stderr, rest in self.parts.items():
            if rest:
                self.out(rest, stderr)


class _Router:
    """Stands in for sys.stdout or sys.stderr: a thread with a registered action writes to
    it; every other thread to the stream this one replaced."""

    def __init__(self, replaced, stderr: bool):
        self.replaced = replaced
        self.stderr = stderr

    def write(self, text: str) -> int:
        sink = _SINKS.get(threading.get_ident())
        if sink is None:
            return self.replaced.write(text)
        sink.write(text, self.stderr)
        return len(text)

    def flush(self) -> None:
        if threading.get_ident() not in _SINKS:
            self.replaced.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name):
        return getattr(self.replaced, name)


_SINKS: dict[int, _Lines] = {}
_LOCK = threading.Lock()


@contextlib.contextmanager
def routed(out: Out):
    """While the block runs, this thread's prints go to OUT, a line at a time."""
    sink = _Lines(out)
    with _LOCK:
        if not _SINKS:
            sys.stdout = _Router(sys.stdout, False)
            sys.stderr = _Router(sys.stderr, True)
        _SINKS[threading.get_ident()] = sink
    try:
        yield
    finally:
        with _LOCK:
            del _SINKS[threading.get_ident()]
            if not _SINKS:
                # Put back what was there, unless someone replaced the routers meanwhile.
                if isinstance(sys.stdout, _Router):
                    sys.stdout = sys.stdout.replaced
                if isinstance(sys.stderr, _Router):
                    sys.stderr = sys.stderr.replaced
        sink.close()

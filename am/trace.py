"""``AM_DEBUG=1``: every external command am runs, traced on stderr as it ends.

One line a command: its argument list, exit code and milliseconds. Values of environment
variables never appear: ``-e``/``--env NAME=VALUE`` arguments show ``NAME=…`` and the variables
am sets for the child are listed by name only, since they carry credentials. A failed command
also shows the end of its stderr, which the error am prints condenses to a few lines.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # collections.abc imports all of collections: am list imports none
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

ENV_FLAGS = ("-e", "--env")
HIDDEN = "…"
FAILED_LINES = 20


def enabled() -> bool:
    return os.environ.get("AM_DEBUG", "") not in ("", "0")


def redact(argv: Sequence[str]) -> list[str]:
    """ARGV with the value of every ``-e``/``--env NAME=VALUE`` (or ``--env=NAME=VALUE``)
    replaced by an ellipsis."""
    out: list[str] = []
    after_flag = False
    for arg in argv:
        if after_flag and "=" in arg:
            arg = arg.split("=", 1)[0] + "=" + HIDDEN
        elif arg.startswith("--env=") and arg.count("=") >= 2:
            arg = "--env=" + arg[6:].split("=", 1)[0] + "=" + HIDDEN
        after_flag = arg in ENV_FLAGS
        out.append(arg)
    return out


def env_names(env: Mapping[str, str] | None) -> list[str]:
    """The variables ENV sets or changes against am's own environment (names only)."""
    if env is None:
        return []
    return sorted(k for k, v in env.items() if os.environ.get(k) != v)


def line(
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    code: int | None,
    seconds: float,
    err: str = "",
) -> str:
    """The trace of one command (several lines when it failed with stderr)."""
    import shlex

    from am import termsafe  # the child's stderr, like its arguments, may be anyone's text

    text = f"am: debug: {shlex.join(redact([os.fspath(a) for a in argv]))}"
    names = env_names(env)
    if names:
        text += f" [env: {', '.join(names)}]"
    text += f" -> exit {'?' if code is None else code} in {seconds * 1000:.0f} ms"
    if code and err.strip():
        tail = err.rstrip().splitlines()[-FAILED_LINES:]
        text += "".join(f"\nam: debug:   | {t}" for t in tail)
    return termsafe.escape(text)


def report(
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    code: int | None,
    seconds: float,
    err: str = "",
) -> None:
    """Write the trace of one command to stderr, when AM_DEBUG is set."""
    if enabled():
        print(line(argv, env, code, seconds, err), file=sys.stderr, flush=True)

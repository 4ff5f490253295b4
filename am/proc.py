"""Running external commands: every git, tmux and engine call goes through here, as argument lists.

``sh`` is imported lazily: it costs more to import than the rest of am together, and commands
such as ``am --version`` never run anything.
"""

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from am.errors import AmError


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def last_lines(self, n: int = 10) -> str:
        lines = (self.err or self.out).strip().splitlines()
        return "\n".join(lines[-n:])


class NotFound(AmError):
    """The program is not on PATH."""


def run(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float | None = None,
) -> Result:
    """Run ARGV to completion and capture its output; never raises on a non-zero exit."""
    import sh

    argv = [os.fspath(a) for a in argv]
    try:
        cmd = sh.Command(argv[0])
    except sh.CommandNotFound:
        raise NotFound(f"{argv[0]} not found in PATH") from None
    # No pseudo-terminal: output is data, so no colours, pagers or progress meters.
    kwargs = dict(_ok_code=list(range(256)), _return_cmd=True, _decode_errors="replace",
                  _tty_out=False)
    if cwd is not None:
        kwargs["_cwd"] = os.fspath(cwd)
    if env is not None:
        kwargs["_env"] = dict(env)
    if stdin is not None:
        kwargs["_in"] = stdin
    if timeout is not None:
        kwargs["_timeout"] = timeout
    try:
        done = cmd(*argv[1:], **kwargs)
    except sh.TimeoutException:
        return Result(124, "", f"{argv[0]} timed out after {timeout}s")
    except sh.SignalException as e:
        return Result(128 + abs(e.exit_code), _text(e.stdout), _text(e.stderr))
    return Result(done.exit_code, _text(done.stdout), _text(done.stderr))


def run_fg(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    """Run ARGV attached to this terminal (for attach) and return its exit code."""
    import sh

    argv = [os.fspath(a) for a in argv]
    try:
        cmd = sh.Command(argv[0])
    except sh.CommandNotFound:
        raise NotFound(f"{argv[0]} not found in PATH") from None
    kwargs = dict(_fg=True, _ok_code=list(range(256)))
    if env is not None:
        kwargs["_env"] = dict(env)
    return cmd(*argv[1:], **kwargs).exit_code


def stream(argv: Sequence[str], *, cwd=None, env=None, on_line=None) -> Result:
    """Run ARGV, passing each output line to ON_LINE as it comes (for long builds)."""
    import sh

    argv = [os.fspath(a) for a in argv]
    try:
        cmd = sh.Command(argv[0])
    except sh.CommandNotFound:
        raise NotFound(f"{argv[0]} not found in PATH") from None
    tail: list[str] = []

    def collect(line):
        tail.append(line)
        del tail[:-40]
        if on_line:
            on_line(line)

    kwargs = dict(_ok_code=list(range(256)), _out=collect, _err_to_out=True, _return_cmd=True,
                  _tty_out=False)
    if cwd is not None:
        kwargs["_cwd"] = os.fspath(cwd)
    if env is not None:
        kwargs["_env"] = dict(env)
    done = cmd(*argv[1:], **kwargs)
    return Result(done.exit_code, "".join(tail), "".join(tail))


def _text(b) -> str:
    if isinstance(b, bytes):
        return b.decode("utf-8", "replace")
    return b or ""

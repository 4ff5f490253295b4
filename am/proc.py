"""Running external commands: every git, tmux and engine call goes through here, as argument lists.

Short calls whose output am reads (``run``) use the standard library's ``subprocess``: on these
machines ``sh`` costs about 12 ms a call (it forks the interpreter and handshakes with the child
before the exec) against about 1 ms, and 100-130 ms to import, which alone is more than a spawn's
whole budget over git's own work (docs/performance.md). What holds the terminal (``run_fg``)
runs through ``subprocess`` too, which reports its exit status (``sh``'s ``_fg`` returns None);
``sh`` streams what runs for minutes (``stream``), imported only there.
"""

import os
import subprocess
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
    argv = [os.fspath(a) for a in argv]
    try:
        done = subprocess.run(argv, cwd=cwd, env=None if env is None else dict(env),
                              input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired:  # run() has killed and reaped the child
        return Result(124, "", f"{argv[0]} timed out after {timeout}s")
    except FileNotFoundError:
        if cwd is not None and not os.path.isdir(cwd):
            raise
        raise NotFound(f"{argv[0]} not found in PATH") from None
    except PermissionError:
        raise NotFound(f"{argv[0]} is not executable") from None
    code = done.returncode
    # A child killed by a signal reads as 128+N, as a shell reports it.
    return Result(128 - code if code < 0 else code, done.stdout, done.stderr)


def _sh_command(program: str):
    import sh  # only here: its import alone costs 100-130 ms

    try:
        return sh.Command(program)
    except sh.CommandNotFound:
        raise NotFound(f"{program} not found in PATH") from None


def run_fg(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    """Run ARGV attached to this terminal (for attach) and return its exit code."""
    argv = [os.fspath(a) for a in argv]
    try:
        code = subprocess.call(argv, env=None if env is None else dict(env))
    except FileNotFoundError:
        raise NotFound(f"{argv[0]} not found in PATH") from None
    except PermissionError:
        raise NotFound(f"{argv[0]} is not executable") from None
    return 128 - code if code < 0 else code


def stream(argv: Sequence[str], *, cwd=None, env=None, on_line=None) -> Result:
    """Run ARGV, passing each output line to ON_LINE as it comes (for long builds)."""
    argv = [os.fspath(a) for a in argv]
    cmd = _sh_command(argv[0])
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

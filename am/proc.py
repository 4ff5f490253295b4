"""Running external commands: every git, tmux and engine call goes through here, as argument lists.

Short calls whose output am reads (``run``, ``Background``) are a ``Child``: started with
``posix_spawn``, without the standard library's ``subprocess``, whose import (with ``threading``,
``locale`` and ``selectors``) is several milliseconds of every spawn's CPU under load
(docs/performance.md). ``sh`` costs about 12 ms a call (it forks the interpreter and handshakes
with the child before the exec) and 100-130 ms to import: it runs only what streams for minutes
(``stream``), imported only there. What holds the terminal (``run_fg``), and what reads a
command's output as untrusted data (``reading``), are ``subprocess`` calls.
"""

from __future__ import annotations

import io
import os
import sys
import time

from am import trace
from am.errors import AmError

TYPE_CHECKING = False  # collections.abc imports all of collections: am list imports none
if TYPE_CHECKING:
    import contextlib
    from collections.abc import Iterator, Mapping, Sequence


class Result:
    __slots__ = ("code", "out", "err")

    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code!r}, out={self.out!r}, err={self.err!r})"

    @property
    def ok(self) -> bool:
        return self.code == 0

    def last_lines(self, n: int = 10) -> str:
        lines = (self.err or self.out).strip().splitlines()
        return "\n".join(lines[-n:])

    def brief(self, n: int = 3) -> str:
        """The last N non-blank lines of the command's message, on one line (for an error:
        the last line alone often drops the cause, as in git's "error: ..." then "fatal: ...")."""
        lines = [t.strip() for t in (self.err or self.out).splitlines() if t.strip()]
        return "; ".join(lines[-n:])


def stat_fields(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name (its state first, its start time
    20th); empty if there is no such process. The name is the process's own choice, so the
    fields are found after its last ')'."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except (OSError, ValueError):
        return []
    return text.rpartition(")")[2].split()


def identity(pid: int | str | None = None) -> str | None:
    """The process PID (this one by default) as ``PID:START``, its start time in clock ticks
    since boot: a process that gets the pid later has another. None if there is none."""
    pid = str(os.getpid() if pid is None else pid)
    fields = stat_fields(pid) if pid.isdigit() else []
    return f"{pid}:{fields[19]}" if len(fields) > 19 else None


def shell_code(code: int) -> int:
    """A child's exit code as a shell reports it: one killed by signal N reads as 128+N."""
    return 128 - code if code < 0 else code


class NotFound(AmError):
    """The program is not on PATH."""


def which(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The program NAME as ``shutil.which`` finds it on POSIX (ENV's PATH, os.environ's by
    default, else the system's default path; an executable file, not a folder), without
    importing ``shutil``: with its compression modules that is 2-3 ms of every spawn, which
    asks for tmux each time."""

    def runnable(path: str) -> bool:
        return os.path.exists(path) and os.access(path, os.X_OK) and not os.path.isdir(path)

    if os.path.dirname(name):
        return name if runnable(name) else None
    path = (os.environ if env is None else env).get("PATH")
    if path is None:
        try:
            path = os.confstr("CS_PATH")
        except (AttributeError, ValueError):  # no confstr, or no CS_PATH, here
            path = os.defpath
    seen = set()
    for folder in path.split(os.pathsep) if path else ():
        if folder not in seen:
            seen.add(folder)
            found = os.path.join(folder, name)
            if runnable(found):
                return found
    return None


def run(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | io.BufferedIOBase | None = None,
    timeout: float | None = None,
    settle: bool = False,
) -> Result:
    """Run ARGV to completion and capture its output; never raises on a non-zero exit. STDIN
    is text to write, or an open binary file to read from. SETTLE: an interrupt (Ctrl-C, a
    stop) is raised only once ARGV has ended (within TIMEOUT), not by killing it: for a call
    that makes what an undo then looks for (a tmux session, a container), whose work killed
    mid-way could still land after the undo looked (the tmux server, dockerd)."""

    argv = [os.fspath(a) for a in argv]
    started = time.monotonic()
    res = None
    early = sys.modules.get("am.prefetch")  # imported only by a command that started calls
    if early is not None and cwd is None and env is None and stdin is None and not settle:
        res = early.take(argv, timeout)
    if res is None:
        res = _run(argv, cwd, env, stdin, timeout, settle)
    trace.report(argv, env, res.code, time.monotonic() - started, res.err)
    return res


def _run(argv, cwd, env, stdin, timeout, settle=False) -> Result:
    if any("\0" in a for a in argv):
        # No program can be given it (a hand-edited record's name, say): a failed call, as
        # any other the caller explains, not a traceback.
        return Result(126, "", f"{argv[0]}: an argument holds a NUL character")
    data = stdin.encode("utf-8", "replace") if isinstance(stdin, str) else None
    infd = None if data is not None or stdin is None else stdin.fileno()
    try:
        code, out, err = _captured(argv, cwd, env, infd, data, timeout, settle)
    except _Late:  # killed and reaped
        return Result(124, "", f"{argv[0]} timed out after {timeout}s")
    except FileNotFoundError:
        if cwd is not None and not os.path.isdir(cwd):
            raise
        raise NotFound(f"{argv[0]} not found in PATH") from None
    except PermissionError:
        raise NotFound(f"{argv[0]} is not executable") from None
    return Result(code, _text(out), _text(err))


# How long an interrupted call without a timeout of its own is let end: a hung tmux must not
# hold a --count spawn's child, which takes no second stop, for ever.
SETTLE_MAX = 60.0


class _Late(Exception):
    """The call ran past its time, and was killed."""


def _captured(argv, cwd, env, infd, data, timeout, settle) -> tuple[int, bytes, bytes]:
    """ARGV run to its end: (exit code, output, errors). SETTLE: a stop (an interrupt) while
    it runs waits for it to end before it goes on, and one while it starts is held until it
    has: raised from its start, it would leave the child running, unwaited, on its way to
    make what the undo has already looked for. Without, a stop kills it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    held = _held_stops() if settle else _no_hold
    child = None
    try:
        with held:
            # Settled, it is out of the terminal's process group too: a Ctrl-C there would
            # kill it (a podman or docker client) while its engine goes on making the container.
            child = Child(
                argv,
                env,
                reading=True,
                errors=True,
                stdin=infd,
                data=data,
                cwd=cwd,
                group=settle and _main_thread(),  # where a stop is held: see above
            )
        held.deliver()
        if not (child.collect(deadline) and child.done(_left(deadline))):
            child.end()
            raise _Late
        out, err = child.output()
        return child.wait(), out, err
    except _Late:
        raise
    except BaseException:
        if child is None:  # it never started: a stop noted meanwhile is said, not the error
            held.deliver()
            raise
        if settle:
            _say_waiting(argv[0])
            try:  # it is read on from where it was cut off, within what is left of TIMEOUT
                until = time.monotonic() + (SETTLE_MAX if deadline is None else _left(deadline))
                if not (child.collect(until) and child.done(_left(until))):
                    child.end()
            except BaseException:  # a second Ctrl-C: the user will not wait for it
                child.end()
                raise
        child.end()
        raise


def _say_waiting(program: str) -> None:
    """Why a stop has not stopped am at once (the settled call's child is out of the
    terminal's reach, and waited for)."""
    try:
        print(
            f"am: waiting for {os.path.basename(program)} to finish what it makes; "
            "Ctrl-C again to stop it now",
            file=sys.stderr,
            flush=True,
        )
    except (OSError, ValueError):  # no one reads am's errors any more
        pass


def _main_thread() -> bool:
    threading = sys.modules.get("threading")
    return threading is None or threading.current_thread() is threading.main_thread()


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _text(data: bytes) -> str:
    """A command's output as text, its line ends as Python's text mode reads them."""
    text = data.decode("utf-8", "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


class _held_stops:
    """Within: SIGINT, SIGTERM and SIGHUP, where Python handles them, are noted rather than
    handled; ``deliver()`` then runs the handler of the first one noted, once. Outside the
    main thread (where no handler can be set) nothing is held."""

    def __init__(self):
        self.noted: list[tuple[int, object]] = []
        self.before: dict = {}

    def __enter__(self):
        import signal

        try:
            for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                handler = signal.getsignal(s)
                if callable(handler):
                    self.before[s] = signal.signal(s, self._note)
        except ValueError:  # not the main thread
            pass
        except BaseException:  # a stop's handler ran (and raised) before its own was swapped
            self.__exit__()
            raise
        return self

    def _note(self, signum, frame) -> None:
        self.noted.append((signum, frame))

    def __exit__(self, *_exc) -> None:
        """Every handler back, though a stop that came after the first is back runs (and
        raises) within the next ``signal.signal``: it is raised once all are."""
        import signal

        came = None
        for s, handler in self.before.items():
            # Not one the handler that ran has set itself (a stop's, to take no second one).
            while signal.getsignal(s) == self._note:
                try:
                    signal.signal(s, handler)
                except BaseException as e:  # not set: a pending stop's handler ran first
                    came = came or e
        if came is not None:
            raise came

    def deliver(self) -> None:
        if self.noted:
            signum, frame = self.noted[0]
            self.noted.clear()
            self.before[signum](signum, frame)


class _NoHold:
    """As ``_held_stops``, holding nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *_exc) -> None:
        pass

    def deliver(self) -> None:
        pass


_no_hold = _NoHold()


class Background:
    """ARGV running beside the caller, its output captured; ``result`` waits for it."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None, pass_fds=()):
        self.argv = [os.fspath(a) for a in argv]
        self.env = env
        self.started = time.monotonic()
        try:
            self.child = Child(self.argv, env, reading=True, errors=True, keep=pass_fds)
        except FileNotFoundError:
            raise NotFound(f"{self.argv[0]} not found in PATH") from None
        except OSError as e:
            raise AmError(f"cannot run {self.argv[0]}: {e.strerror or e}") from None

    def result(self) -> Result:
        """Its Result, once it has ended."""
        self.child.collect()
        code = self.child.wait()
        out, err = (_text(data) for data in self.child.output())
        trace.report(self.argv, self.env, code, time.monotonic() - self.started, err)
        return Result(code, out, err)

    def end(self) -> None:
        """Kill it, if it still runs, and wait until it has ended: an undo removes what it
        was writing only after."""
        if self.child.code is None:
            self.child.end()
            err = _text(self.child.output()[1])
            trace.report(self.argv, self.env, self.child.code, time.monotonic() - self.started, err)


def quick(argv: Sequence[str]) -> Result:
    """A short call whose output am reads, spawned without the ``subprocess`` module (for
    ``am list``'s one tmux call); standard input and errors go to /dev/null."""
    argv = [os.fspath(a) for a in argv]
    started = time.monotonic()
    early = sys.modules.get("am.prefetch")
    # Failed or not, as a call made here: its errors go to /dev/null either way.
    res = early.take(argv, failed=True) if early is not None else None
    if res is not None:
        trace.report(argv, None, res.code, time.monotonic() - started)
        return res
    try:
        child = Child(argv, reading=True, traced=True)
    except FileNotFoundError:
        raise NotFound(f"{argv[0]} not found in PATH") from None
    out = child.read()
    return Result(child.wait(), (out or b"").decode("utf-8", "replace"), "")


# Children dropped while they still ran: reaped at the next start (``Child.__del__``).
_dropped: list[Child] = []


class Child:
    """ARGV started with ``posix_spawn``, without the ``subprocess`` module, whose import is
    a tenth of a spawn's own Python under load and costs ``am list`` more than its call.
    Its input is the descriptor STDIN (default /dev/null), or a pipe that ``collect`` writes
    DATA to; its output goes to a pipe with READING, its errors with ERRORS, each else to
    /dev/null. The descriptors KEEP stay open in it, and no other (``inherited``). With
    TRACED its end is reported as any call's. ENV's PATH finds ARGV[0] (os.environ's if
    None), and CWD is its working directory, both as ``subprocess`` has them."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        reading: bool = False,
        errors: bool = False,
        stdin: int | None = None,
        data: bytes | None = None,
        keep: Sequence[int] = (),
        traced: bool = False,
        cwd: str | os.PathLike | None = None,
        group: bool = False,
    ):
        """GROUP: in a process group of its own, where a terminal's Ctrl-C does not reach it."""
        self.argv, self.env, self.traced = list(argv), env, traced
        self.code: int | None = None
        # Our ends of its pipes, while open: its input, output and errors.
        self.into: int | None = None
        self.out: int | None = None
        self.err: int | None = None
        self.got: dict[str, list[bytes]] = {"out": [], "err": []}
        self.data, self.sent = memoryview(data or b""), 0
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        ends, theirs, ours = [null if stdin is None else stdin, null, null], [null], {}
        try:
            for n, name, wanted in (
                (0, "into", data is not None),
                (1, "out", reading),
                (2, "err", errors),
            ):
                if wanted:
                    r, w = os.pipe()
                    ours[name], ends[n] = (w, r) if n == 0 else (r, w)
                    theirs.append(ends[n])
            self.pid = _spawn(self.argv, env, ends, keep, cwd, group)
        except BaseException:
            for fd in ours.values():
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        self.into, self.out, self.err = ours.get("into"), ours.get("out"), ours.get("err")
        self.started = time.monotonic()

    def read(self, within: float | None = None) -> bytes | None:
        """Its whole output, once it closes it; None if that takes more than WITHIN seconds
        (None: however long). The pipe is closed either way."""
        if self.out is None:  # made without READING, or read already
            return b""
        try:
            if not self.collect(None if within is None else time.monotonic() + within):
                return None
            return b"".join(self.got["out"])
        finally:
            self._close("out")

    def done(self, within: float | None = 0.0) -> bool:
        """Whether it has ended, or does within WITHIN seconds (None: however long); then
        ``wait`` returns at once."""
        if self.code is not None or self._reap(os.WNOHANG):
            return True
        if within is None:
            self.wait()
            return True
        if within > 0:
            import select

            try:
                fd = os.pidfd_open(self.pid)
            except (AttributeError, OSError):  # no pidfds (macOS, an old kernel): polls
                return self._polled(within)
            try:
                select.select([fd], [], [], within)
            finally:
                os.close(fd)
        return self._reap(os.WNOHANG)

    def _polled(self, within: float) -> bool:
        deadline, pause = time.monotonic() + within, 0.001
        while not self._reap(os.WNOHANG):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)
        return True

    def wait(self) -> int:
        """Its exit code (as a shell reports it), once it has ended."""
        while self.code is None:
            self._reap(0)
        return self.code

    def collect(self, deadline: float | None = None) -> bool:
        """Write its DATA, and read its output and errors, until it has closed all three;
        False if DEADLINE (of ``time.monotonic``) comes first. One cut off (a stop, say) is
        taken up where it was by the next; ``output`` gives what was read."""
        import select

        poller, names = select.poll(), {}
        for name in ("into", "out", "err"):
            fd = getattr(self, name)
            if fd is not None:
                names[fd] = name
                poller.register(fd, select.POLLOUT if name == "into" else select.POLLIN)
        while names:
            left = _left(deadline)
            if left == 0:  # checked on every pass: output that keeps coming is no excuse
                return False
            ready = poller.poll(None if left is None else int(left * 1000) + 1)
            for fd, _event in ready:
                name = names[fd]
                if name == "into":
                    finished = self._send(fd)
                else:
                    chunk = os.read(fd, 65536)
                    self.got[name].append(chunk)
                    finished = not chunk
                if finished:
                    poller.unregister(fd)
                    del names[fd]
                    self._close(name)
        return True

    def _send(self, fd: int) -> bool:
        """The next piece of DATA written (PIPE_BUF bytes, which a ready pipe takes without
        blocking); whether all of it is, or the reader has gone."""
        piece = self.data[self.sent : self.sent + 512]
        if piece:
            try:
                self.sent += os.write(fd, piece)
            except BrokenPipeError:  # it reads no more: what it made of that is its answer
                return True
        return self.sent >= len(self.data)

    def _close(self, name: str) -> None:
        fd = getattr(self, name)
        if fd is not None:
            setattr(self, name, None)
            os.close(fd)

    def output(self) -> tuple[bytes, bytes]:
        """What ``collect`` has read of its output and errors."""
        return b"".join(self.got["out"]), b"".join(self.got["err"])

    def end(self) -> None:
        """Kill it, if it still runs, wait until it has ended, and close its pipes."""
        for name in ("into", "out", "err"):
            self._close(name)
        if self.code is None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
            self.wait()

    def __del__(self) -> None:
        """Dropped unended (an undo that never came to it): its pipes closed, and reaped
        at a later start if it still runs, as ``subprocess`` does, not left a zombie."""
        try:
            for name in ("into", "out", "err"):
                self._close(name)
            if getattr(self, "pid", None) is not None and self.code is None:
                if not self._reap(os.WNOHANG):
                    _dropped.append(self)
        except Exception:  # noqa: BLE001 (an interpreter that is ending)
            pass

    def _reap(self, flags: int) -> bool:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped by another wait: how it ended is not known
            pid, status = self.pid, -1
        if pid == 0:
            return False
        self.code = shell_code(os.waitstatus_to_exitcode(status)) if status >= 0 else 255
        if self.traced:
            trace.report(self.argv, self.env, self.code, time.monotonic() - self.started)
        return True


def _spawn(
    argv: list[str], env, ends: list[int], keep: Sequence[int], cwd, group: bool = False
) -> int:
    """ARGV started with ENDS as its descriptors 0-2 and KEEP open too, in CWD, found on
    ENV's PATH as ``subprocess`` finds it, in a process group of its own if GROUP; its pid."""
    try:  # the C module: ``signal`` would import ``enum``, which am list does not
        import _signal as sig
    except ImportError:
        import signal as sig  # type: ignore[no-redef]

    for child in list(_dropped):
        if child._reap(os.WNOHANG):
            _dropped.remove(child)
    if sig.getsignal(sig.SIGCHLD) == sig.SIG_IGN:
        # Inherited from am's parent: the kernel would reap every child itself, and each
        # call would read as failed (subprocess took that for success).
        try:
            sig.signal(sig.SIGCHLD, sig.SIG_DFL)
        except ValueError:  # not the main thread
            pass
    here = None if cwd is None or _threads() else _here()
    if cwd is not None and here is None:
        # Another thread could see this process's working directory change (or it has none
        # to come back to): subprocess changes the child's own.
        return _popen(argv, env, ends, keep, cwd, group)
    was: list[bool] = []
    # No signal's handler runs while this process is in CWD (none would expect it there),
    # and the child gets the mask as it was.
    mask = sig.pthread_sigmask(sig.SIG_BLOCK, sig.valid_signals()) if here is not None else None
    try:
        for fd in keep:
            was.append(os.get_inheritable(fd))
            os.set_inheritable(fd, True)
        actions = [(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(ends)]
        # As subprocess's close_fds: what am's own parent left open to it stays out.
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited(keep)]
        if here is not None:
            os.chdir(cwd)
        program = argv[0]
        if env is not None and not os.path.dirname(program):
            program = which(program, env) or _missing(program)
        return os.posix_spawnp(
            program,
            argv,
            os.environ if env is None else env,
            file_actions=actions,
            # As subprocess's restore_signals: Python ignores these, a child would inherit it.
            setsigdef=(sig.SIGPIPE, sig.SIGXFSZ),
            **({"setpgroup": 0} if group else {}),
            **({} if mask is None else {"setsigmask": mask}),
        )
    finally:
        for fd, inheritable in zip(keep, was, strict=False):
            os.set_inheritable(fd, inheritable)
        if here is not None:
            try:
                os.fchdir(here)
            finally:
                os.close(here)
                sig.pthread_sigmask(sig.SIG_SETMASK, mask)


def start_detached(argv: Sequence[str], env: Mapping[str, str], err_path: str, cwd: str) -> int:
    """Start ARGV in CWD, in a session of its own (no terminal's signal reaches it), its input
    and output /dev/null and its errors appended to ERR_PATH; not waited for. Its pid."""
    try:
        import _signal as sig
    except ImportError:
        import signal as sig  # type: ignore[no-redef]

    which(argv[0], env) or _missing(argv[0])
    # The shell leaves this process's own folder as it is: another thread may be using it.
    program = ["/bin/sh", "-c", 'cd -- "$0" && exec "$@"', cwd, *argv]
    append = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, err_path, append, 0o600),
    ]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited()]
    pid = os.posix_spawn(
        program[0],
        program,
        env,
        file_actions=actions,
        setsid=True,
        # What am ignores or holds for a moment is not for a long-lived program to inherit.
        setsigmask=(),
        setsigdef=(sig.SIGPIPE, sig.SIGXFSZ, sig.SIGINT, sig.SIGTERM, sig.SIGHUP),
    )
    trace.report(argv, None, None, 0.0)
    return pid


def _popen(argv: list[str], env, ends: list[int], keep: Sequence[int], cwd, group=False) -> int:
    """ARGV started by ``subprocess`` in CWD, for ``_spawn``; its pid. ``Child`` reaps it."""
    import subprocess

    popen = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=ends[0],
        stdout=ends[1],
        stderr=ends[2],
        pass_fds=keep,
        process_group=0 if group else None,
    )
    # Popen would otherwise reap it itself, at its next start, and take its exit status.
    popen.returncode = 0
    return popen.pid


def _missing(program: str):
    raise FileNotFoundError(f"{program} not found in PATH")


def _here() -> int | None:
    """A descriptor of this process's working directory, to come back to; None if it has
    none that opens."""
    try:
        return os.open(".", getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def _threads() -> bool:
    """Whether Python threads other than this one run."""
    threading = sys.modules.get("threading")
    return threading is not None and threading.active_count() > 1


def inherited(keep: Sequence[int] = ()) -> list[int]:
    """This process's descriptors past 2 that a program it starts would get (not
    close-on-exec: Python opens none so, but am's own parent may have left some open, a
    ``9>lock`` of a script, say), except KEEP."""
    try:
        names = os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd")
    except OSError:
        return []
    found = []
    for name in names:
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                if os.get_inheritable(fd):
                    found.append(fd)
            except OSError:  # the listing's own, closed by now
                pass
    return found


def _sh_command(program: str):
    import sh  # only here: its import alone costs 100-130 ms

    try:
        return sh.Command(program)
    except sh.CommandNotFound:
        raise NotFound(f"{program} not found in PATH") from None


def run_fg(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    """Run ARGV attached to this terminal (for attach) and return its exit code."""
    import subprocess  # here: its import costs more than am list's own work

    argv = [os.fspath(a) for a in argv]
    started = time.monotonic()
    try:
        code = subprocess.call(argv, env=None if env is None else dict(env))
    except FileNotFoundError:
        raise NotFound(f"{argv[0]} not found in PATH") from None
    except PermissionError:
        raise NotFound(f"{argv[0]} is not executable") from None
    code = shell_code(code)
    trace.report(argv, env, code, time.monotonic() - started)
    return code


def stream(argv: Sequence[str], *, cwd=None, env=None, on_line=None) -> Result:
    """Run ARGV, passing each output line to ON_LINE as it comes (for long builds)."""
    argv = [os.fspath(a) for a in argv]
    started = time.monotonic()
    cmd = _sh_command(argv[0])
    tail: list[str] = []

    def collect(line):
        tail.append(line)
        del tail[:-40]
        if on_line:
            on_line(line)

    kwargs = dict(
        _ok_code=list(range(256)), _out=collect, _err_to_out=True, _return_cmd=True, _tty_out=False
    )
    if cwd is not None:
        kwargs["_cwd"] = os.fspath(cwd)
    if env is not None:
        kwargs["_env"] = dict(env)
    done = cmd(*argv[1:], **kwargs)
    trace.report(argv, env, done.exit_code, time.monotonic() - started, "".join(tail))
    return Result(done.exit_code, "".join(tail), "".join(tail))


class TooLarge(AmError):
    """A command gave more output than its reader takes."""


class TimedOut(AmError):
    """A command ran past its time, or gave no output for too long, and was killed."""


class Pipe(io.RawIOBase):
    """The stdout of a running command, read as untrusted data: at most LIMIT bytes; the
    command is killed when it gives nothing for IDLE seconds or runs past TOTAL seconds."""

    def __init__(self, popen, limit: int, idle: float, total: float | None, on_timeout):
        self.popen, self.limit, self.idle, self.total = popen, limit, idle, total
        self.on_timeout = on_timeout
        self.count = 0
        self.code: int | None = None
        self.timed_out = False
        import collections  # here, as threading: am list imports neither
        import threading  # here: subprocess, which a Pipe reads, needs it anyway; am list not

        self._err: collections.deque = collections.deque(maxlen=64)
        self._last = self._start = time.monotonic()
        self._done = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, daemon=True),
            threading.Thread(target=self._drain_err, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        data = os.read(self.popen.stdout.fileno(), min(len(buf), 1 << 20))
        self._last = time.monotonic()
        self.count += len(data)
        if self.count > self.limit:
            self.popen.kill()
            raise TooLarge(f"more than {self.limit} bytes")
        if not data and self.timed_out:
            raise TimedOut(f"no answer within {self.idle:.0f}s")
        buf[: len(data)] = data
        return len(data)

    @property
    def err(self) -> str:
        """The last lines the command wrote on stderr."""
        return b"".join(self._err).decode("utf-8", "replace")[-8192:]

    def _watch(self) -> None:
        while not self._done.wait(0.25):
            now = time.monotonic()
            if now - self._last > self.idle or (self.total and now - self._start > self.total):
                self.timed_out = True
                self.popen.kill()
                if self.on_timeout:
                    try:
                        self.on_timeout()
                    except Exception:  # noqa: BLE001 (the kill above is what matters)
                        pass
                return

    def _drain_err(self) -> None:
        for chunk in iter(lambda: self.popen.stderr.read1(4096), b""):
            self._err.append(chunk)

    def exited(self, timeout: float = 5) -> int | None:
        """The command's exit status if it ends within TIMEOUT seconds (its stderr read)."""
        import subprocess  # here: its import costs more than am list's own work

        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._threads[1].join(timeout)
        return code

    def finish(self, failed: bool) -> None:
        """Read what is left (or kill, when the reader gave up), reap the command."""
        try:
            if failed:
                self.popen.kill()
            else:
                while self.read(1 << 16):
                    pass
        finally:
            if failed or self.timed_out:
                self.popen.kill()
            self.code = self.popen.wait()
            self._done.set()
            for t in self._threads:
                t.join(5)
            self.popen.stdout.close()
            self.popen.stderr.close()
        if self.timed_out:
            raise TimedOut(f"no answer within {self.idle:.0f}s")


def reading(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    limit: int,
    idle: float,
    total: float | None = None,
    on_timeout=None,
    data: bytes | None = None,
) -> contextlib.AbstractContextManager[Pipe]:
    """Run ARGV and give its stdout as a ``Pipe`` for the block; afterwards ``pipe.code`` and
    ``pipe.err`` say how it ended. DATA, if given, is its standard input. Raises TooLarge or
    TimedOut (the command is then killed)."""
    import contextlib  # here: am list imports this module, and no contextlib

    return contextlib.contextmanager(_reading)(argv, env, limit, idle, total, on_timeout, data)


def _reading(argv, env, limit, idle, total, on_timeout, data) -> Iterator[Pipe]:
    import subprocess  # here: its import costs more than am list's own work

    argv = [os.fspath(a) for a in argv]
    started = time.monotonic()
    try:
        popen = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL if data is None else subprocess.PIPE,
            env=None if env is None else dict(env),
        )
    except FileNotFoundError:
        raise NotFound(f"{argv[0]} not found in PATH") from None
    if data is not None:
        import threading

        threading.Thread(target=_feed, args=(popen.stdin, data), daemon=True).start()
    pipe = Pipe(popen, limit, idle, total, on_timeout)
    try:
        try:
            yield pipe
        except BaseException:
            pipe.finish(failed=True)
            raise
        pipe.finish(failed=False)
    finally:
        trace.report(argv, env, pipe.code, time.monotonic() - started, pipe.err)


def run_bytes(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    limit: int,
    timeout: float,
    on_timeout=None,
    data: bytes | None = None,
) -> tuple[int, bytes, str]:
    """Run ARGV to completion: (exit code, stdout, the end of stderr), output capped at LIMIT
    bytes and time at TIMEOUT seconds (TooLarge / TimedOut); DATA is its standard input."""
    with reading(
        argv, env=env, limit=limit, idle=timeout, total=timeout, on_timeout=on_timeout, data=data
    ) as pipe:
        out = pipe.read()
    return pipe.code, out, pipe.err


def _feed(stdin, data: bytes) -> None:
    """Write DATA to a child's standard input and close it (a child that stops reading ends
    the write, never the reader)."""
    try:
        with stdin:
            stdin.write(data)
    except OSError:
        pass


def run_file(
    argv: Sequence[str],
    path: os.PathLike,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> Result:
    """Run ARGV with the file PATH as its standard input; output captured as by ``run``."""
    import subprocess  # here: its import costs more than am list's own work

    argv = [os.fspath(a) for a in argv]
    started = time.monotonic()
    with open(path, "rb") as f:
        try:
            done = subprocess.run(
                argv,
                stdin=f,
                capture_output=True,
                timeout=timeout,
                env=None if env is None else dict(env),
            )
        except subprocess.TimeoutExpired:
            return Result(124, "", f"{argv[0]} timed out after {timeout}s")
        except FileNotFoundError:
            raise NotFound(f"{argv[0]} not found in PATH") from None
    res = Result(
        shell_code(done.returncode),
        done.stdout.decode(errors="replace"),
        done.stderr.decode(errors="replace"),
    )
    trace.report(argv, env, res.code, time.monotonic() - started, res.err)
    return res

"""A local podman service that a burst of spawns shares: one libpod, started once.

Each ``podman run`` process starts libpod afresh (its configuration, storage, database and
locks). Sent to a ``podman system service`` instead (``podman --remote``: the same command
line, parsed by the same client), 50 spawns at once took 0.78x of the CPU and wall time of 50
local runs here, and the containers are the same (their inspect differs only in the command
that made them).

A spawn that finds a service of its caller listening sends its ``run`` there. One that finds
none runs podman itself, as before, and starts a service for the spawns after it; the service
leaves after ``IDLE`` seconds without a request.

The service makes containers with its own process's settings, not the client's. So its socket
is named by a digest of everything of the caller's that podman could read: ids and groups,
umask, limits, capabilities, namespaces, cgroup, root, security label, environment, and the
podman program itself. A caller that differs in any of them never reaches another's service.
The socket lives in AM_HOME's private ``state/run`` folder, as the keeper's does.
"""

from __future__ import annotations

import os
import time

from am import files, proc

IDLE = 60  # seconds a service waits for its next request before it leaves
STARTING = 10  # seconds a service just started has to listen before another may start
MAX_SOCKET = 100  # longest socket path a unix address holds here (108 with its NUL), with room

# Environment that names no setting of podman's: where a shell was, and its depth.
SHELL_ONLY = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
STATUS_KEYS = ("Umask", "Uid", "Gid", "Groups", "Cap", "NoNewPrivs", "Seccomp")


def caller_digest(environ, podman: str) -> str | None:
    """A digest of what podman run by this process with ENVIRON would read of its caller
    (PODMAN: the program's path); None when any of it cannot be read."""
    parts: list[str] = []
    try:
        with open("/proc/self/status", encoding="utf-8", errors="replace") as f:
            parts += [line for line in f if line.startswith(STATUS_KEYS)]
        for name in ("limits", "cgroup", "attr/current"):
            parts.append(_text(f"/proc/self/{name}"))
        for ns in sorted(os.listdir("/proc/self/ns")):
            parts.append(f"{ns}={os.readlink(f'/proc/self/ns/{ns}')}")
        root = os.stat("/")
        st = os.stat(podman)
    except OSError:
        return None
    parts.append(f"root={root.st_dev}:{root.st_ino}")
    parts.append(f"podman={podman}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")
    parts += [f"{k}={v}" for k, v in sorted(environ.items()) if k not in SHELL_ONLY]
    return files.sha256_hex("\0".join(parts).encode("utf-8", "surrogateescape"))[:16]


def _text(path: str) -> str:
    """PATH's text; "" where this kernel has no such file (no security module, say)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""
    except OSError as e:
        if e.errno == 22:  # EINVAL: a security module that keeps no label
            return ""
        raise


def socket_path(run_dir: str, digest: str) -> str:
    return os.path.join(run_dir, f"podman-{digest}.sock")


def listening(path: str) -> bool:
    """Whether a service answers its ping at the unix socket PATH. (A bare connection that
    sends nothing costs the service a warning in its log each time.)"""
    from am import rawsock

    try:
        with rawsock.connect(path, 2) as s:
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            answer = s.recv(64)
    except OSError:
        return False
    return answer.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))


def served_argv(argv: list[str], run_dir: str, environ) -> list[str] | None:
    """ARGV (a ``podman run``) sent to this caller's service, when one listens; None when
    none does, and then one is started for the calls after this one."""
    podman = proc.which(argv[0], environ)
    digest = caller_digest(environ, podman) if podman else None
    if digest is None:
        return None
    sock = socket_path(run_dir, digest)
    if len(sock) > MAX_SOCKET:
        return None
    if listening(sock):
        return [argv[0], "--remote", "--url", f"unix://{sock}", *argv[1:]]
    start(podman, sock, environ)
    return None


def start(podman: str, sock: str, environ) -> None:
    """Start a service at SOCK in a session of its own, unless one is starting there."""
    import fcntl

    lock = os.open(sock[: -len(".sock")] + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another spawn is starting it
        mark = sock[: -len(".sock")] + ".started"
        try:
            if time.time() - os.stat(mark).st_mtime < STARTING and not listening(sock):
                return  # started a moment ago, not listening yet
        except FileNotFoundError:
            pass
        if listening(sock):
            return
        argv = [podman, "system", "service", "--time", str(IDLE), f"unix://{sock}"]
        pid = proc.start_detached(argv, environ, sock[: -len(".sock")] + ".err")
        files.write_atomic(mark, f"{pid}\n")
    finally:
        os.close(lock)


def stop(run_dir: str) -> list[int]:
    """End the services started for RUN_DIR's spawns that still run (they leave by themselves
    when idle); their pids."""
    import signal

    ended = []
    try:
        names = [n for n in os.listdir(run_dir) if n.startswith("podman-")]
    except FileNotFoundError:
        return ended
    for name in names:
        if not name.endswith(".started"):
            continue
        sock = os.path.join(run_dir, name[: -len(".started")] + ".sock")
        try:
            with open(os.path.join(run_dir, name)) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
            if f"unix://{sock}".encode() in cmdline and b"service" in cmdline:
                os.kill(pid, signal.SIGTERM)
                ended.append(pid)
        except (OSError, ValueError):
            continue
    return ended


def unreachable(err: str) -> bool:
    """Whether a ``podman --remote`` call failed to reach its service (so it made nothing):
    the client's own words when its first request finds no one listening."""
    return "unable to connect to Podman socket" in err

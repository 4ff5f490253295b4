"""A local podman service that a burst of spawns shares: one libpod, started once.

Each ``podman run`` process starts libpod afresh (its configuration, storage, database and
locks). Sent to a ``podman system service`` instead (``podman --remote``: the same command
line, parsed by the same client), 50 spawns at once took 0.78x of the CPU and wall time of 50
local runs here, and the containers are the same (their inspect differs only in the command
that made them).

A spawn that finds a service of its caller listening sends its ``run`` there. One that finds
none runs podman itself, as before, and starts a service for the spawns after it; the service
leaves after ``IDLE`` seconds without a request. Any trouble with the service (it cannot
start, it left between the look and the run) leaves the run to podman itself.

The service makes containers with its own process's settings, not the client's. So its socket
is named by a digest of everything of the caller's that podman could read: ids and groups,
umask, limits, capabilities, ignored signals, namespaces, cgroup, root, security label,
scheduling (nice, policy, I/O priority, CPUs and memory nodes), OOM score, personality,
environment, the podman program and the configuration files it reads. A caller that
differs in any of them never reaches another's service. Its files live in AM_HOME's private
``state/run/podman/`` folder, and its working folder (where conmon drops its ``oom`` marker)
is a private one there too. What an agent adds to its client's environment (``--env``
values, its task) stays out of the service's.
"""

from __future__ import annotations

import os
import time

from am import files, proc

IDLE = 60  # seconds a service waits for its next request before it leaves
MAX_SOCKET = 100  # longest socket path a unix address holds here (108 with its NUL), with room
STALE = 86400  # seconds after which a service's files with no service are removed
# A path podman reads as a URL unchanged: '#', '?', '%' or a space would cut or change it.
SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-")

# Environment that names no setting of podman's: where a shell was, and its depth (and am's
# own AM_ variables).
SHELL_ONLY = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
STATUS_KEYS = (
    "Umask",
    "Uid",
    "Gid",
    "Groups",
    "Cap",
    "NoNewPrivs",
    "Seccomp",
    "Cpus_allowed_list",
    "Mems_allowed_list",
    "SigIgn",  # nohup's SIGHUP, say: a local podman would pass it on
)
# Names podman (or what it runs) may read from its own environment as a setting of its own,
# or that change how the program itself runs (its loader, C library, Go runtime).
PODMAN_READS = (
    "CONTAINER",
    "PODMAN",
    "BUILDAH",
    "STORAGE",
    "REGISTR",
    "XDG_",
    "LC_",
    "_CONTAINERS",
    "LD_",
    "MALLOC_",
    "GLIBC_",
    "SSL_",
    "DBUS_",
    "SYSTEMD_",
    "LISTEN_",
    "DOCKER_",
)
PODMAN_READS_EXACT = frozenset(
    {"HOME", "PATH", "TMPDIR", "TZ", "LANG", "USER", "LOGNAME", "NOTIFY_SOCKET", "container",
     "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "FTP_PROXY", "http_proxy", "https_proxy",
     "no_proxy", "ftp_proxy", "GODEBUG", "GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GOTRACEBACK"}
)  # fmt: skip
# ioprio_get(2) by machine and whether the interpreter is 64-bit (a 32-bit one on a 64-bit
# kernel uses its own ABI's numbers); no /proc file tells a process's I/O priority.
IOPRIO_GET = {
    ("x86_64", True): 252,
    ("x86_64", False): 290,  # i386's: 252 is exit_group there
    ("i686", False): 290,
    ("aarch64", True): 31,
    ("aarch64", False): 315,  # arm's
    ("armv7l", False): 315,
    ("riscv64", True): 31,
    ("ppc64le", True): 274,
    ("s390x", True): 283,
}


def podman_reads(name: str) -> bool:
    """Whether podman may read the environment variable NAME as a setting of its own."""
    return name in PODMAN_READS_EXACT or name.startswith(PODMAN_READS)


def config_files(environ) -> list[str]:
    """The configuration files and folders podman reads (containers, storage, registries,
    mounts, policy, OCI hooks), for the digest: an edit makes a new service, as it would a new
    ``podman run``."""
    home = environ.get("HOME", "")
    user = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    uid = str(os.geteuid())
    found = []
    for top in ("/usr/share/containers", "/etc/containers", os.path.join(user, "containers")):
        for name in ("containers", "containers.rootless", "storage", "registries", "mounts"):
            conf = os.path.join(top, name + ".conf")
            found += [conf, conf + ".d", os.path.join(conf + ".d", uid)]
        found += [os.path.join(top, "policy.json"), os.path.join(top, "oci", "hooks.d")]
    found.append("/etc/containers/registries.d")
    for var in (
        "CONTAINERS_CONF",
        "CONTAINERS_CONF_OVERRIDE",
        "CONTAINERS_STORAGE_CONF",
        "CONTAINERS_REGISTRIES_CONF",
        "REGISTRIES_CONFIG_PATH",
    ):
        if environ.get(var):
            found.append(environ[var])
    return found


def _identity(path: str) -> str:
    """PATH's identity and its folder's entries' (an edit changes it); "-" if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}=-"
    text = f"{path}={st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            text += ";" + _identity(os.path.join(path, name))
    return text


def _ioprio() -> str:
    import ctypes  # about 1.6 ms of a spawn; there is no other way to ask
    import sys

    number = IOPRIO_GET.get((os.uname().machine, sys.maxsize > 2**32))  # platform's, 3 ms less
    if number is None:
        raise OSError("no ioprio_get known for this machine")
    got = ctypes.CDLL(None, use_errno=True).syscall(number, 1, 0)  # IOPRIO_WHO_PROCESS, self
    if got < 0:
        raise OSError(ctypes.get_errno(), "ioprio_get")
    return f"ioprio={got}"


def caller_digest(environ, podman: str) -> str | None:
    """A digest of what podman run by this process with ENVIRON would read of its caller
    (PODMAN: the program's path); None when any of it cannot be read."""
    parts: list[str] = []
    try:
        with open("/proc/self/status", encoding="utf-8", errors="replace") as f:
            parts += [line for line in f if line.startswith(STATUS_KEYS)]
        stat = _text("/proc/self/stat").rpartition(")")[2].split()
        # priority, nice (its 16th and 17th fields after the name), rt_priority, policy
        parts.append("sched=" + ",".join(stat[15:17] + stat[37:39]))
        parts.append(_ioprio())
        for name in ("limits", "cgroup", "attr/current", "oom_score_adj", "personality"):
            parts.append(_text(f"/proc/self/{name}"))
        for ns in sorted(os.listdir("/proc/self/ns")):
            parts.append(f"{ns}={os.readlink(f'/proc/self/ns/{ns}')}")
        root = os.stat("/")
        parts.append(f"root={root.st_dev}:{root.st_ino}")
        os.stat(podman)  # there, or no digest
        parts += [_identity(podman), *map(_identity, config_files(environ))]
    except (OSError, ValueError):
        return None
    parts += [
        f"{k}={v}"
        for k, v in sorted(environ.items())
        if k not in SHELL_ONLY and not k.startswith("AM_")  # am's own, never podman's
    ]
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


def folder(run_dir: str) -> str:
    return os.path.join(run_dir, "podman")


def socket_path(run_dir: str, digest: str) -> str:
    return os.path.join(folder(run_dir), f"{digest}.sock")


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
    """ARGV (a ``podman run`` with ENVIRON) sent to this caller's service, when one listens;
    None when none does, and then one is started for the calls after this one. Never raises
    for the service's sake: without it, podman runs as before."""
    try:
        podman = proc.which(argv[0], environ)
        digest = caller_digest(environ, podman) if podman else None
        if digest is None:
            return None
        sock = socket_path(run_dir, digest)
        if len(sock) > MAX_SOCKET or not set(sock) <= SAFE:
            return None
        if listening(sock):
            return [argv[0], "--remote", "--url", f"unix://{sock}", *argv[1:]]
        start(podman, sock, environ)
    except Exception:  # noqa: BLE001 (the service only saves time: without it, podman runs)
        pass
    return None


def _service_pid(sock: str) -> int | None:
    """The pid its marker names, while that process is the service of SOCK."""
    try:
        with open(sock[: -len(".sock")] + ".started") as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if f"unix://{sock}".encode() in cmdline and b"service" in cmdline else None


def start(podman: str, sock: str, environ) -> None:
    """Start a service at SOCK in a session of its own, unless one runs for it (listening or
    not yet): a second would take the socket from the first, which would run on unreached."""
    from pathlib import Path

    from am import paths

    base = sock[: -len(".sock")]
    paths.private_dir(Path(os.path.dirname(sock)))
    try:
        with files.locked(base + ".lock", wait=False):
            if _service_pid(sock) is not None:
                return
            _prune(os.path.dirname(sock), base)
            work = paths.private_dir(Path(base + ".d"))  # conmon's working folder: its oom marker
            argv = [podman, "system", "service", "--time", str(IDLE), f"unix://{sock}"]
            pid = proc.start_detached(argv, environ, base + ".err", str(work))
            files.write_atomic(base + ".started", f"{pid}\n")
    except BlockingIOError:
        pass  # another spawn is starting it


def _prune(where: str, own: str) -> None:
    """Remove the files of services that left more than ``STALE`` seconds ago (a digest of a
    caller that has not come back), but OWN's and any that is starting (its lock held). Lock
    files stay: one removed while held would let a second start begin beside the first."""
    import shutil

    now = time.time()
    for name in os.listdir(where):
        base = os.path.join(where, name[: -len(".started")])
        if not name.endswith(".started") or base == own:
            continue
        try:
            if now - os.stat(base + ".started").st_mtime < STALE or _service_pid(base + ".sock"):
                continue
        except OSError:
            continue
        lock = files.take_if_free(base + ".lock")
        if lock is None:
            continue  # being started (or no lock to tell): left as it is
        try:
            for end in (".err", ".sock", ".started"):
                try:
                    os.unlink(base + end)
                except FileNotFoundError:
                    pass
            shutil.rmtree(base + ".d", ignore_errors=True)
        finally:
            os.close(lock)


def stop(run_dir: str) -> list[int]:
    """End the services started for RUN_DIR's spawns that still run (they leave by themselves
    when idle); their pids."""
    import signal

    ended = []
    try:
        names = os.listdir(folder(run_dir))
    except FileNotFoundError:
        return ended
    for name in names:
        if name.endswith(".started"):
            pid = _service_pid(os.path.join(folder(run_dir), name[: -len(".started")] + ".sock"))
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGTERM)
                    ended.append(pid)
                except OSError:
                    pass
    return ended


def unreachable(err: str) -> bool:
    """Whether a ``podman --remote`` call failed to reach its service (so it made nothing):
    the client's own words when its first request finds no one listening."""
    return "unable to connect to Podman socket" in err

"""Notice an OOM kill or a refused fork inside a container's cgroups as it happens.

Podman on cgroup v1 (with runc) never reports ``OOMKilled``, and once a container is gone its
cgroup is too, so the supervisor watches the cgroup while the container runs: on v1 through
the kernel's OOM notification (an eventfd registered on ``memory.oom_control``), on v2 by
reading ``memory.events``. Either way the verdict is the kernel's ``oom_kill`` counter.
A refused fork shows in the pids cgroup's ``pids.events`` (``max N``) on both versions.

A gVisor agent's cgroup holds the whole sandbox: an OOM kill there ends all of it, and the
process limit is enforced inside gVisor's kernel, where the host cannot see a refused fork. So
for those the watch also asks runsc, every few seconds, how many tasks the sandbox runs
(``runsc events --stats``) and counts reaching the limit as hitting it.
"""

import json
import os
import threading
import time
from pathlib import Path

from am import proc

CGROUP_ROOT = Path("/sys/fs/cgroup")
GUEST_EVERY = 2.0  # seconds between two counts of a gVisor sandbox's tasks (~15 ms CPU each)


def cgroup_folder(
    pid: int, controller: str, v1_file: str, v2_file: str, container: str | None = None
) -> tuple[Path, int] | None:
    """PID's cgroup folder for CONTROLLER and the cgroup version, if this host can see it.
    With CONTAINER (its full id): only a cgroup that names it, cut back to the folder that
    does (not a child one below it), and None otherwise: the pid an engine reports may be
    another process's here (one in a VM, or a pid reused since)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            own = _own(path, container)
            if own is None:
                return None
            folder = CGROUP_ROOT / controller / own.lstrip("/")
            return (folder, 1) if (folder / v1_file).is_file() else None
    for line in lines:
        if line.startswith("0::"):
            own = _own(line[3:], container)
            if own is None:
                return None
            folder = CGROUP_ROOT / own.lstrip("/")
            if (folder / v2_file).is_file():
                return folder, 2
    return None


def _own(path: str, container: str | None) -> str | None:
    """PATH up to its first part that names CONTAINER (PATH itself without one); None when
    no part does."""
    if container is None:
        return path
    parts = path.split("/")
    for i, part in enumerate(parts):
        if container in part:
            return "/".join(parts[: i + 1])
    return None


def memory_cgroup(pid: int, container: str | None = None) -> tuple[Path, int] | None:
    """The memory cgroup folder of PID and its cgroup version, if this host can see it."""
    return cgroup_folder(pid, "memory", "memory.oom_control", "memory.events", container)


def pids_cgroup(pid: int, container: str | None = None) -> Path | None:
    """The folder holding ``pids.events`` for PID's cgroup (v1 pids controller or v2)."""
    found = cgroup_folder(pid, "pids", "pids.events", "pids.events", container)
    return found[0] if found else None


def _counter(file: Path, key: str) -> int:
    """The value of KEY in a cgroup file of ``key value`` lines (0 when absent)."""
    try:
        for line in file.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def pids_refused(folder: Path) -> int:
    """How many forks the pids limit has refused."""
    return _counter(folder / "pids.events", "max")


def oom_kills(folder: Path, version: int) -> int:
    return _counter(
        folder / ("memory.oom_control" if version == 1 else "memory.events"), "oom_kill"
    )


def sandbox_cli(pid: int) -> list[str] | None:
    """runsc and the state folder (``--root``) of the gVisor sandbox whose host process is PID
    (the container's ``State.Pid``), read from that process; None if it is not one."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    root = next(
        (a[len(b"--root=") :].decode(errors="replace") for a in args if a.startswith(b"--root=")),
        None,
    )
    if not root or not args[0].startswith(b"runsc") or not trusted_folder(root):
        return None
    try:
        exe = os.readlink(f"/proc/{pid}/exe")  # the sandbox runs runsc itself
    except OSError:
        exe = ""
    if not os.path.isfile(exe):
        exe = proc.which("runsc") or ""
    return [exe, f"--root={root}"] if exe else None


def trusted_folder(path: str) -> bool:
    """Whether PATH is a folder only its owner (root or the caller) can change: the sandbox's
    command line is the sandbox's own memory, so what it names is checked before runsc, run
    by the supervisor, reads state from it."""
    import stat

    try:
        st = os.stat(path)
    except OSError:
        return False
    return (
        os.path.isabs(path)
        and stat.S_ISDIR(st.st_mode)
        and st.st_uid in (0, os.getuid())
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def guest_tasks(cli: list[str], container_id: str) -> int | None:
    """How many tasks (processes and threads) run inside a gVisor sandbox; None once it is
    gone or cannot be asked."""
    from am import proc

    try:
        res = proc.run([*cli, "events", "--stats", container_id], timeout=10)
    except proc.NotFound:
        return None
    if not res.ok:
        return None
    try:
        return int(json.loads(res.out)["data"]["pids"]["current"])
    except (ValueError, KeyError, TypeError):
        return None


class OomWatch:
    """Set ``killed`` once the kernel OOM-kills anything in the cgroup of a process, and
    ``pids_hit`` once its pids limit refuses a fork; ON_EVENT is told of each, once."""

    def __init__(self, on_event=None):
        self.killed = False
        self.pids_hit = False
        self.on_event = on_event or (lambda watch: None)
        self.guest_pids = None  # a gVisor sandbox's latest task count
        self.pids_folder: Path | None = None
        # The OOM and pids watches run in different threads of the keeper: one report at a
        # time, so the last one written has both flags.
        self.lock = threading.Lock()

    def _set(self, attr: str) -> None:
        with self.lock:
            if not getattr(self, attr):
                setattr(self, attr, True)
                try:
                    self.on_event(self)
                except Exception:
                    pass  # a report we cannot write must not end the watch

    def start(self, memory: tuple[Path, int], pids: Path | None) -> bool:
        """Watch a container's cgroups: MEMORY (its folder and cgroup version) and PIDS (the
        folder of ``pids.events``), as ``cgroupstats.Cgroups.of`` found them."""
        if pids:
            self.pids_folder = pids
            PIDS.add(self, pids)
        folder, version = memory
        if version == 1:
            try:
                ctl = os.open(folder / "memory.oom_control", os.O_RDONLY)
                efd = os.eventfd(0)
                (folder / "cgroup.event_control").write_text(f"{efd} {ctl}")
            except OSError:
                return False
            # An OOM kill before the eventfd was registered is only in the counter.
            if oom_kills(folder, 1):
                self._set("killed")
            target = self._wait_v1
            args = (folder, efd, ctl)
        else:
            target, args = self._poll_v2, (folder,)
        threading.Thread(target=target, args=args, daemon=True).start()
        return True

    def start_guest(self, pid: int, container_id: str, limit: int, on_count=None) -> bool:
        """Count the tasks of the gVisor sandbox whose host process is PID, every GUEST_EVERY
        seconds while it runs; reaching LIMIT counts as hitting the process limit. ON_COUNT
        is told each new count."""
        cli = sandbox_cli(pid)
        if not cli:
            return False
        threading.Thread(
            target=self._poll_guest,
            args=(cli, container_id, limit, on_count or (lambda n: None)),
            daemon=True,
        ).start()
        return True

    def _poll_guest(self, cli, container_id: str, limit: int, on_count) -> None:
        while (count := guest_tasks(cli, container_id)) is not None:
            if count != self.guest_pids:
                self.guest_pids = count
                try:
                    on_count(count)
                except Exception:
                    pass  # a figure we cannot write must not end the watch
            if count >= limit:
                self._set("pids_hit")
            time.sleep(GUEST_EVERY)

    def _wait_v1(self, folder: Path, efd: int, ctl: int) -> None:
        # The eventfd fires when the cgroup runs out of memory (just before the kernel picks a
        # victim, so the counter may still read 0) and once more when the cgroup is removed.
        # When an OOM kill ends the whole container (a gVisor sandbox), both may come before
        # this thread reads: the eventfd's count (2) still tells them apart.
        try:
            while not self.killed:
                events = int.from_bytes(os.read(efd, 8), "little")
                if not folder.exists() and events < 2:
                    return
                self._set("killed")
        except OSError:
            return
        finally:
            os.close(efd)
            os.close(ctl)

    def _poll_v2(self, folder: Path) -> None:
        while folder.exists() and not self.killed:
            if oom_kills(folder, 2):
                self._set("killed")
            time.sleep(0.1)

    def last_look(self) -> None:
        """One more read of the refused forks, now: the container has ended, and its cgroup
        goes moments later, before the poller's next read (an agent that dies of a refused
        fork, as a shell does on "Cannot fork", would lose its ``pids`` flag)."""
        if self.pids_folder is not None:
            self._check_pids(self.pids_folder)

    def _check_pids(self, folder: Path) -> bool:
        """One look at FOLDER's refused forks; False once there is nothing more to watch."""
        if self.pids_hit or not folder.exists():
            return False
        if pids_refused(folder):
            self._set("pids_hit")
            return False
        return True


class PidsPoller:
    """One thread that reads every watched cgroup's ``pids.events`` each PIDS_EVERY seconds.
    A thread per agent, each waking on its own, cost a keeper of 100 idle agents 2.2 s of CPU
    a minute, mostly the interpreter's lock passed between a hundred threads; the file does
    not wake ``poll()`` on cgroup v1 (tested), so it is read, not waited on."""

    def __init__(self, every: float = 0.5):
        self.every = every
        self._lock = threading.Lock()
        self._watched: list[tuple[OomWatch, Path]] = []
        self._thread: threading.Thread | None = None

    def add(self, watch: OomWatch, folder: Path) -> None:
        with self._lock:
            self._watched.append((watch, folder))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                watched = list(self._watched)
            done = set()
            for watch, folder in watched:
                try:
                    if not watch._check_pids(folder):
                        done.add(id(watch))
                except Exception:  # one agent's trouble must not end the others' watch
                    done.add(id(watch))
            with self._lock:
                if done:
                    self._watched = [w for w in self._watched if id(w[0]) not in done]
                if not self._watched:
                    self._thread = None
                    return
            time.sleep(self.every)


PIDS = PidsPoller()

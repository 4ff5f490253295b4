"""A running container's figures read from its cgroups, as its engine's ``stats`` reads them.

am's keeper holds every local container agent's first process from its start on, so it finds
the container's memory, CPU and pids cgroup folders once and reads the kernel's counters from
there when ``am status`` asks: no engine process per status, whatever the number of agents.
The folders hold the container's full id and go with the container, so a later read never
finds another container's. CPU is measured between two of the keeper's marks, a second or
more apart: the share of one CPU the container used lately.
"""

from __future__ import annotations

import time
from pathlib import Path

from am.oomwatch import cgroup_folder, memory_cgroup, pids_cgroup

MARK_EVERY = 1.0  # seconds between two marks of a container's CPU time (keeper.TICK)
NO_LIMIT = 1 << 62  # cgroup v1 writes "no memory limit" as a number near 2**63


class Cgroups:
    """The cgroup folders of one container, and its latest CPU marks."""

    def __init__(self, memory: tuple[Path, int], cpu: tuple[Path, int] | None, pids: Path | None):
        self.memory, self.cpu, self.pids = memory, cpu, pids
        self.marks: list[tuple[float, int]] = []  # (monotonic time, CPU ns), the newest last

    @classmethod
    def of(cls, pid: int, container: str) -> Cgroups | None:
        """The cgroups of CONTAINER (its full id), whose first process is PID: only cgroups
        that name it. None where this host cannot read them (a remote engine, rootless
        podman without cgroups) or PID is not the container's here."""
        memory = memory_cgroup(pid, container)
        if memory is None:
            return None
        cpu = cgroup_folder(pid, "cpuacct", "cpuacct.usage", "cpu.stat", container)
        made = cls(memory, cpu, pids_cgroup(pid, container))
        made.mark()
        return made

    def cpu_ns(self) -> int | None:
        """CPU time the container used since it started, in nanoseconds."""
        if self.cpu is None:
            return None
        folder, version = self.cpu
        if version == 1:
            return _number(folder / "cpuacct.usage")
        usec = _field(folder / "cpu.stat", "usage_usec")
        return None if usec is None else usec * 1000

    def mark(self) -> None:
        """Note the CPU time now; two marks are kept, so one is always a second or more old."""
        used = self.cpu_ns()
        if used is not None:
            self.marks = [*self.marks[-1:], (time.monotonic(), used)]

    def figures(self, subtract_inactive: bool) -> dict | None:
        """cpu_percent, memory, memory_limit and pids now; None once the cgroup is gone (the
        container ended). SUBTRACT_INACTIVE: memory without the inactive file cache, as
        docker counts it (podman counts the cgroup's whole usage)."""
        folder, version = self.memory
        usage = _number(folder / ("memory.usage_in_bytes" if version == 1 else "memory.current"))
        if usage is None:
            return None
        if subtract_inactive:
            key = "total_inactive_file" if version == 1 else "inactive_file"
            inactive = _field(folder / "memory.stat", key) or 0
            if inactive < usage:
                usage -= inactive
        limit = _number(folder / ("memory.limit_in_bytes" if version == 1 else "memory.max"))
        return {
            "cpu_percent": self.cpu_percent(),
            "memory": usage,
            "memory_limit": limit if limit is not None and limit < NO_LIMIT else None,
            "pids": _number(self.pids / "pids.current") if self.pids else None,
        }

    def cpu_percent(self) -> float | None:
        """% of one CPU since the newest mark at least half MARK_EVERY old; in the first half
        second of the container, since its first mark (taken as it started)."""
        now, used = time.monotonic(), self.cpu_ns()
        if used is None or not self.marks:
            return None
        old = [m for m in self.marks if now - m[0] >= MARK_EVERY / 2]
        t, then = old[-1] if old else self.marks[0]
        if now - t < 0.01:
            return None  # too short a time to tell
        return round(max(0, used - then) / 1e9 / (now - t) * 100, 2)


def _number(file: Path) -> int | None:
    """The one integer in a cgroup file (None if unreadable, or 'max')."""
    try:
        return int(file.read_bytes())
    except (OSError, ValueError):
        return None


def _field(file: Path, key: str) -> int | None:
    """The value of KEY in a cgroup file of ``key value`` lines."""
    try:
        for line in file.read_bytes().splitlines():
            name, _, value = line.partition(b" ")
            if name == key.encode():
                return int(value)
    except (OSError, ValueError):
        return None
    return None

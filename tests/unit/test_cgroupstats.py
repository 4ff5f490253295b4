"""A container's figures from its cgroup files, as each engine counts them (v1 and v2 layouts,
written here as the kernel writes them); the keeper's answer as ``am status`` takes it."""

import time

import pytest

from am import enginestats
from am.cgroupstats import Cgroups

MB = 1024**2


def v1(tmp_path, usage=300 * MB, limit=512 * MB, inactive=100 * MB, cpu_ns=5 * 10**9):
    mem, cpu, pids = (tmp_path / n for n in ("memory", "cpuacct", "pids"))
    for d in (mem, cpu, pids):
        d.mkdir()
    (mem / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (mem / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (mem / "memory.stat").write_text(
        f"cache 1\nrss 2\ninactive_file 7\ntotal_cache 3\ntotal_inactive_file {inactive}\n"
    )
    (cpu / "cpuacct.usage").write_text(f"{cpu_ns}\n")
    (pids / "pids.current").write_text("4\n")
    return Cgroups((mem, 1), (cpu, 1), pids)


def v2(tmp_path, limit="max"):
    (tmp_path / "memory.current").write_text(f"{200 * MB}\n")
    (tmp_path / "memory.max").write_text(f"{limit}\n")
    (tmp_path / "memory.stat").write_text(f"anon 5\nfile 9\ninactive_file {50 * MB}\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 2000000\nuser_usec 1\nsystem_usec 1\n")
    (tmp_path / "pids.current").write_text("2\n")
    return Cgroups((tmp_path, 2), (tmp_path, 2), tmp_path)


def test_v1_memory_as_each_engine_counts_it(tmp_path):
    """podman: the cgroup's whole usage; docker: without the inactive file cache (of the whole
    subtree: total_inactive_file, not the cgroup's own inactive_file)."""
    cg = v1(tmp_path)
    podman, docker = cg.figures(False), cg.figures(True)
    assert podman["memory"] == 300 * MB and docker["memory"] == 200 * MB
    assert podman["memory_limit"] == docker["memory_limit"] == 512 * MB
    assert podman["pids"] == 4


def test_v2_files_and_a_limit_of_max(tmp_path):
    cg = v2(tmp_path)
    got = cg.figures(True)
    assert got["memory"] == 150 * MB and got["memory_limit"] is None and got["pids"] == 2
    assert cg.cpu_ns() == 2 * 10**9


def test_no_limit_on_v1_is_none_not_a_huge_number(tmp_path):
    assert v1(tmp_path, limit=9223372036854771712).figures(False)["memory_limit"] is None


def test_cpu_is_measured_since_a_mark_a_second_old(tmp_path):
    cg = v1(tmp_path, cpu_ns=10 * 10**9)
    now = time.monotonic()
    # 1.5 s of CPU in the 2 s since the older mark; the newer one is too recent to measure from
    cg.marks = [(now - 2.0, 10 * 10**9 - 15 * 10**8), (now - 0.1, 10 * 10**9 - 10**6)]
    assert cg.cpu_percent() == pytest.approx(75, abs=1)
    # only a fresh mark (the container just started): measured from it, however short
    cg.marks = [(now - 0.2, 10 * 10**9 - 10**8)]
    assert cg.cpu_percent() == pytest.approx(50, abs=3)
    cg.marks = []
    assert cg.cpu_percent() is None


def test_mark_keeps_the_two_newest(tmp_path):
    cg = v1(tmp_path)
    for _ in range(3):
        cg.mark()
    assert len(cg.marks) == 2 and cg.marks[0][0] <= cg.marks[1][0]


def test_a_gone_cgroup_gives_no_figures(tmp_path):
    cg = v1(tmp_path)
    (tmp_path / "memory" / "memory.usage_in_bytes").unlink()
    assert cg.figures(False) is None


def test_only_cgroups_that_name_the_container_are_its():
    """The pid an engine reports may be another process's here (in a VM, or reused): its
    cgroups are taken only if they name the container, and cut back to the folder that does
    (a child cgroup below it is not the container's whole)."""
    import os

    from am.oomwatch import _own, cgroup_folder

    cid = "a" * 64
    assert _own(f"/libpod_parent/libpod-{cid}", cid) == f"/libpod_parent/libpod-{cid}"
    assert _own(f"/docker/{cid}/inner/deeper", cid) == f"/docker/{cid}"
    assert _own(f"/system.slice/docker-{cid}.scope", cid) == f"/system.slice/docker-{cid}.scope"
    assert _own("/user.slice/session-1.scope", cid) is None
    assert _own("/", cid) is None
    # this test's own process is in no container: none of its cgroups are a container's...
    assert Cgroups.of(os.getpid(), cid) is None
    # ...though they are there to read (the positive control)
    assert cgroup_folder(os.getpid(), "memory", "memory.usage_in_bytes", "memory.current")


def test_the_keepers_answer_is_taken_only_as_numbers(monkeypatch):
    """The keeper is am's own, but its answer is read like any other input: figures that are
    not non-negative finite numbers (or null), and ids not asked for, are dropped."""
    good = {"cpu_percent": 1.5, "memory": 10, "memory_limit": None, "pids": 1}
    answer = {
        "ok": True,
        "figures": {
            "a1": good,
            "a2": {**good, "memory": "10"},
            "a3": {**good, "pids": True},
            "a4": {**good, "cpu_percent": float("nan")},
            "a5": {**good, "memory": -1},
            "a6": {**good, "cpu_percent": float("inf")},
            "a7": {k: v for k, v in good.items() if k != "pids"},
            "a9": {**good, "memory": 10**400},  # no table can show it
            "a8": "figures",
            "zz": good,
        },
    }
    from am import keepersock

    monkeypatch.setattr(keepersock, "ask", lambda run, message: answer)
    ids = [f"a{i}" for i in range(1, 10)]
    got = enginestats.ask_keeper("/nowhere", ids)
    assert got == {"a1": good}
    enginestats.keep(got)
    assert enginestats.take_kept() == {"a1": good}
    assert enginestats.take_kept() is None  # once a round
    monkeypatch.setattr(keepersock, "ask", lambda run, message: None)  # no keeper
    assert enginestats.ask_keeper("/nowhere", ids) == {}

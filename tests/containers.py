"""Helpers for container tests: which engines to test, and their images built once."""

import contextlib
import os
import shutil
import subprocess
import sys

import psutil
import pytest

ENGINES = ("docker", "podman")
ISOLATIONS = ("runc", "gvisor")
_ready: dict[str, str] = {}


def required() -> set[str]:
    return {e.strip() for e in os.environ.get("AM_REQUIRE_RUNTIMES", "").split(",") if e.strip()}


def engine_ready(name: str) -> None:
    """Fail (never skip) when an engine cannot run containers; build its image once."""
    if name in _ready:
        if _ready[name] != "ok":
            pytest.fail(_ready[name])
        return
    problem = None
    if not shutil.which(name):
        problem = f"{name} is not installed: run 'sudo make setup', or 'make test-fast'"
    elif subprocess.run([name, "info"], capture_output=True).returncode != 0:
        problem = f"{name} does not answer: run 'sudo make setup' (starts the engines)"
    if problem is None:
        have = subprocess.run([name, "image", "inspect", "am-agent:latest"], capture_output=True)
        if have.returncode != 0:
            res = subprocess.run(
                [sys.executable, "-m", "am", "image", "build", "--runtime", name],
                capture_output=True,
                text=True,
            )
            if res.returncode != 0:
                problem = f"am image build --runtime {name} failed:\n{res.stderr[-3000:]}"
    _ready[name] = problem or "ok"
    if problem:
        pytest.fail(problem)


def container_names(engine: str, label_home: str) -> list[str]:
    res = subprocess.run(
        [engine, "ps", "-a", "--filter", f"label=am.home={label_home}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
    )
    return res.stdout.split()


def remove_containers(engine: str, label_home: str) -> None:
    names = container_names(engine, label_home)
    if names:
        subprocess.run([engine, "rm", "-f", *names], capture_output=True)


def isolation_ready(engine: str, isolation: str) -> None:
    """Fail (never skip) when ENGINE cannot run ISOLATION, with am's own reason and fix."""
    key = f"{engine}/{isolation}"
    if key not in _ready:
        problem = None
        if isolation == "gvisor":
            from am.backends import for_runtime as by_name
            from am.isolation import RUNSC_FLAGS

            for network in RUNSC_FLAGS:
                err = by_name(engine).gvisor_problem(network)
                if err:
                    problem = f"gVisor on {engine}: {err.message} ({err.hint})"
                    break
        _ready[key] = problem or "ok"
    if _ready[key] != "ok":
        pytest.fail(_ready[key])


def host_cgroup(engine: str, container: str) -> dict[str, str]:
    """The limits the host's cgroups hold for a running container (under gVisor: for its whole
    sandbox), read on the host: memory and pids maxima, CPU quota/period."""
    from pathlib import Path

    pid = subprocess.run(
        [engine, "inspect", "--format", "{{.State.Pid}}", container],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    v1 = {c: p for _, cs, p in (ln.split(":", 2) for ln in lines) for c in cs.split(",")}
    root = Path("/sys/fs/cgroup")

    def read(path: Path) -> str:
        return path.read_text().strip()

    if "memory" in v1:
        return {
            "memory": read(root / "memory" / v1["memory"].lstrip("/") / "memory.limit_in_bytes"),
            "pids": read(root / "pids" / v1["pids"].lstrip("/") / "pids.max"),
            "cpu": "{}/{}".format(
                *(
                    read(root / "cpu" / v1["cpu"].lstrip("/") / f)
                    for f in ("cpu.cfs_quota_us", "cpu.cfs_period_us")
                )
            ),
        }
    folder = root / v1[""].lstrip("/")
    return {
        "memory": read(folder / "memory.max"),
        "pids": read(folder / "pids.max"),
        "cpu": read(folder / "cpu.max").replace(" ", "/"),
    }


def cspawn(am, engine, cmd, *extra, env=None, isolation="runc"):
    """A container agent of ENGINE and ISOLATION on the test's repository (``am.repo``),
    running CMD, with EXTRA flags."""
    return am.spawn(
        str(am.repo),
        "--container",
        "--runtime",
        engine,
        "--isolation",
        isolation,
        "--cmd",
        cmd,
        *extra,
        env=env,
    )


def engine_client(p: subprocess.Popen, engine: str) -> bool:
    """Whether P waits on its engine's 'run' or 'create' (the container is being made)."""
    try:
        kids = psutil.Process(p.pid).children()
    except psutil.NoSuchProcess:
        return False
    for kid in kids:
        with contextlib.suppress(psutil.Error):
            argv = kid.cmdline()
            if argv[1:3] == ["--remote", "--url"]:  # sent to podman's service (podmanservice)
                argv = argv[:1] + argv[4:]
            if argv[:2] in ([engine, "run"], [engine, "create"]):
                return True
    return False

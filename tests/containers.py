"""Helpers for container tests: which engines to test, and their images built once."""

import os
import shutil
import subprocess
import sys

import pytest

ENGINES = ("docker", "podman")
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
            res = subprocess.run([sys.executable, "-m", "am", "image", "build", "--runtime", name],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                problem = f"am image build --runtime {name} failed:\n{res.stderr[-3000:]}"
    _ready[name] = problem or "ok"
    if problem:
        pytest.fail(problem)


def container_names(engine: str, label_home: str) -> list[str]:
    res = subprocess.run([engine, "ps", "-a", "--filter", f"label=am.home={label_home}",
                          "--format", "{{.Names}}"], capture_output=True, text=True)
    return res.stdout.split()


def remove_containers(engine: str, label_home: str) -> None:
    names = container_names(engine, label_home)
    if names:
        subprocess.run([engine, "rm", "-f", *names], capture_output=True)

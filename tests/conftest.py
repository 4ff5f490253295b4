"""Shared fixtures: a private AM_HOME per test, real git repositories, the am CLI as a process."""

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
from containers import ENGINES, ISOLATIONS, engine_ready, isolation_ready, remove_containers
from helpers import (  # noqa: F401 (older tests import them from here)
    GIT_ID,
    Am,
    _kill_sessions_of,
    agent_files,
    am_sessions,
    assert_am_error,
    assert_nothing_made,
    clients_of,
    git,
    has_session,
    home_layout,
    keeper_pid,
    pane_tty,
    state_agents,
    stop_keeper,
    tmux_out,
    wait_for,
)

from am import podmanservice

# The cluster tier runs only through 'make test-cluster': no cluster runs here (docs/scale.md).
collect_ignore = [] if os.environ.get("AM_TEST_CLUSTER_TIER") else ["cluster"]


@pytest.fixture
def am(tmp_path):
    home = tmp_path / "amhome"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AM_", "TMUX"))}
    env.update(AM_HOME=str(home), **GIT_ID)
    yield Am(home, env)
    _kill_sessions_of(home)
    stop_keeper(home)
    podmanservice.stop(str(home / "state" / "run"))  # it would leave by itself once idle
    _unmount_under(home)


def _unmount_under(home: Path) -> None:
    """Unmount what a --disk test left mounted under HOME, and detach its loop devices."""
    try:
        table = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return
    points = [line.split()[4] for line in table.splitlines()]
    for point in sorted((p for p in points if p.startswith(f"{home}/")), reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True)
    for lo in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            if lo.read_text().startswith(f"{home}/"):
                subprocess.run(
                    ["losetup", "--detach", f"/dev/{lo.parent.parent.name}"], capture_output=True
                )


@pytest.fixture
def repo(tmp_path) -> Path:
    """A small real repository with two commits on main and a side branch."""
    path = tmp_path / "source"
    path.mkdir()
    git("init", "-q", "-b", "main", cwd=path)
    (path / "README").write_text("hello\n")
    (path / ".gitignore").write_text("*.log\n")
    git("add", ".", cwd=path)
    git("commit", "-qm", "first", cwd=path)
    (path / "file.txt").write_text("one\n")
    git("add", ".", cwd=path)
    git("commit", "-qm", "second", cwd=path)
    git("branch", "side", "HEAD~1", cwd=path)
    return path


@pytest.fixture
def term(tmp_path, am):
    """A real terminal of the test's own (tests/terminal.py), with the am fixture's settings."""
    from terminal import Terminal

    t = Terminal(tmp_path, {**am.env, "TERM": "xterm-256color"})
    yield t
    t.close()


@pytest.fixture(params=ENGINES)
def engine(request, am):
    """Each container engine in turn, ready with its image; its containers removed after."""
    engine_ready(request.param)
    yield request.param
    remove_containers(request.param, str(am.home))


@pytest.fixture(params=ISOLATIONS)
def isolation(request, engine):
    """Each kernel isolation in turn on the test's engine; gVisor fails, never skips, where the
    engine cannot run it."""
    isolation_ready(engine, request.param)
    return request.param

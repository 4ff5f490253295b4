"""Fixtures of the security suite: a tmux agent to attack, and a marker folder outside it.

Every planted payload touches a file in ``markers`` (never inside the workspace). A test proves
its positive control by seeing the marker appear, removes it, then runs am; the autouse check
fails the test if any marker is left at its end.
"""

import os
import pty
import subprocess
from pathlib import Path

import pytest
from helpers import GIT_ID


@pytest.fixture(autouse=True)
def _report_property(request, record_property):
    """Tag each test with the property it shows, for scripts/security_report.py."""
    record_property("property", getattr(request.module, "PROPERTY", "?"))


class Markers:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir()

    def path(self, name: str = "pwned") -> Path:
        return self.folder / name

    def payload(self, name: str = "pwned") -> str:
        """A shell command that leaves marker NAME; '#' drops the arguments git appends."""
        return f"touch {self.path(name)} #"

    def fired(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir())

    def take(self, name: str = "pwned") -> None:
        """Assert the positive control fired, then clear it for the am phase."""
        assert self.path(name).exists(), f"positive control did not fire: {self.fired()}"
        self.path(name).unlink()


@pytest.fixture
def markers(tmp_path):
    m = Markers(tmp_path / "markers")
    yield m
    assert m.fired() == [], f"planted code ran: markers {m.fired()}"


def plain_env() -> dict[str, str]:
    """What a user's own git sees: no am hardening, no pager/editor from the environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GIT_") and k not in ("PAGER", "EDITOR", "VISUAL")
    }
    env.update(
        GIT_ID, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0"
    )
    return env


def plain_git(cwd: Path, *args: str, input: str | None = None, tty: bool = False):
    """Run plain git (the positive control); with TTY, stdout is a terminal, as in am's proc."""
    argv = ["git", "-c", f"safe.directory={cwd}", *args]
    if not tty:
        return subprocess.run(
            argv, cwd=cwd, env=plain_env(), capture_output=True, text=True, input=input
        )
    main, sub = pty.openpty()
    try:
        res = subprocess.run(
            argv,
            cwd=cwd,
            env={**plain_env(), "TERM": "xterm"},
            stdout=sub,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    finally:
        os.close(sub)
        os.close(main)
    return res


@pytest.fixture
def agent(am, repo):
    """A stopped-after-spawn tmux agent (`sleep 300`) and its workspace, ready to be planted."""
    agent_id = am.spawn(str(repo), "--cmd", "sleep 300")
    am("stop", agent_id)
    return agent_id, am.home / "agents" / agent_id


@pytest.fixture
def wt_agent(am, repo):
    """The same as a worktree agent of REPO."""
    agent_id = am.spawn(str(repo), "--worktree", "--cmd", "sleep 300")
    am("stop", agent_id)
    return agent_id, am.home / "agents" / agent_id

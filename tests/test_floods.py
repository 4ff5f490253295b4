"""An agent's output flood: the host log is capped at logs.max_size, rotated once, and says
where it was cut; the same flood without the cap grows the log (the positive control)."""

import time
from pathlib import Path

import pytest

# 4 MB of 100-character lines, then a marker: a few seconds at the keeper's read rate
FLOOD = (
    "yes 0123456789012345678901234567890123456789012345678901234567890123456789"
    "01234567890123456789012345678 | head -c 4000000; echo; echo FLOOD-DONE; sleep 300"
)
CAP = 1 << 20  # logs.max_size of 1m
NOTE = "[am: the log reached logs.max_size"


def log_files(am, agent: str) -> list[Path]:
    log = am.home / "state" / "logs" / f"{agent}.log"
    return [p for p in (log, Path(f"{log}.1")) if p.exists()]


def flood(am, repo, cap: str | None, *mode) -> str:
    env = {"AM_LOG_MAX_SIZE": cap} if cap else None
    agent = am.spawn(repo, *mode, "--cmd", FLOOD, env=env)
    am.wait_log(agent, "FLOOD-DONE", timeout=120)
    return agent


def assert_capped(am, agent: str) -> None:
    # tmux's log is cut by its supervisor once a second: wait for that
    deadline = time.monotonic() + 30
    while sum(p.stat().st_size for p in log_files(am, agent)) > 2 * CAP + 8192:
        assert time.monotonic() < deadline, [p.stat().st_size for p in log_files(am, agent)]
        time.sleep(0.2)
    assert all(p.stat().st_size <= CAP + 8192 for p in log_files(am, agent))
    out = am("logs", agent).stdout
    assert NOTE in out and "FLOOD-DONE" in out


@pytest.mark.container
def test_a_container_flood_is_capped_and_the_cut_noted(am, repo, engine):
    capped = flood(am, repo, "1m", "--container", "--runtime", engine)
    assert_capped(am, capped)
    # the positive control: the default cap (16m) lets the same flood grow the log past 2m
    uncapped = flood(am, repo, None, "--container", "--runtime", engine)
    assert sum(p.stat().st_size for p in log_files(am, uncapped)) > 2 * CAP + 8192
    assert NOTE not in am("logs", uncapped).stdout


def test_a_tmux_flood_is_capped_and_the_cut_noted(am, repo):
    capped = flood(am, repo, "1m")
    assert_capped(am, capped)
    uncapped = flood(am, repo, None)
    assert sum(p.stat().st_size for p in log_files(am, uncapped)) > 2 * CAP + 8192

"""An agent's output flood: the host log is capped at logs.max_size, rotated once, and says
where it was cut; the same flood without the cap grows the log (the positive control)."""

import subprocess
import threading
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
    am("rm", "--force", capped)
    assert log_files(am, capped) == []  # the log and its older part go with the agent
    # the positive control: the default cap (16m) lets the same flood grow the log past 2m
    uncapped = flood(am, repo, None, "--container", "--runtime", engine)
    assert sum(p.stat().st_size for p in log_files(am, uncapped)) > 2 * CAP + 8192
    assert NOTE not in am("logs", uncapped).stdout


def test_a_tmux_flood_is_capped_and_the_cut_noted(am, repo):
    capped = flood(am, repo, "1m")
    assert_capped(am, capped)
    uncapped = flood(am, repo, None)
    assert sum(p.stat().st_size for p in log_files(am, uncapped)) > 2 * CAP + 8192


def test_logs_follow_goes_on_after_the_log_is_cut_in_place(am, repo, tmp_path):
    """A tmux agent's log is cut in place by its supervisor: ``am logs -f``, which had read
    past the new end, starts again at the cut instead of waiting for the log to grow back.
    The agent prints 1.5 MB, waits until the cut is made, then prints one more line."""
    go = tmp_path / "go"
    cmd = (
        "head -c 1500000 /dev/zero | tr '\\0' x; echo; echo PART-ONE; "
        f"while [ ! -e {go} ]; do sleep 0.1; done; echo AFTER-CUT; sleep 300"
    )
    agent = am.spawn(repo, "--cmd", cmd, env={"AM_LOG_MAX_SIZE": "1m"})
    am.wait_log(agent, "PART-ONE")
    follow = subprocess.Popen(
        [*am.argv, "logs", "-f", agent], env=am.env, stdout=subprocess.PIPE
    )  # fmt: skip
    seen = bytearray()

    def read() -> None:
        while chunk := follow.stdout.read1():
            seen.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        log = am.home / "state" / "logs" / f"{agent}.log"
        deadline = time.monotonic() + 60
        while b"PART-ONE" not in seen or log.stat().st_size > CAP:  # followed, then cut
            assert time.monotonic() < deadline, (len(seen), log.stat().st_size)
            time.sleep(0.2)
        go.touch()
        am.wait_log(agent, "AFTER-CUT")
        deadline = time.monotonic() + 30
        while b"AFTER-CUT" not in seen:
            assert time.monotonic() < deadline, bytes(seen[-300:])
            time.sleep(0.2)
    finally:
        follow.kill()
        reader.join()


# 8,000 refused requests with long paths through the limited agent's proxy: about 2.7 MB of
# lines in its network log (the URL is cut at 256 characters)
NET_FLOOD = (
    "curl -s -o /dev/null 'http://flood.test/" + "p" * 300 + "[1-8000]'; "
    "echo NET-FLOOD-DONE; sleep 300"
)
NET_WRITTEN = 8000 * 300  # bytes of log lines the flood makes, at least


def net_flood(am, repo, engine, cap: str | None) -> tuple[Path, Path]:
    env = {"AM_LOG_MAX_SIZE": cap} if cap else None
    agent = am.spawn(
        repo, "--container", "--runtime", engine, "--network", "limited", "--cmd", NET_FLOOD,
        env=env,
    )  # fmt: skip
    am.wait_log(agent, "NET-FLOOD-DONE", timeout=180)
    log = Path(am.info(agent)["network_log"])
    return log, Path(f"{log}.1")


@pytest.mark.container
def test_a_network_log_flood_is_capped(am, repo, engine):
    cap = 64 << 10
    log, older = net_flood(am, repo, engine, "64k")
    # the keeper looks at the log once a second: wait for its look after the flood
    deadline = time.monotonic() + 30
    while not older.exists() or log.stat().st_size > cap:
        assert time.monotonic() < deadline, (log.stat().st_size, older.exists())
        time.sleep(0.2)
    # what is kept is the newest part, far less than what was written
    assert log.stat().st_size + older.stat().st_size < NET_WRITTEN / 2
    agent = log.name.split(".")[0]
    lines = am("logs", agent, "--network").stdout.splitlines()
    assert lines and all("denied GET flood.test:80: not on the allowlist" in x for x in lines)
    assert len(lines) > log.read_text().count("\n")  # the .1 file's lines first, then the log's
    am("rm", "--force", agent)
    assert not log.exists() and not older.exists()  # both parts go with the agent
    # the positive control: under the default cap (16m) the same flood keeps every line
    log, older = net_flood(am, repo, engine, None)
    assert log.stat().st_size >= NET_WRITTEN and not older.exists()
    am("stop", log.name.split(".")[0])  # its proxy, and the egress network, go with it

"""Credentials on both engines: --env NAME and a profile's own variables reach the agent and
nothing else — no process's arguments, no file under AM_HOME, no log, no ``am info`` — and
--mount-agent-config shows the profile's config read-only."""

import hashlib
import os
import uuid
from pathlib import Path

import pytest
from containers import ENGINES, engine_ready, remove_containers

pytestmark = pytest.mark.container

# A profile from the config file: prints hashes of its two secrets (never the values), reads a
# file of the mounted config and tries to write there.
CONFIG = """
[agents.hasher]
command = ["sh", "-c", '''
printf %s "$LEAK_TEST_TOKEN" | sha256sum | sed "s/ .*//; s/^/HASH1=/"
printf %s "$HASHER_TOKEN" | sha256sum | sed "s/ .*//; s/^/HASH2=/"
echo "MOUNTED=$(cat ~/.hasher/marker)"
touch ~/.hasher/written 2>/dev/null || echo MOUNT-READ-ONLY
echo READY
sleep 300
''']
env_names = ["HASHER_TOKEN"]
config_paths = [".hasher"]
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cmdlines_holding(secret: bytes) -> list[str]:
    """Every process on this host whose argument list contains SECRET."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if secret in f.read():
                    found.append(pid)
        except OSError:
            pass  # it ended while we looked
    return found


def files_holding(top: Path, secret: bytes) -> list[str]:
    hits = []
    for root, _, files in os.walk(top):
        for name in files:
            path = Path(root) / name
            try:
                if path.is_file() and secret in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                pass
    return hits


@pytest.mark.parametrize("engine", ENGINES)
def test_secrets_reach_the_agent_and_nothing_else(am, repo, tmp_path, engine):
    engine_ready(engine)
    am.home.mkdir(parents=True, exist_ok=True)
    (am.home / "config.toml").write_text(CONFIG)
    home = tmp_path / "home"
    (home / ".hasher").mkdir(parents=True)
    (home / ".hasher" / "marker").write_text("host-config\n")
    for p in (home, home / ".hasher"):
        p.chmod(0o755)  # as root, the agent runs as uid 1000
    (home / ".hasher" / "marker").chmod(0o644)
    given = f"given-{uuid.uuid4().hex}"  # passed with --env NAME
    profile = f"profile-{uuid.uuid4().hex}"  # the profile's own variable, passed by itself
    try:
        res = am("spawn", repo, "--container", "--runtime", engine, "--agent", "hasher",
                 "--env", "LEAK_TEST_TOKEN", "--mount-agent-config",
                 env={"LEAK_TEST_TOKEN": given, "HASHER_TOKEN": profile, "HOME": str(home)})
        agent = res.stdout.split()[-1]
        assert "am: warning" not in res.stderr
        log = am.wait_log(agent, "READY")
        # present inside the container
        assert f"HASH1={sha(given)}" in log and f"HASH2={sha(profile)}" in log, log
        assert "MOUNTED=host-config" in log and "MOUNT-READ-ONLY" in log
        assert not (home / ".hasher" / "written").exists()
        # ... and nowhere else, while the agent runs
        for secret in (given, profile):
            assert cmdlines_holding(secret.encode()) == []
            assert files_holding(am.home, secret.encode()) == []
            assert secret not in am("info", agent, "--json").stdout
            assert secret not in am("info", agent).stdout
            assert secret not in am("logs", agent).stdout
            assert secret not in am("list", "--json").stdout
            assert secret not in am("status", agent, "--json").stdout
        info = am.info(agent)
        assert sorted(info["env_names"]) == ["HASHER_TOKEN", "LEAK_TEST_TOKEN"]
        am("stop", agent)
        for secret in (given, profile):
            assert files_holding(am.home, secret.encode()) == []
    finally:
        remove_containers(engine, str(am.home))

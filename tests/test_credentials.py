"""Credentials on both engines: --env NAME and a profile's own variables reach the agent and
nothing else — no process's arguments, no file under AM_HOME, no log, no ``am info`` — and
--mount-agent-config shows only the profile's credential files, in a home the agent owns."""

import hashlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from containers import ENGINES, engine_ready, remove_containers

from am import gate

pytestmark = pytest.mark.container

# A profile from the config file: prints hashes of its two secrets (never the values), reads a
# file of the mounted config and tries to write there.
CONFIG = """
[agents.hasher]
command = ["sh", "-c", '''
printf %s "$LEAK_TEST_TOKEN" | sha256sum | sed "s/ .*//; s/^/HASH1=/"
printf %s "$HASHER_TOKEN" | sha256sum | sed "s/ .*//; s/^/HASH2=/"
echo "MOUNTED=$(cat ~/.hasher/marker)"
touch /run/am-agent-config/.hasher/written 2>/dev/null || echo MOUNT-READ-ONLY
touch ~/.hasher/written && echo HOME-COPY-WRITABLE
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
        p.chmod(0o755)  # as root, the agent runs as a uid of its own
    (home / ".hasher" / "marker").chmod(0o644)
    given = f"given-{uuid.uuid4().hex}"  # passed with --env NAME
    profile = f"profile-{uuid.uuid4().hex}"  # the profile's own variable, passed by itself
    try:
        res = am(
            "spawn",
            repo,
            "--container",
            "--runtime",
            engine,
            "--agent",
            "hasher",
            "--env",
            "LEAK_TEST_TOKEN",
            "--mount-agent-config",
            env={"LEAK_TEST_TOKEN": given, "HASHER_TOKEN": profile, "HOME": str(home)},
        )
        agent = res.stdout.split()[-1]
        assert "am: warning" not in res.stderr
        log = am.wait_log(agent, "READY")
        # present inside the container
        assert f"HASH1={sha(given)}" in log and f"HASH2={sha(profile)}" in log, log
        assert "MOUNTED=host-config" in log and "MOUNT-READ-ONLY" in log
        assert "HOME-COPY-WRITABLE" in log
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


def fake_home(top: Path) -> Path:
    """A home as a claude user has it: the login, the global state and other projects'
    transcripts; readable by any uid (the agent has its own when am runs as root)."""
    home = top / "home"
    files = {
        ".claude/.credentials.json": "CRED-" + uuid.uuid4().hex,
        ".claude/projects/-other-project/t.jsonl": "TRANSCRIPT-OF-ANOTHER-PROJECT",
        ".claude/settings.json": "{}",
        ".claude.json": '{"projects": {"/other": {"history": ["OTHER-PROMPT"]}}}',
    }
    for rel, text in files.items():
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(text)
    for root, _dirs, names in os.walk(home):
        os.chmod(root, 0o755)
        for n in names:
            os.chmod(os.path.join(root, n), 0o644)
    return home


PROBE = (
    "echo FILES:; cd ~ && find . /run/am-agent-config -type f | sort; "
    "echo CRED=$(cat ~/.claude/.credentials.json); "
    "cat ~/.claude.json ~/.claude/projects/*/* 2>/dev/null; "
    "touch ~/x && mkdir -p ~/.claude/projects/here && echo HOME-WRITABLE; "
    "echo new > /run/am-agent-config/.claude/.credentials.json || echo SOURCE-READ-ONLY; "
    "echo PROBE-DONE; sleep 300"
)


@pytest.mark.parametrize("engine", ENGINES)
def test_mount_agent_config_exposes_only_the_credentials(am, repo, tmp_path, engine):
    engine_ready(engine)
    home = fake_home(tmp_path)
    cred = (home / ".claude/.credentials.json").read_text()
    # Positive controls: mounting the config folder, as am did, shows the other projects'
    # transcripts; and a tmpfs home as am made it (mode=1777) is root's, not the agent's.
    res = subprocess.run(
        [
            engine,
            "run",
            "--rm",
            "--user",
            "1000:1000",
            "--read-only",
            "--tmpfs",
            "/home/agent:rw,nosuid,nodev,size=1g,mode=1777",
            "--mount",
            f"type=bind,source={home / '.claude'},target=/home/agent/.claude,readonly",
            "am-agent:latest",
            "sh",
            "-c",
            "cat ~/.claude/projects/*/*; touch ~/x || echo HOME-NOT-WRITABLE",
        ],
        capture_output=True,
        text=True,
    )
    assert "TRANSCRIPT-OF-ANOTHER-PROJECT" in res.stdout and "HOME-NOT-WRITABLE" in res.stdout
    try:
        agent = am.spawn(
            repo,
            "--container",
            "--runtime",
            engine,
            "--agent",
            "claude",
            "--mount-agent-config",
            "--cmd",
            PROBE,
            env={"HOME": str(home)},
        )
        log = am.wait_log(agent, "PROBE-DONE")
        files = log.split("FILES:", 1)[1].split("CRED=", 1)[0].split()
        # podman copies the image's own /home/agent (its skeleton files) into the tmpfs
        files = [f for f in files if f not in ("./.bash_logout", "./.bashrc", "./.profile")]
        assert files == [
            "./.claude/.credentials.json",
            "/run/am-agent-config/.claude/.credentials.json",
        ], log
        assert f"CRED={cred}" in log
        for leak in ("TRANSCRIPT-OF-ANOTHER-PROJECT", "OTHER-PROMPT"):
            assert leak not in log
        assert "HOME-WRITABLE" in log and "SOURCE-READ-ONLY" in log
        assert (home / ".claude/.credentials.json").read_text() == cred
        assert not (home / ".claude/projects/here").exists()
        mounts = json.loads(
            subprocess.run(
                [engine, "inspect", f"am-{agent}"], capture_output=True, text=True
            ).stdout
        )[0]["Mounts"]
        # (besides the workspace, and as root am's /etc/passwd and /etc/group for the agent's uid)
        assert sorted(
            (m["Source"], m["Destination"], m["RW"])
            for m in mounts
            if m["Destination"] not in ("/workspace", "/etc/passwd", "/etc/group", gate.TARGET)
        ) == [
            (
                str(home / ".claude/.credentials.json"),
                "/run/am-agent-config/.claude/.credentials.json",
                False,
            )
        ]
        am("stop", agent)
    finally:
        remove_containers(engine, str(am.home))

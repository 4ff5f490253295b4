"""Property 4: secrets stay out, on both engines.

No host variable reaches the container unless named; no engine socket and no host path but the
workspace (and, for a worktree, the parts of the source's git folder a commit writes); ``--env``
values never appear in any process's arguments, the state file, the logs or ``am info``.
"""

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from helpers import home_layout

from am import gate

PROPERTY = "4 secrets stay out"
pytestmark = pytest.mark.container


def inspect(engine: str, name: str) -> dict:
    out = subprocess.run([engine, "inspect", name], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


def mounts(engine: str, name: str) -> list[tuple[str, str, bool]]:
    return sorted(
        (m["Source"], m["Destination"], bool(m["RW"])) for m in inspect(engine, name)["Mounts"]
    )


def identity(am, agent: str) -> list[tuple[str, str, bool]]:
    """What a root am mounts besides: /etc/passwd and /etc/group naming the agent's uid,
    read-only files am writes (docs/security.md, property 8)."""
    if os.getuid() != 0:
        return []
    run = am.home / "state" / "run" / agent
    return [(str(run / "group"), "/etc/group", False), (str(run / "passwd"), "/etc/passwd", False)]


def test_host_environment_stays_out(am, repo, engine):
    marker = f"AM_SEC_MARKER_{uuid.uuid4().hex[:8]}"
    agent = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        "--cmd",
        "env | sed 's/^/ENV:/'; echo ENV-DONE; sleep 300",
        env={marker: "host-only-value", "GIT_DIR": "/etc", "SSH_AUTH_SOCK": "/x"},
    )
    log = am.wait_log(agent, "ENV-DONE")
    names = {
        line.split("=", 1)[0][4:]
        for line in log.replace("\r", "").splitlines()
        if line.startswith("ENV:")
    }
    assert marker not in names and "host-only-value" not in log
    assert not names & {"AM_HOME", "GIT_DIR", "SSH_AUTH_SOCK", "DOCKER_HOST", "CONTAINER_HOST"}
    am("stop", agent)


def test_no_engine_socket_and_only_the_workspace(am, repo, engine):
    probe = (
        "for s in /var/run/docker.sock /run/docker.sock /run/podman/podman.sock "
        "/run/containerd/containerd.sock; do [ -e $s ] && echo SOCK:$s; done; "
        "echo SOCKS-DONE; sleep 300"
    )
    agent = am.spawn(repo, "--container", "--runtime", engine, "--cmd", probe)
    log = am.wait_log(agent, "SOCKS-DONE")
    assert "SOCK:" not in log
    ws = str(am.home / "agents" / agent)
    # and a local podman agent's start gate, read-only from am's run folder (am/gate.py)
    gated = [(str(home_layout(am.home).gate_file(agent)), gate.TARGET, False)]
    assert mounts(engine, f"am-{agent}") == sorted(
        [(ws, "/workspace", True), *identity(am, agent), *(gated if engine == "podman" else [])]
    )
    host = inspect(engine, f"am-{agent}")["HostConfig"]
    assert not host.get("Privileged")
    am("stop", agent)


def _cmdlines() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
            except OSError:
                pass
    return out


def test_env_values_stay_secret(am, repo, engine):
    bare = f"bare-{uuid.uuid4().hex}"
    given = f"given-{uuid.uuid4().hex}"
    agent = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        "--env",
        "AM_BARE_SECRET",
        "--env",
        f"AM_GIVEN_SECRET={given}",
        "--cmd",
        'printf %s "$AM_BARE_SECRET" | sha256sum | sed s/^/BARE:/; '
        'printf %s "$AM_GIVEN_SECRET" | sha256sum | sed s/^/GIVEN:/; '
        "echo SECRETS-DONE; sleep 300",
        env={"AM_BARE_SECRET": bare},
    )
    log = am.wait_log(agent, "SECRETS-DONE")
    import hashlib

    # the agent got both values (shown only as hashes)...
    assert hashlib.sha256(bare.encode()).hexdigest() in log
    assert hashlib.sha256(given.encode()).hexdigest() in log
    # ...while they run, no process on the host shows either in its arguments
    for cmdline in _cmdlines():
        assert bare not in cmdline and given not in cmdline
    # ...and no file or output of am holds them
    texts = [
        am("info", agent, "--json").stdout,
        am("list", "--json").stdout,
        am("info", agent).stdout,
        am("logs", agent).stdout,
    ]
    for root in (am.home / "state", am.home / "data"):
        for p in root.rglob("*"):
            if p.is_file() and not p.is_symlink():
                texts.append(p.read_bytes().decode(errors="replace"))
    for text in texts:
        assert bare not in text and given not in text
    assert am.info(agent)["env_names"] == ["AM_BARE_SECRET", "AM_GIVEN_SECRET"]
    am("stop", agent)


@pytest.mark.parametrize("value", ["a,b:c=d", "x\ny", "--privileged", "-v /:/host"])
def test_env_values_are_passed_not_parsed(am, repo, engine, value):
    """Injection through a value: it reaches the agent verbatim and adds no flag or mount."""
    agent = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        "--env",
        f"AM_V={value}",
        "--cmd",
        'printf %s "$AM_V" | od -An -c | tr -d " \\n" | sed "s/^/V:/";'
        " echo; echo V-DONE; sleep 300",
    )
    log = am.wait_log(agent, "V-DONE")
    expect = "".join("\\n" if c == "\n" else c for c in value).replace(" ", "")
    assert f"V:{expect}" in log.replace("\r", ""), log
    info = inspect(engine, f"am-{agent}")
    assert not info["HostConfig"].get("Privileged")
    # besides the workspace (and as root the identity files): a local podman agent's start
    # gate, its FIFO from am's run folder, read-only (am/gate.py)
    gates = [m for m in info["Mounts"] if m["Destination"] == gate.TARGET]
    assert gates == [] if engine == "docker" else len(gates) == 1, info["Mounts"]
    for m in gates:
        assert m["Source"] == str(home_layout(am.home).gate_file(agent)) and not m["RW"]
    assert len(info["Mounts"]) == 1 + len(identity(am, agent)) + len(gates)
    am("stop", agent)

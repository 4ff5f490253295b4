"""The agent's task in, resume, wait and reach, for container agents on docker and podman."""

import json
import socket
import subprocess
import time
import urllib.request

import pytest
from containers import container_names
from helpers import assert_am_error, assert_nothing_made
from test_task_io import (
    HOSTILE,
    argv_profile,
    commit_reader,
    configure,
    read_when_there,
    wait_for,
    workspace,
)

from am.commands import wait

pytestmark = pytest.mark.container


def inspect(engine: str, name: str, fmt: str) -> str:
    return subprocess.run(
        [engine, "inspect", "--format", fmt, name], capture_output=True, text=True, check=True
    ).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str = "/", timeout: float = 60) -> bytes:
    """The body of http://127.0.0.1:PORT/PATH once the server answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                return r.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_prompt_and_send_reach_a_container_agent(am, repo, engine):
    commit_reader(repo)
    agent = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        f"--prompt={HOSTILE}",
        "--cmd",
        'printf %s "$AM_PROMPT" > prompt.out; python3 reader.py; sleep 300',
    )
    ws = workspace(am, agent)
    assert read_when_there(ws / "prompt.out") == HOSTILE.encode()
    # am's own variable reaches the agent by name: its value is in no command line
    run_argv = " ".join(
        json.loads((am.home / "state" / "run" / f"{agent}.spec.json").read_text())["argv"]
    )
    assert "--env AM_PROMPT" in run_argv and "am-pwned" not in run_argv
    am.wait_log(agent, "READER-READY")
    text = 'first $(id) #{pane_id} "q" é 🚀 ;\n\tsecond C-c ;'
    am("send", agent, text)
    am("send", agent, "END")
    typed = wait_for(
        lambda: (
            (ws / "typed.bin").exists()
            and (ws / "typed.bin").read_bytes().endswith(b"END\n")
            and (ws / "typed.bin").read_bytes()
        ),
        "END typed",
    )
    assert typed == (text + "\nEND\n").encode()
    am("stop", agent)

    # a profile's own way, inside the container
    configure(am, argv_profile("claude"))
    agent = am.spawn(
        repo, "--container", "--runtime", engine, "--agent", "claude", f"--prompt={HOSTILE}"
    )
    assert am("wait", agent).returncode == 0
    assert json.loads((workspace(am, agent) / "argv.json").read_text()) == ["--", HOSTILE]


def test_start_keeps_the_settings_of_a_container_agent(am, repo, engine):
    cmd = (
        "echo run >> runs.txt; printf '%s-%s\\n' RUN $(wc -l < runs.txt); "
        'echo "VAR=$AM_TEST_VAR"; sleep 300'
    )
    agent = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        "--memory",
        "512m",
        "--cpus",
        "1.5",
        "--pids",
        "64",
        "--env",
        "AM_TEST_VAR=one",
        "--cmd",
        cmd,
    )
    am.wait_log(agent, "RUN-1")
    name = f"am-{agent}"
    fmt = "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"
    first = inspect(engine, name, fmt)
    assert first == f"{512 * 1024**2} 1500000000 64"
    am("stop", agent)
    assert container_names(engine, str(am.home)) == []

    # --env NAME=VALUE is never stored: a container agent cannot start without its value
    line = assert_am_error(am("start", agent, check=False))
    assert "AM_TEST_VAR is not set" in line and "--env" in line
    assert am.info(agent)["status"] == "stopped" and container_names(engine, str(am.home)) == []
    am("start", agent, "--env", "AM_TEST_VAR=two")
    log = am.wait_log(agent, "RUN-2")
    assert "VAR=one" in log and "VAR=two" in log
    assert inspect(engine, name, fmt) == first
    assert inspect(engine, name, "{{.HostConfig.NetworkMode}}") == "none"
    info = am.info(agent)
    assert (info["mode"], info["runtime"], info["status"]) == ("container", engine, "running")
    assert (workspace(am, agent) / "runs.txt").read_text() == "run\nrun\n"

    # exited, then started again: am wait sees each end
    subprocess.run([engine, "kill", name], capture_output=True)
    assert am("wait", agent, check=False).returncode == wait.EXITED_FAILED
    am("start", agent, "--env", "AM_TEST_VAR=three")
    am.wait_log(agent, "RUN-3")
    am("stop", agent)


def test_a_restored_container_agent_starts_in_a_container(am, repo, engine):
    agent = am.spawn(
        repo, "--container", "--runtime", engine, "--cmd", "echo made > made.txt; sleep 1"
    )
    assert am("wait", agent).returncode == 0
    snap = am("snapshot", agent).stdout.strip().splitlines()[-1]
    am("restore", snap, "--name", "back")
    am(
        "start",
        "back",
        "--runtime",
        engine,
        "--memory",
        "256m",
        "--cmd",
        "cat made.txt > seen.txt; sleep 300",
    )
    ws = workspace(am, "back")
    assert read_when_there(ws / "seen.txt") == b"made\n"
    info = am.info("back")
    assert (info["mode"], info["runtime"]) == ("container", engine)  # never on the host
    assert info["limits"]["memory"] == "256m"
    assert inspect(engine, "am-back", "{{.HostConfig.Memory}}") == str(256 * 1024**2)
    am("stop", "back")


@pytest.mark.parametrize("network", ["full", "limited"])
def test_publish_reaches_a_server_the_agent_runs(am, repo, engine, network, isolation):
    port = free_port()
    (repo / "page.html").write_text(f"served by the agent over {network}\n")
    subprocess.run(["git", "add", "page.html"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "page"], cwd=repo, check=True, env=am.env)
    # The server listens on the agent's own loopback, as dev servers do.
    agent = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        "--network",
        network,
        "--isolation",
        isolation,
        "--publish",
        f"{port}:8000",
        "--cmd",
        "exec python3 -m http.server 8000 --bind 127.0.0.1"
        if network == "limited"
        else "exec python3 -m http.server 8000",
    )
    try:
        assert http_get(port, "/page.html") == f"served by the agent over {network}\n".encode()
        assert am.info(agent)["publish"] == [f"127.0.0.1:{port}:8000"]
        # bound to the host's loopback only
        holder = f"am_proxy-{agent}" if network == "limited" else f"am-{agent}"
        ports = inspect(engine, holder, "{{json .HostConfig.PortBindings}}")
        assert json.loads(ports) and all(
            b["HostIp"] == "127.0.0.1" for bs in json.loads(ports).values() for b in bs
        )
        am("stop", agent)
        with pytest.raises(OSError):
            http_get(port, timeout=0)
        am("start", agent)  # published again
        assert http_get(port, "/page.html").startswith(b"served by the agent")
        am("stop", agent)
    finally:
        am("clean", "--containers", check=False)


def test_publish_is_refused_without_a_network(am, repo, engine):
    line = assert_am_error(
        am(
            "spawn",
            repo,
            "--container",
            "--runtime",
            engine,
            "--publish",
            "8080:80",
            "--cmd",
            "true",
            check=False,
        )
    )
    assert "needs a network" in line and "none" in line and "--network full" in line
    assert_nothing_made(am.home)
    assert container_names(engine, str(am.home)) == []


def test_start_of_a_container_worktree_agent_is_refused(am, repo, engine):
    """A container agent may not share the repository's git folder (docs/security.md, 9): a
    worktree agent recorded in container mode by an earlier am is not started again."""
    import json

    agent = am.spawn(repo, "--worktree", "--cmd", "sleep 300")
    am("stop", agent)
    state = am.home / "state" / "state.json"
    data = json.loads(state.read_text())
    data["agents"][agent].update(mode="container", runtime=engine, container=f"am-{agent}")
    state.write_text(json.dumps(data))
    line = assert_am_error(am("start", agent, check=False))
    assert "--worktree cannot be combined with --container" in line and "am snapshot" in line
    assert container_names(engine, str(am.home)) == []
    assert am.info(agent)["status"] == "stopped"

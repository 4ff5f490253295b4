"""Engine failures a user meets, each as one clear error with its fix, nothing half-made."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from containers import ENGINES, container_names, engine_ready
from helpers import agent_files

pytestmark = pytest.mark.container

TITLE = {"docker": "Docker", "podman": "Podman"}
HOST_VAR = {"docker": "DOCKER_HOST", "podman": "CONTAINER_HOST"}


def last_error(res) -> str:
    assert res.returncode != 0, res
    assert "Traceback" not in res.stderr, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("am: error:")]
    assert len(errors) == 1, res.stderr
    return errors[0]


def nothing_made(am) -> None:
    agents = am.home / "agents"
    assert not agents.exists() or not any(agents.iterdir())
    assert am.list() == []
    assert agent_files(am.home) == set()  # no log or run file of the agent that never was


def spawn_true(am, repo, name, **env):
    """A container spawn of ``true`` on engine NAME with ENV, its failure expected."""
    return am(
        "spawn", repo, "--container", "--runtime", name, "--cmd", "true", check=False, env=env
    )


@pytest.mark.parametrize("name", ENGINES)
def test_engine_not_in_path(am, repo, tmp_path, name):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "tmux"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    res = spawn_true(am, repo, name, PATH=str(bin_dir))
    assert f"{TITLE[name]} not found in PATH" in last_error(res)
    nothing_made(am)


@pytest.mark.parametrize("name", ENGINES)
def test_daemon_not_running(am, repo, tmp_path, name):
    engine_ready(name)
    res = am(
        "spawn",
        repo,
        "--container",
        "--runtime",
        name,
        "--cmd",
        "true",
        check=False,
        env={HOST_VAR[name]: f"unix://{tmp_path}/no-such.sock"},
    )
    line = last_error(res)
    assert f"{TITLE[name]} daemon is not running" in line and "hint:" in line
    # the hint names the variable that points at the dead socket, not the local service
    assert f"{HOST_VAR[name]}=unix://{tmp_path}/no-such.sock" in line, line
    assert "systemctl" not in line
    nothing_made(am)


@pytest.mark.parametrize("name", ENGINES)
def test_an_am_home_that_cannot_be_made_is_said_on_both_engines(am, repo, name):
    engine_ready(name)
    home = "/proc/am-no-such-folder/home"  # see test_errors: no folder can be made there
    res = spawn_true(am, repo, name, AM_HOME=home)
    line = last_error(res)
    assert "Traceback" not in res.stderr and res.returncode != 0, res.stderr
    assert f"cannot make the folder {home}/state" in line and "AM_HOME" in line, line
    assert container_names(name, home) == []


def test_agent_that_cannot_run_is_reported_alike_on_both_engines(am, repo, engine):
    """The container starts, the agent's command does not: spawn says so with the agent's
    exit code and last output, keeps the agent as exited (its log too), and exits non-zero.
    On a busy host too: its shell may try the command only well after 'start' returned."""
    res = am(
        "spawn", repo, "--container", "--runtime", engine, "--cmd", "exec /nonexistent", check=False
    )
    line = last_error(res)
    agent = res.stdout.strip().splitlines()[-1]  # the id, so the user can look at it
    assert f"agent {agent} exited with code 127 while starting" in line, res.stderr
    output = res.stderr.split("its last output:", 1)[1]
    assert "/nonexistent" in output and "not found" in output, res.stderr
    info = am.info(agent)
    assert info["status"] == "exited" and info["exit_code"] == 127
    assert "/nonexistent" in am("logs", agent).stdout
    assert container_names(engine, str(am.home)) == []


def test_agent_that_finishes_at_once_is_no_error(am, repo, engine):
    res = am(
        "spawn", repo, "--container", "--runtime", engine, "--cmd", "echo done-at-once", check=False
    )
    assert res.returncode == 0, res.stderr
    agent = res.stdout.strip().splitlines()[-1]
    assert am.wait_status(agent, "exited")["exit_code"] == 0


@pytest.mark.parametrize("network", ["full", "limited"])
def test_a_published_host_port_in_use_says_so(am, repo, engine, network):
    """The engine's words, and the fix: another host port, or who holds this one. The
    control: the same spawn once the port is free publishes it."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    argv = ["spawn", repo, "--container", "--runtime", engine, "--network", network]
    argv += ["--publish", f"{port}:3000", "--cmd", "sleep 300"]
    try:
        error = last_error(am(*argv, check=False))
    finally:
        held.close()
    assert "address already in use" in error, error
    assert f"(hint: host port {port} is in use here: publish on another" in error
    assert f"ss -ltnp 'sport = :{port}'" in error
    nothing_made(am)
    assert container_names(engine, str(am.home)) == []
    agent = am.spawn(*argv[1:])
    assert am.info(agent)["publish"] == [f"127.0.0.1:{port}:3000"]


@pytest.mark.parametrize("name", ENGINES)
def test_permission_denied_on_socket(name):
    """A socket only root may use, and am run as an unprivileged user."""
    if os.getuid() != 0:
        pytest.fail("this test arranges socket permissions and needs to run as root")
    engine_ready(name)
    top = Path(tempfile.mkdtemp(prefix="am-perm-"))
    try:
        top.chmod(0o777)
        sock_path = top / "engine.sock"
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(sock_path))
        server.listen(1)
        sock_path.chmod(0o600)
        home = top / "home"
        home.mkdir(mode=0o777)
        env = {
            "PATH": os.environ["PATH"],
            "AM_HOME": str(home),
            "HOME": str(home),
            HOST_VAR[name]: f"unix://{sock_path}",
        }
        res = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-m",
                "am",
                "image",
                "build",
                "--runtime",
                name,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=str(Path(__file__).parents[1]),
        )
        line = last_error(res)
        assert f"permission denied on the {TITLE[name]} socket" in line, res.stderr
        if name == "docker":
            assert "docker group" in line
        server.close()
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("name", ENGINES)
def test_image_build_failure_shows_the_build_output(am, name):
    engine_ready(name)
    res = am("image", "build", "--runtime", name, "--tag", "Not A Valid:Tag!", check=False)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "am: error: agent image build failed" in res.stderr
    tail = res.stderr.split("agent image build failed", 1)[1]
    assert "invalid" in tail.lower() or "tag" in tail.lower(), res.stderr[-1500:]


@pytest.mark.parametrize("name", ENGINES)
def test_missing_custom_image_is_refused(am, repo, name):
    engine_ready(name)
    res = am(
        "spawn",
        repo,
        "--container",
        "--runtime",
        name,
        "--image",
        "am-no-such:image",
        "--cmd",
        "true",
        check=False,
    )
    assert "not found" in last_error(res)
    nothing_made(am)


@pytest.mark.parametrize(
    "bad",
    [
        ["--memory", "0"],
        ["--cpus", "-1"],
        ["--pids", "abc"],
        ["--memory", "-1g"],
        ["--pids", "-5"],
        ["--memory", "100000g"],
        ["--cpus", "999"],
    ],
)
def test_bad_limits_refused_before_anything_starts(am, repo, bad):
    res = am(
        "spawn", repo, "--container", "--runtime", "docker", "--cmd", "true", *bad, check=False
    )
    assert bad[0] in last_error(res)
    nothing_made(am)

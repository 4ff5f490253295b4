"""am as an ordinary user that the tests create: tmux mode, docker through the docker group, and
rootless podman, whose limits must either hold or be refused before anything is made."""

import grp
import json
from pathlib import Path

import pytest
from containers import engine_ready, remove_containers
from unprivileged import (
    Install,
    User,
    UserAm,
    memory_limit_file,
    mini_rootfs,
    rootless_podman_enforces_limits,
)


@pytest.fixture(scope="module")
def install():
    made = Install()
    yield made
    made.remove()


@pytest.fixture(scope="module")
def user():
    """An ordinary user in the docker group (as 'sudo usermod -aG docker' makes one)."""
    made = User(groups=("docker",))
    yield made
    made.remove()


@pytest.fixture
def uam(user, install, request):
    am = UserAm(user, install, f"amhome-{request.node.name.translate(str.maketrans('[]', '--'))}")
    yield am
    for engine in ("docker", "podman"):
        remove_containers(engine, str(am.home))


def test_tmux_agent_runs_as_the_user(uam, user):
    repo = uam.repo()
    agent = uam.spawn(repo, "--cmd", "echo uid=$(id -u) > who.txt; echo WHO-DONE; sleep 60")
    uam.wait_log(agent, "WHO-DONE")
    ws = uam.home / "agents" / agent
    assert (ws / "who.txt").read_text() == f"uid={user.uid}\n"
    assert ws.stat().st_uid == user.uid
    assert "+uid=" in uam("diff", agent).stdout
    uam("stop", agent)
    assert uam("rm", agent, check=False).returncode != 0  # unsaved work: refused
    uam("rm", "--force", agent)
    assert not ws.exists()


@pytest.mark.container
def test_docker_agent_through_the_docker_group(uam, user):
    engine_ready("docker")
    repo = uam.repo()
    res = uam(
        "spawn",
        repo,
        "--container",
        "--runtime",
        "docker",
        "--cmd",
        "echo made-inside > inside.txt; echo uid=$(id -u); echo IN-DONE; sleep 300",
    )
    agent = res.stdout.strip().splitlines()[-1]
    log = uam.wait_log(agent, "IN-DONE")
    assert f"uid={user.uid}" in log  # the agent runs as the user, not as root
    inside = uam.home / "agents" / agent / "inside.txt"
    assert inside.read_text() == "made-inside\n" and inside.stat().st_uid == user.uid
    rows = json.loads(uam("status", agent, "--json").stdout)
    assert rows["figures_missing"] is None and rows["pids_limit"] == 100
    uam("stop", agent)
    uam("rm", "--force", agent)  # what the agent wrote is the user's to delete
    assert not (uam.home / "agents" / agent).exists()


@pytest.mark.container
def test_docker_group_user_gets_a_gvisor_agent(uam, user):
    """gVisor through the docker group: the runtimes engines-up.sh registers in dockerd serve
    an ordinary user too, and the workspace is still the user's."""
    engine_ready("docker")
    repo = uam.repo()
    res = uam(
        "spawn",
        repo,
        "--container",
        "--runtime",
        "docker",
        "--isolation",
        "gvisor",
        "--cmd",
        "dmesg 2>&1 | head -1; echo uid=$(id -u); echo made > g.txt; echo G-DONE; sleep 300",
    )
    agent = res.stdout.strip().splitlines()[-1]
    log = uam.wait_log(agent, "G-DONE", timeout=120)
    assert "Starting gVisor" in log and f"uid={user.uid}" in log  # gVisor's kernel, as the user
    made = uam.home / "agents" / agent / "g.txt"
    assert made.read_text() == "made\n" and made.stat().st_uid == user.uid
    assert uam.info(agent)["isolation"] == "gvisor"
    uam("stop", agent)
    uam("rm", "--force", agent)
    assert not (uam.home / "agents" / agent).exists()


@pytest.mark.container
def test_rootless_podman_limits_hold_or_are_refused(uam, user):
    repo = uam.repo()
    res = uam(
        "spawn",
        repo,
        "--container",
        "--runtime",
        "podman",
        "--cmd",
        "cat /sys/fs/cgroup/memory.max; echo LIMIT-DONE; sleep 300",
        check=False,
    )
    if rootless_podman_enforces_limits(user.uid):
        assert res.returncode == 0, res.stderr
        log = uam.wait_log(res.stdout.split()[-1], "LIMIT-DONE")
        assert str(2 * 1024**3) in log
        return
    # this host (cgroup v1, or no delegation) would run the agent with no limits at all
    control = user.run(
        "podman",
        "run",
        "--rm",
        "--network",
        "none",
        "--memory",
        "64m",
        "--rootfs",
        mini_rootfs(user, "/usr/bin/cat"),
        "/usr/bin/cat",
        memory_limit_file(),
        check=False,
    )
    assert control.returncode == 0, control.stderr  # podman itself runs it ...
    assert str(64 * 1024**2) not in control.stdout  # ... without the limit it was given
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("am: error:")]
    assert res.returncode != 0 and len(errors) == 1, res.stderr
    assert "rootless Podman ignores memory, CPU and process limits" in errors[0]
    assert "--runtime docker" in errors[0]  # the hint names what works
    gvisor = uam(
        "spawn", repo, "--container", "--runtime", "podman", "--isolation", "gvisor",
        "--cmd", "sleep 300", check=False,
    )  # fmt: skip
    errors = [ln for ln in gvisor.stderr.splitlines() if ln.startswith("am: error:")]
    assert gvisor.returncode != 0 and len(errors) == 1, gvisor.stderr  # gVisor changes nothing
    assert "rootless Podman ignores memory, CPU and process limits" in errors[0]
    assert not (uam.home / "agents").exists() or not any((uam.home / "agents").iterdir())
    assert json.loads(uam("list", "--json").stdout) == []
    doctor = {c["check"]: c for c in json.loads(uam("doctor", "--json").stdout)["checks"]}
    assert doctor["podman limits"]["ok"] is False
    assert "rootless Podman ignores" in doctor["podman limits"]["detail"]
    assert doctor["docker limits"]["ok"] is True


@pytest.mark.container
def test_auto_chooses_an_engine_that_enforces_the_limits(uam, user):
    engine_ready("docker")
    repo = uam.repo()
    agent = uam.spawn(repo, "--container", "--cmd", "sleep 300")
    want = "podman" if rootless_podman_enforces_limits(user.uid) else "docker"
    info = uam.info(agent)
    assert info["runtime"] == want and info["limits"] == {
        "memory": "2g",
        "cpus": "2",
        "pids": 100,
        "disk": None,
    }
    uam("stop", agent)


@pytest.mark.container
def test_a_tmux_server_older_than_the_group_does_not_matter(install):
    """The user joined the docker group after their tmux server started. A container agent's
    engine client once ran in that server, without the group, and could not start; it now runs
    detached, looked after by am's keeper, which am starts with the user's current groups."""
    engine_ready("docker")
    late = User()
    try:
        uam = UserAm(late, install, "amhome")
        repo = uam.repo()
        late.run("tmux", "new-session", "-d", "-s", "mine", "sleep 600")  # their own session
        # The control: that server's processes lack the group the user has now.
        server = late.run("tmux", "display-message", "-p", "-t", "=mine:", "#{pid}").stdout
        late.join("docker")
        status = Path(f"/proc/{server.strip()}/status").read_text()
        groups = next(ln for ln in status.splitlines() if ln.startswith("Groups:")).split()[1:]
        assert str(grp.getgrnam("docker").gr_gid) not in groups
        agent = uam.spawn(
            repo, "--container", "--runtime", "docker", "--cmd", "echo LATE-READY; sleep 300"
        )
        uam.wait_log(agent, "LATE-READY")
        assert late.run("tmux", "has-session", "-t", "=mine:", check=False).returncode == 0
        uam("stop", agent)
    finally:
        remove_containers("docker", str(late.home / "amhome"))
        late.remove()

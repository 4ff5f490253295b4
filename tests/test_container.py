"""Container mode end to end on the real docker and podman engines."""

import json
import os
import subprocess
import uuid

import pytest
from containers import container_names, cspawn, engine_ready, host_cgroup
from helpers import DOCUMENTED_KEYS, Terminal, assert_am_error, assert_nothing_made, git, wait_for

from am import isolation as isolations

pytestmark = pytest.mark.container


@pytest.fixture(autouse=True)
def _repo_on_am(am, repo):
    am.repo = repo


def test_lifecycle_logs_diff_attach_stop(am, engine, isolation, tmp_path):
    agent = cspawn(
        am,
        engine,
        "echo new > made.txt && git add made.txt && "
        "git -c user.name=a -c user.email=a@b commit -qm agent && echo edit >> README"
        " && echo AGENT-READY && read line && echo got-$line && sleep 300",
        isolation=isolation,
    )
    info = am.info(agent)
    assert info["mode"] == "container" and info["runtime"] == engine
    assert info["isolation"] == isolation
    assert f"container/{engine}/{isolation}" in am("list").stdout
    assert info["status"] == "running" and info["container"] == f"am-{agent}"
    assert info["limits"] == {"memory": "2g", "cpus": "2", "pids": 100, "disk": None}
    assert [a["id"] for a in am.list()] == [agent]
    assert f"am-{agent}" in container_names(engine, str(am.home))
    am.wait_log(agent, "AGENT-READY")

    diff = am("diff", agent).stdout
    assert "+new" in diff and "+edit" in diff and "made.txt" in diff

    # attach from an outer terminal, type a line, detach: the agent keeps running
    term = Terminal(
        tmp_path, [*am.argv, "attach", agent], {"AM_HOME": str(am.home), "PATH": os.environ["PATH"]}
    )
    try:
        # A container agent runs detached: am attach ends in the engine's own attach client.
        wait_for(
            lambda: engine_attach_running(engine, f"am-{agent}"),
            "am attach to run the engine's attach",
        )
        term.keys("hello-agent", literal=True)
        term.keys("Enter")
        am.wait_log(agent, "got-hello-agent")
        term.keys("C-b", "d")
        code, err = term.result()  # exit status and stderr of am attach
        # docker's client says how it detached; nothing else may be said
        assert code == 0 and err in ("", "read escape sequence\n"), err
    finally:
        term.close()
    assert am.info(agent)["status"] == "running"

    am("stop", agent)
    info = am.info(agent)
    assert info["status"] == "stopped"
    assert container_names(engine, str(am.home)) == []
    ws = am.home / "agents" / agent
    assert (ws / "made.txt").read_text() == "new\n"
    assert "got-hello-agent" in am("logs", agent).stdout  # the log outlives the container
    # files the agent wrote are the host user's to read and remove
    res = am("rm", agent, check=False)
    assert res.returncode != 0 and ws.exists()
    assert (am.home / "state" / "run" / agent).is_dir()  # the engine client's own folder
    assert info["session"] is None  # no tmux session: am's keeper holds its terminal
    am("rm", "--force", agent)
    assert not ws.exists()
    assert not (am.home / "state" / "run" / agent).exists()  # nothing of it piles up


# Read the same way under runc and gVisor: gVisor has no /sys/class/net and no NoNewPrivs line
# in /proc/self/status, so interfaces come from /proc/net/dev and the flag from prctl.
PROBE = r"""
echo "IFACES=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
echo "ROUTES=$(tail -n +2 /proc/net/route | wc -l)"
echo "UID=$(id -u)"
grep -E '^(CapEff|CapPrm|CapBnd):' /proc/self/status | tr -d '\t' | sed 's/^/STATUS_/'
python3 -c 'import ctypes; print("NNP=%d" % ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))'
python3 -c 'import resource; print("NPROC=%d" % resource.getrlimit(resource.RLIMIT_NPROC)[0])'
echo "ROOTMOUNT=$(awk '$2 == "/" {print $4}' /proc/mounts | tail -1 | cut -d, -f1)"
if touch /rootfs-write 2>/dev/null; then echo ROOTFS=writable; else echo ROOTFS=readonly; fi
if touch /workspace/probe-write; then echo WS=writable; fi
for d in /tmp "$HOME"; do printf '#!/bin/sh\necho yes\n' > "$d/run.sh"; chmod +x "$d/run.sh"; done
echo "TMPEXEC=$(/tmp/run.sh 2>/dev/null || echo no)"
echo "HOMEEXEC=$("$HOME/run.sh" 2>/dev/null || echo no)"
for s in /var/run/docker.sock /run/podman/podman.sock; do [ -e $s ] && echo SOCK=$s; done
echo SOCK=none
env | sed 's/^/ENV_/'
echo PROBE-DONE
sleep 300
"""


def probe_values(log: str) -> dict[str, str]:
    out = {}
    for line in log.replace("\r", "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isupper():
            out.setdefault(key, value.strip())
    return out


def test_policy_inside_container(am, engine, isolation):
    agent = cspawn(
        am,
        engine,
        PROBE,
        "--memory",
        "1g",
        "--cpus",
        "1.5",
        "--pids",
        "64",
        env={"AM_TEST_SECRET_SHOULD_NOT_LEAK": "leak"},
        isolation=isolation,
    )
    log = am.wait_log(agent, "PROBE-DONE")
    v = probe_values(log)
    assert v["IFACES"] == "lo", log
    assert v["ROUTES"] == "0"
    assert v["UID"] != "0"
    assert v["NNP"] == "1"
    assert "CapEff:0000000000000000" in log and "CapPrm:0000000000000000" in log
    assert v["ROOTMOUNT"] == "ro" and v["ROOTFS"] == "readonly"
    assert v["WS"] == "writable"
    # what the agent writes in /tmp and its home runs, on either engine (docker's default
    # for a tmpfs is noexec, podman's is not)
    assert v["TMPEXEC"] == "yes" and v["HOMEEXEC"] == "yes", log
    # The limits as the host's cgroups hold them (gVisor has no cgroup files inside).
    cg = host_cgroup(engine, f"am-{agent}")
    assert cg["memory"] == str(1024**3)
    quota, _, period = cg["cpu"].partition("/")
    assert int(quota) / int(period) == pytest.approx(1.5)
    if isolation == "runc":
        assert cg["pids"] == "64"
    else:
        # gVisor's kernel holds the agent to 64; the cgroup bounds the whole sandbox.
        assert v["NPROC"] == "64"
        assert int(cg["pids"]) == int(isolations.pids_args("gvisor", 64, os.cpu_count())[1])
    assert v["SOCK"] == "none"
    assert "ENV_AM_TEST_SECRET_SHOULD_NOT_LEAK" not in log and "AM_HOME" not in log
    probe_file = am.home / "agents" / agent / "probe-write"
    assert probe_file.exists()
    probe_file.unlink()  # the host user can remove what the agent wrote
    am("stop", agent)


# The agent waits for the test's go (a file in its workspace), not for time: one that ended
# while the spawn still waited would be reported by the spawn instead.
WAIT_GO = "until [ -e .go ]; do sleep 0.1; done; "


def go(am, agent):
    (am.home / "agents" / agent / ".go").touch()


def test_exit_code_survives_auto_removal(am, engine, isolation):
    agent = cspawn(am, engine, WAIT_GO + "exit 7", isolation=isolation)
    go(am, agent)
    info = am.wait_status(agent, "exited")
    assert info["exit_code"] == 7 and info["oom_killed"] is False
    assert container_names(engine, str(am.home)) == []
    listed = {a["id"]: a for a in am.list()}
    assert listed[agent]["exit_code"] == 7


def test_oom_kill_is_reported(am, engine, isolation):
    agent = cspawn(
        am, engine, WAIT_GO + "exec python3 -c 'b = bytearray(3 * 1024**3)'", isolation=isolation
    )
    go(am, agent)
    info = am.wait_status(agent, "exited", timeout=120)
    assert info["oom_killed"] is True, info
    assert info["exit_code"] == 137
    assert container_names(engine, str(am.home)) == []


BOMB = """exec python3 -c '
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        n += 1
except OSError as e:
    print("FORK-FAILED", n, e.strerror)
print("BOMB-DONE", flush=True)
time.sleep(600)
'"""


def test_fork_bomb_hits_pids_limit_and_stop_still_works(am, engine, isolation):
    agent = cspawn(am, engine, BOMB, "--pids", "50", isolation=isolation)
    log = am.wait_log(agent, "BOMB-DONE", timeout=120)
    forked = int(log.split("FORK-FAILED")[1].split()[0])
    assert 0 < forked < 50, log[-500:]
    am("stop", agent, timeout=120)
    assert am.info(agent)["status"] == "stopped"
    assert container_names(engine, str(am.home)) == []


def test_worktree_container_is_refused_and_the_repository_untouched(am, engine):
    """A container agent would have to write the repository's shared git folder to commit
    there (tests/security/test_hostile_workspace.py shows what it could plant): refused before
    anything is made, and nothing of the repository changes hands."""
    git_dir = am.repo / ".git"
    before = {p: (p.stat().st_uid, p.stat().st_mode) for p in git_dir.rglob("*")}
    branches = git("branch", "--list", cwd=am.repo)
    res = am(
        "spawn",
        am.repo,
        "--container",
        "--runtime",
        engine,
        "--worktree",
        "--cmd",
        "sleep 300",
        check=False,
    )
    line = assert_am_error(res)
    assert "--worktree cannot be combined with --container" in line and "hint:" in line
    assert_nothing_made(am.home)
    assert container_names(engine, str(am.home)) == []
    assert {p: (p.stat().st_uid, p.stat().st_mode) for p in git_dir.rglob("*")} == before
    assert git("branch", "--list", cwd=am.repo) == branches


KERNEL = "echo KERNEL=$(uname -r); dmesg 2>&1 | head -1 | sed 's/^/DMESG=/'; echo K-DONE; sleep 300"


def test_the_agent_sees_its_isolations_kernel(am, engine, isolation):
    """runc: the host's own kernel (the control); gVisor: gVisor's, not the host's."""
    agent = cspawn(am, engine, KERNEL, isolation=isolation)
    v = probe_values(am.wait_log(agent, "K-DONE"))
    if isolation == "runc":
        assert v["KERNEL"] == os.uname().release
        assert "gVisor" not in v["DMESG"]
    else:
        assert v["KERNEL"] != os.uname().release
        assert "Starting gVisor" in v["DMESG"], v
    am("stop", agent)


def test_json_fields_of_container_agent(am, engine):
    agent = cspawn(am, engine, "sleep 300", "--memory", "512m")
    info = am.info(agent)
    for key in DOCUMENTED_KEYS:
        assert key in info
    assert info["network"] == "none" and info["limits"]["memory"] == "512m"
    assert json.loads(am("list", "--json").stdout)[0]["id"] == agent
    am("stop", agent)


def test_count_spawns_several_containers(am, engine):
    res = am(
        "spawn", str(am.repo), "--count", "3", "--container", "--runtime", engine,
        "--memory", "64m", "--cmd", "echo READY-now && sleep 300",
    )  # fmt: skip
    ids = res.stdout.split()
    assert len(set(ids)) == 3 and res.stdout == "".join(f"{i}\n" for i in ids), res.stdout
    assert sorted(container_names(engine, str(am.home))) == sorted(f"am-{i}" for i in ids)
    for entry in am.list():
        assert entry["status"] == "running" and entry["runtime"] == engine
        assert entry["limits"]["memory"] == "64m"
        am.wait_log(entry["id"], "READY-now")
    for agent in ids:
        am("stop", agent)


def test_count_keeps_agents_that_ended_while_starting_and_says_so(am, engine):
    res = am(
        "spawn", str(am.repo), "--count", "2", "--container", "--runtime", engine,
        "--cmd", "exec /nonexistent-program", check=False,
    )  # fmt: skip
    ids = res.stdout.split()
    assert sorted(ids) == sorted(a["id"] for a in am.list()) and len(ids) == 2, res.stdout
    # Each says it ended (also on a busy host, where its shell tries the command only well
    # after its start), and the last line counts them.
    for agent in ids:
        assert f"agent {agent} exited with code 127 while starting" in res.stderr, res.stderr
    last = assert_am_error(res)
    assert "2 of 2 agents are not running; 2 ended while " in last
    assert "the ids of the 2 made are on standard output" in last
    assert res.returncode == 1, res.stderr  # as for one agent that ended so
    for agent in ids:  # kept, with how it ended
        info = am.wait_status(agent, "exited")
        assert info["exit_code"] == 127


def test_first_spawn_builds_the_image(am, engine):
    tag = f"am-agent:first-use-{uuid.uuid4().hex[:8]}"
    try:
        res = am(
            "spawn",
            am.repo,
            "--container",
            "--runtime",
            engine,
            "--image",
            tag,
            "--cmd",
            "echo BUILT-AND-RUNNING; sleep 300",
            timeout=1800,
        )
        assert "Building agent image (this may take a few minutes)..." in res.stderr
        assert "STEP" in res.stderr or "Step" in res.stderr  # the build's progress streamed
        agent = res.stdout.strip().splitlines()[-1]
        am.wait_log(agent, "BUILT-AND-RUNNING")
        am("stop", agent)
    finally:
        subprocess.run([engine, "rmi", "-f", tag], capture_output=True)


def test_clean_containers_asks_before_stopping_running_agents(am, engine, tmp_path):
    agent = cspawn(am, engine, "sleep 300")
    env = {"AM_HOME": str(am.home), "PATH": os.environ["PATH"]}
    for answer, code in (("n", 1), ("y", 0)):
        term = Terminal(tmp_path, [*am.argv, "clean", "--containers"], env)
        try:
            wait_for(
                lambda t=term: t.err.exists() and "Go ahead? [y/N]" in t.err.read_text(),
                "the question",
            )
            term.keys(answer, "Enter")
            rc, err = term.result()
        finally:
            term.close()
        assert rc == code, err
        assert f"stops 1 running container agent(s) ({agent})" in err
        if answer == "n":
            assert "am: error: nothing done" in err
            assert am.info(agent)["status"] == "running"
    assert container_names(engine, str(am.home)) == []
    assert am.list() == []  # stopped, and with no unsaved work, removed


def engine_attach_running(engine: str, container: str) -> bool:
    """Whether ENGINE's attach client for CONTAINER runs (am attach execs it last)."""
    import psutil

    for p in psutil.process_iter(["cmdline"]):
        argv = p.info["cmdline"] or []
        if argv and os.path.basename(argv[0]) == engine and "attach" in argv and container in argv:
            return True
    return False


def test_a_spawn_runs_few_engine_clients(am, engine):
    """Each engine client process costs tens of ms of CPU, paid per agent at scale: a docker
    spawn runs one (create; the rest goes over the API socket), podman one run, its command
    held until the keeper holds its terminal (am/gate.py; the keeper sees it run in /proc),
    and an image inspect only until its labels are known under podman's unchanged image file
    (am/imagecache.py). The agent still runs, logs."""

    def spawn():
        res = am(
            "spawn",
            str(am.repo),
            "--container",
            "--runtime",
            engine,
            "--cmd",
            "echo up; sleep 60",
            # podman itself each time: its service's calls are test_podman_service's
            env={"AM_DEBUG": "1", "AM_PODMAN_SERVICE": "0"},
        )
        calls = [
            line.split()[3]
            for line in res.stderr.splitlines()
            if line.startswith(f"am: debug: {engine} ")
        ]
        return res.stdout.strip().splitlines()[-1], calls

    agent, calls = spawn()
    assert calls == (["create"] if engine == "docker" else ["image", "run"])
    later, calls = spawn()
    assert calls == (["create"] if engine == "docker" else ["run"])
    for one in (agent, later):
        assert am.info(one)["status"] == "running"
        wait_for(lambda one=one: "up" in am("logs", one).stdout, what="the agent's output")


def test_docker_api_answers_as_the_cli(am):
    """The docker backend's API calls give what its CLI calls give (limits, an image's labels,
    whether a container runs), and the CLI's words where the API cannot answer."""
    from am.backends.docker import Docker
    from am.backends.engine import Engine

    engine_ready("docker")
    d = Docker()
    assert d.find_limits_problem() is None  # the API's verdict (this host enforces limits)
    for image in ("am-agent:latest", "am-no-such-image:x"):
        assert d.image_labels(image) == Engine.image_labels(d, image)
    name = f"am-test-api-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--label",
            f"am.home={am.home}",
            "am-agent:latest",
            "sleep",
            "60",
        ],
        check=True,
        capture_output=True,
    )
    try:
        assert d.container_running(name) is Engine.container_running(d, name) is True
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    assert d.container_running(name) is Engine.container_running(d, name) is False
    # An API that does not answer: the CLI is asked, and its own words come back.
    from am import engineapi

    d._api = engineapi.Endpoint("unix:///nonexistent/docker.sock")
    res = d.start_container(name, [])
    assert not res.ok and "no such container" in res.err.lower()


def test_docker_start_asks_the_cli_when_the_answer_is_not_dockers(am):
    """A TLS daemon spoken to in plain HTTP answers with text, not docker's JSON: the start is
    then the CLI's, whose own words come back, never that text as a failed start."""
    import socket
    import threading

    from am import engineapi
    from am.backends.docker import Docker, api_message

    engine_ready("docker")
    page = b"Client sent an HTTP request to an HTTPS server.\n"
    server = socket.create_server(("127.0.0.1", 0))

    def answer():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            head = f"HTTP/1.1 400 Bad Request\r\nContent-Length: {len(page)}\r\n\r\n"
            conn.sendall(head.encode() + page)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    d = Docker()
    d._api = engineapi.Endpoint(f"tcp://127.0.0.1:{server.getsockname()[1]}")
    res = d.start_container(f"am-test-nosuch-{uuid.uuid4().hex[:8]}", [])
    t.join(timeout=30)
    server.close()
    assert not t.is_alive()  # the API was asked first
    assert not res.ok and "no such container" in res.err.lower() and "HTTPS" not in res.err
    # the positive control: read as docker's answer, that page would have been the error
    assert api_message(page) == page.decode().strip() and api_message(page, strict=True) is None


def test_a_root_ams_agent_runs_only_once_its_workspace_is_its_own(am, engine, tmp_path):
    """As root, the workspace is handed to the agent's uid (chown) beside the engine's create,
    and waited for before anything runs as that uid: with the hand-over slowed by a second,
    the agent's first act, a write at the workspace's top, still succeeds."""
    if os.getuid() != 0:
        pytest.fail("the hand-over is root's: run as root")
    shim = tmp_path / "shim"
    shim.mkdir()
    real = subprocess.run(["sh", "-c", "command -v chown"], capture_output=True, text=True)
    (shim / "chown").write_text(f'#!/bin/sh\nsleep 1\nexec {real.stdout.strip()} "$@"\n')
    (shim / "chown").chmod(0o755)
    # Control: the top of a fresh workspace is root's and private until the hand-over; the
    # agent's uid cannot write there.
    top = tmp_path / "private"
    top.mkdir(mode=0o700)
    probe = subprocess.run(
        [engine, "run", "--rm", "--user", "2000000000:2000000000", "--mount",
         f"type=bind,source={top},target=/workspace", "am-agent:latest",
         "touch", "/workspace/written"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert probe.returncode != 0 and "Permission denied" in probe.stderr, probe
    agent = am.spawn(
        am.repo, "--container", "--runtime", engine, "--cmd",
        "touch /workspace/written && echo WROTE; sleep 60",
        env={"PATH": f"{shim}:{os.environ['PATH']}"},
    )  # fmt: skip
    am.wait_log(agent, "WROTE")
    assert am.info(agent)["status"] == "running"

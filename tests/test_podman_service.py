"""Podman spawns through the podman service of their caller (am/podmanservice.py), on the real
engine: the same containers for less, never another caller's service, and a local run when the
service has gone."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psutil
import pytest
from containers import container_names, engine_client, engine_ready, remove_containers
from helpers import GIT_ID, Am, stop_keeper, wait_for

from am import podmanservice

pytestmark = pytest.mark.container

# What makes a container an agent's box: the same whichever podman process made it.
BOX = (
    ("HostConfig", "Memory"),
    ("HostConfig", "MemorySwap"),
    ("HostConfig", "PidsLimit"),
    ("HostConfig", "NanoCpus"),
    ("HostConfig", "CapDrop"),
    ("HostConfig", "CapAdd"),
    ("HostConfig", "SecurityOpt"),
    ("HostConfig", "ReadonlyRootfs"),
    ("HostConfig", "Init"),
    ("HostConfig", "Ulimits"),
    ("HostConfig", "NetworkMode"),
    ("HostConfig", "Tmpfs"),
    ("HostConfig", "Privileged"),
    ("Config", "User"),
    ("Config", "WorkingDir"),
)


@pytest.fixture
def am(repo):
    """An ``am`` whose AM_HOME is short enough for the service's socket, as a user's is: a
    unix address holds about 107 bytes, and a path of pytest's is longer (a spawn there runs
    podman itself)."""
    top = Path(tempfile.mkdtemp(prefix="amps-", dir="/tmp"))
    home = top / "h"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AM_", "TMUX"))}
    env.update(AM_HOME=str(home), **GIT_ID)
    made = Am(home, env)
    made.repo = repo
    yield made
    stop_keeper(home)
    podmanservice.stop(str(home / "state" / "run"))
    remove_containers("podman", str(home))
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def podman(am):
    engine_ready("podman")
    return "podman"


def spawn(am, cmd: str, env=None, extra=()) -> tuple[str, list[str]]:
    """A podman agent running CMD; its id and the podman command lines am ran (AM_DEBUG)."""
    res = am(
        "spawn",
        str(am.repo),
        "--container",
        "--runtime",
        "podman",
        "--memory",
        "256m",
        "--cmd",
        cmd,
        *extra,
        env={"AM_DEBUG": "1", **(env or {})},
    )
    calls = [
        line[len("am: debug: ") :]
        for line in res.stderr.splitlines()
        if line.startswith("am: debug: ") and "podman " in line.split(" -> ")[0]
    ]
    return res.stdout.strip().splitlines()[-1], calls


def verb(call: str) -> str:
    words = call.split()
    return f"served {words[4]}" if words[1:3] == ["--remote", "--url"] else words[1]


def runs(calls: list[str]) -> list[str]:
    return [c for c in calls if " run " in c.split(" -> ")[0]]


def sockets(am) -> list[str]:
    run = am.home / "state" / "run" / "podman"
    return sorted(str(p) for p in run.glob("*.sock"))


def listening_one(am) -> str:
    """The one socket of this home's service, once it answers."""
    return wait_for(
        lambda: next((s for s in sockets(am) if podmanservice.listening(s)), None),
        "the spawns' podman service to listen",
        60,
    )


def inspect(name: str) -> dict:
    out = subprocess.run(
        ["podman", "inspect", name], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)[0]


def box(data: dict) -> dict:
    return {f"{a}.{b}": data[a].get(b) for a, b in BOX}


def test_spawns_after_the_first_go_through_the_service_and_make_the_same_box(am, podman):
    """One podman process a spawn: the first runs podman itself and starts the service, the
    ones after send their run there."""
    first, calls = spawn(am, "echo up-one; sleep 300")
    assert [verb(c) for c in calls] == ["image", "system", "run"], calls
    sock = listening_one(am)
    later, calls = spawn(am, "echo up-two; read line; echo got-$line; sleep 300")
    assert [verb(c) for c in calls] == ["served run"], calls
    assert calls[0].startswith(f"podman --remote --url unix://{sock} run "), calls
    for agent, word in ((first, "up-one"), (later, "up-two")):
        assert am.info(agent)["status"] == "running"
        wait_for(lambda a=agent, w=word: w in am("logs", a).stdout, what="the agent's output")
    one, two = inspect(f"am-{first}"), inspect(f"am-{later}")
    assert two["Config"]["CreateCommand"][1:3] == ["--remote", "--url"]  # made by the service
    assert box(one) == box(two)
    assert box(two)["HostConfig.Memory"] == 256 * 2**20
    # its input reaches it through the keeper on its terminal, as a local run's does
    am("send", later, "hello")
    am.wait_log(later, "got-hello")


def write_conf(path: Path, value: str) -> Path:
    """This host's containers.conf, with one more environment variable for every container."""
    text = Path("/etc/containers/containers.conf").read_text()
    line = f'env = ["AM_FIDELITY={value}"]'
    if "\n[containers]\n" in f"\n{text}":
        text = f"\n{text}".replace("\n[containers]\n", f"\n[containers]\n{line}\n", 1)
    else:
        text = f"[containers]\n{line}\n{text}"
    path.write_text(text)
    return path


def fidelity(name: str) -> str | None:
    env = inspect(name)["Config"]["Env"]
    return next((e.split("=", 1)[1] for e in env if e.startswith("AM_FIDELITY=")), None)


def test_a_caller_that_differs_never_reaches_another_callers_service(am, podman, tmp_path):
    """The service makes a container with its own process's settings. A spawn whose podman
    would read another containers.conf (CONTAINERS_CONF) gets its own, never the first's."""
    conf_a = write_conf(tmp_path / "a.conf", "a")
    conf_b = write_conf(tmp_path / "b.conf", "b")
    first, _ = spawn(am, "sleep 300", env={"CONTAINERS_CONF": str(conf_a)})
    sock_a = listening_one(am)
    # Positive control: sent to the first's service, a caller of b.conf gets a's settings.
    env = {**os.environ, "CONTAINERS_CONF": str(conf_b)}
    control = subprocess.run(
        ["podman", "--remote", "--url", f"unix://{sock_a}", "run", "--rm", "--pull", "never",
         "am-agent:latest", "printenv", "AM_FIDELITY"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert control.stdout.strip() == "a", control.stderr
    second, calls = spawn(am, "sleep 300", env={"CONTAINERS_CONF": str(conf_b)})
    assert not any(sock_a in c for c in calls), calls
    assert fidelity(f"am-{first}") == "a" and fidelity(f"am-{second}") == "b"
    third, calls = spawn(am, "sleep 300", env={"CONTAINERS_CONF": str(conf_a)})
    assert any(c.startswith(f"podman --remote --url unix://{sock_a} run ") for c in calls), calls
    assert fidelity(f"am-{third}") == "a"


class OnePing:
    """A listener at PATH that answers one ping as a podman service does, then is gone: a
    service that left between a spawn's look and its run."""

    def __init__(self, path: str):
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.server.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
        self.server.close()
        os.unlink(self.path)


def test_a_service_gone_after_the_look_leaves_the_run_to_podman_itself(am, podman):
    first, _ = spawn(am, "sleep 300")
    sock = listening_one(am)
    assert podmanservice.stop(str(am.home / "state" / "run"))
    wait_for(lambda: not os.path.exists(sock), "the service to leave", 60)
    fake = OnePing(sock)
    later, calls = spawn(am, "echo still-up; sleep 300")
    fake.thread.join(10)
    served = [c for c in runs(calls) if c.startswith(f"podman --remote --url unix://{sock} run ")]
    local = [c for c in runs(calls) if c.startswith("podman run ")]
    assert len(served) == 1 and len(local) == 1, calls  # tried, then podman itself
    assert am.info(later)["status"] == "running"
    wait_for(lambda: "still-up" in am("logs", later).stdout, what="the agent's output")


def test_the_client_words_for_a_service_that_is_not_there():
    """``unreachable`` reads podman's own words: none listening, or a stale socket file."""
    engine_ready("podman")
    run = ["run", "--rm", "--pull", "never", "am-agent:latest", "true"]
    res = subprocess.run(
        ["podman", "--remote", "--url", "unix:///nonexistent/podman.sock", *run],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode != 0 and podmanservice.unreachable(res.stderr), res.stderr
    res = subprocess.run(
        ["podman", "run", "--rm", "--pull", "never", "am-no-such-image:x", "true"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode != 0 and not podmanservice.unreachable(res.stderr), res.stderr


def test_stop_ends_only_the_services_it_started(tmp_path):
    """``stop`` signals the pid its marker names only while that process is the service of
    that socket: a pid since reused by another program is left alone (the control: one whose
    command line is the service's is ended)."""
    run = tmp_path / "run"
    (run / "podman").mkdir(parents=True)
    sock = run / "podman" / "0123456789abcdef.sock"
    other = subprocess.Popen(["sleep", "300"])
    like = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", "system", "service",
         f"unix://{sock}"]
    )  # fmt: skip
    try:
        (run / "podman" / "0123456789abcdef.started").write_text(f"{other.pid}\n")
        assert podmanservice.stop(str(run)) == []
        assert other.poll() is None
        (run / "podman" / "0123456789abcdef.started").write_text(f"{like.pid}\n")
        assert podmanservice.stop(str(run)) == [like.pid]
        assert like.wait(30) == -signal.SIGTERM
    finally:
        for p in (other, like):
            p.kill()
            p.wait()


def service_pids(am) -> list[int]:
    run = am.home / "state" / "run" / "podman"
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd[1:3] == ["system", "service"] and cmd[-1].startswith(f"unix://{run}/"):
            found.append(p.pid)
    return found


def test_what_an_agent_adds_reaches_only_the_client_and_one_service_serves_all(am, podman):
    """--env values (secrets) and the task differ from agent to agent: they reach the
    container through the client, never the service's environment, and do not make a
    service per agent. A --count spawn starts one service too."""
    spawn(am, "sleep 300", extra=["--count", "3", "--env", "T_SECRET=first"])
    sock = listening_one(am)
    one, calls = spawn(am, "sleep 300", extra=["--env", "T_SECRET=one"])
    two, calls2 = spawn(am, "sleep 300", extra=["--env", "T_SECRET=two"])
    for c in (calls, calls2):
        assert [verb(x) for x in c] == ["served run"], c
    assert sockets(am) == [sock] and len(service_pids(am)) == 1
    for agent, value in ((one, "one"), (two, "two")):
        assert f"T_SECRET={value}" in inspect(f"am-{agent}")["Config"]["Env"]
    environ = psutil.Process(service_pids(am)[0]).environ()
    assert "T_SECRET" not in environ and environ.get("AM_HOME") == str(am.home)
    # One that names a setting of podman's own (its temporary folder) is not sent there.
    third, calls = spawn(am, "sleep 300", extra=["--env", "TMPDIR=/tmp"])
    assert [verb(c) for c in calls] == ["run"], calls


def test_a_served_agent_killed_for_memory_is_recorded_and_drops_nothing_on_the_host(am, podman):
    """conmon drops an 'oom' marker in its working folder: a service's is a private folder of
    its own, never the host's /."""
    assert not os.path.exists("/oom")
    spawn(am, "sleep 300")
    listening_one(am)
    agent, calls = spawn(am, "sleep 1; exec python3 -c 'b = bytearray(3 * 1024**3)'")
    assert [verb(c) for c in calls] == ["served run"], calls
    info = am.wait_status(agent, "exited", timeout=120)
    assert info["oom_killed"] is True and info["exit_code"] == 137, info
    assert not os.path.exists("/oom")
    marker = [p for p in (am.home / "state" / "run" / "podman").glob("*.d/oom")]
    assert marker, "conmon's marker, in the service's own folder"


def test_a_path_podman_would_cut_short_gets_no_service(podman, repo):
    """A '#' in AM_HOME: podman reads 'unix:///x#y/...' as the path /x and would replace a
    file there with its socket (the positive control below). am starts no service there."""
    top = Path(tempfile.mkdtemp(prefix="amps-", dir="/tmp"))
    try:
        victim = top / "v"
        victim.write_text("mine\n")
        service = subprocess.Popen(
            ["podman", "system", "service", "--time", "5", f"unix://{top}/v#x/s.sock"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for(lambda: not victim.is_file(), "podman to take the cut path", 60)
        finally:
            service.kill()
            service.wait()
        victim.unlink(missing_ok=True)
        victim.write_text("mine\n")
        home = top / "v#x" / "h"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AM_", "TMUX"))}
        made = Am(home, {**env, "AM_HOME": str(home), **GIT_ID})
        made.repo = repo
        try:
            spawn(made, "sleep 300")
            second, calls = spawn(made, "sleep 300")
            assert [verb(c) for c in calls] == ["run"], calls
            assert victim.read_text() == "mine\n"
            assert not (home / "state" / "run" / "podman").exists()
        finally:
            stop_keeper(home)
            remove_containers("podman", str(home))
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_ctrl_c_at_the_terminal_during_a_served_run_leaves_nothing(am, podman):
    """A terminal's Ctrl-C reaches its whole process group. The served client is out of it
    (settled calls are): it ends its request, the service's container is made, and the
    spawn's undo removes it. 130, and no container or record left."""
    spawn(am, "sleep 300")
    listening_one(am)
    before = set(container_names("podman", str(am.home)))
    p = subprocess.Popen(
        [*am.argv, "spawn", str(am.repo), "--container", "--runtime", "podman", "--cmd",
         "sleep 300"],
        env=am.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own group, as a shell's foreground job
    )  # fmt: skip
    try:
        wait_for(
            lambda: engine_client(p, "podman") or p.poll() is not None,
            "the spawn to send its run",
            60,
            every=0.002,
        )
        kids = [c for c in psutil.Process(p.pid).children() if c.name() == "podman"]
        served = [c.cmdline()[1:3] == ["--remote", "--url"] for c in kids]
        groups = {c.pid: os.getpgid(c.pid) for c in kids}
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 130, (out, err)
    assert served == [True] and all(g == pid != p.pid for pid, g in groups.items()), groups
    assert set(container_names("podman", str(am.home))) == before
    assert len(am.list()) == len(before)

"""am's keeper under attack: killed while agents run, two AM_HOMEs, stale files, requests
that arrive as it leaves, agents that end as soon as they start (real engines, real keepers)."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from containers import container_names, engine_ready, remove_containers
from helpers import home_layout, keeper_pid, stop_keeper

from am import keeper, keepersock
from am.errors import AmError


def wait_for(what, timeout=30):
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def ping(home, monkeypatch) -> int:
    monkeypatch.setenv("AM_HOME", str(home))  # the keeper it starts serves the env's AM_HOME
    return keepersock.request(home_layout(home), {"op": "ping"}, timeout=10)["pid"]


def test_each_am_home_has_its_own_keeper(tmp_path, monkeypatch):
    one, two = tmp_path / "one", tmp_path / "two"
    try:
        a, b = ping(one, monkeypatch), ping(two, monkeypatch)
        assert a != b
        assert keeper_pid(one) == a and keeper_pid(two) == b  # the same keeper answers again
        stop_keeper(one)
        assert not keepersock.alive(home_layout(one)) and keepersock.alive(home_layout(two))
        assert keeper_pid(two) == b
    finally:
        stop_keeper(one)
        stop_keeper(two)


def test_liveness_is_a_lock_the_kernel_drops_not_a_pid(tmp_path, monkeypatch):
    """A keeper killed with SIGKILL leaves its files behind; nothing in them names a process
    that could be reused: whether one runs is the lock, which dies with its holder."""
    home = tmp_path / "home"
    layout = home_layout(home)
    layout.run.mkdir(parents=True)
    # Positive control: a process holding the lock counts as a running keeper ...
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, os, sys, time\n"
                f"fd = os.open({str(layout.run / 'keeper.lock')!r}, "
                "os.O_RDWR | os.O_CREAT, 0o600)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(600)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        assert keepersock.alive(layout)
    finally:
        holder.kill()
        holder.wait()
    # ... and no longer once it is killed, whatever its files say: the lock file names a live
    # process (this test's), and the socket file is one nobody listens on.
    (layout.run / "keeper.lock").write_text(f"{os.getpid()}\n")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(layout.run / "keeper.sock"))
    stale.close()
    assert not keepersock.alive(layout)
    with pytest.raises(AmError, match="not running"):
        keepersock.request(layout, {"op": "ping"}, start_keeper=False)
    try:
        pid = ping(home, monkeypatch)
        assert pid not in (os.getpid(), holder.pid) and keepersock.alive(layout)
        # what a client asks of the new keeper, it answers
        assert keepersock.request(layout, {"op": "ping"}, start_keeper=False)["pid"] == pid
    finally:
        stop_keeper(home)
        end(pid)


def test_requests_are_answered_while_keepers_come_and_go(tmp_path, monkeypatch):
    """A keeper leaves when idle; a request that arrives as it leaves is answered, by it or by
    the next (here keepers leave 50 ms after their last request, hundreds of times)."""
    home = tmp_path / "home"
    monkeypatch.setenv("AM_KEEPER_IDLE", "0.05")
    pids = set()
    try:
        for i in range(150):
            pids.add(ping(home, monkeypatch))
            time.sleep((i % 8) * 0.015)  # across the moment the keeper decides to leave
    finally:
        stop_keeper(home)
    assert len(pids) > 1  # keepers did leave in between


def test_only_one_keeper_however_many_start_at_once(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("AM_HOME", str(home))
    layout = home_layout(home)
    procs = [keepersock.start(layout) for _ in range(6)]
    try:
        # The lock is taken before the socket listens, so wait for an answer, not the lock.
        wait_for(lambda: keeper_pid(home) is not None)
        pid = keeper_pid(home)
        assert keepersock.alive(layout)
        assert pid in [p.pid for p in procs]
        # every other one found the lock taken and left at once
        assert [p.wait(60) for p in procs if p.pid != pid] == [0] * 5
        assert keeper_pid(home) == pid
    finally:
        stop_keeper(home)
        for p in procs:
            p.wait(60)


def gone(pid: int) -> bool:
    """Whether the keeper PID has ended (it is this process's child, reaped here)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:  # reaped already
        return True


def end(*pids: int | None) -> None:
    """Kill and reap keepers a test started that no socket may reach (as on the code before)."""
    for pid in pids:
        if pid and not gone(pid):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_a_keeper_of_a_deleted_home_leaves_the_new_keepers_socket(tmp_path, monkeypatch):
    """AM_HOME deleted and made again while its keeper ran: the new home gets a keeper of its
    own, and the old one, leaving later, keeps its hands off the new keeper's socket (before,
    it unlinked it on its way out, and every spawn then waited 15 s for a keeper that held the
    lock but could not be reached)."""
    home = tmp_path / "home"
    layout = home_layout(home)
    # The old keeper leaves 5 s after its ping: after the new one is up (asserted), however
    # slowly a busy machine starts it.
    monkeypatch.setenv("AM_KEEPER_IDLE", "5")
    old, new = ping(home, monkeypatch), None
    subprocess.run(["rm", "-rf", str(home)], check=True)
    monkeypatch.setenv("AM_KEEPER_IDLE", "600")
    try:
        new = ping(home, monkeypatch)
        assert new != old and not gone(old)
        wait_for(lambda: gone(old))
        assert keepersock.request(layout, {"op": "ping"}, start_keeper=False)["pid"] == new
    finally:
        stop_keeper(home)
        end(old, new)


def test_a_keeper_listens_again_when_its_socket_file_goes(tmp_path, monkeypatch):
    """A cleaner of old files (or a hand) removes keeper.sock while the keeper runs: it makes
    it again within a second or two, and answers as before."""
    home = tmp_path / "home"
    layout = home_layout(home)
    monkeypatch.setenv("AM_KEEPER_IDLE", "600")
    pid = ping(home, monkeypatch)
    try:
        (layout.run / "keeper.sock").unlink()
        with pytest.raises(AmError, match="not running"):  # the file is what clients reach
            keepersock.request(layout, {"op": "ping"}, start_keeper=False)
        wait_for(lambda: keepersock.ask(layout.run_text, {"op": "ping"}))
        assert keepersock.request(layout, {"op": "ping"}, start_keeper=False)["pid"] == pid
    finally:
        stop_keeper(home)
        end(pid)


@pytest.mark.container
def test_agents_that_end_at_once_are_recorded(am, repo, engine):
    """An agent that exits within milliseconds of its start, several at once: each spawn
    makes its agent (and says so if it already ended) and each exit is recorded (once
    reported as 'did not start', or a failed attach while conmon had not made its socket
    yet)."""
    n = 6
    procs = [
        subprocess.Popen(
            [
                *am.argv,
                "spawn",
                str(repo),
                "--container",
                "--runtime",
                engine,
                "--cmd",
                "echo bye; exit 3",
            ],
            env=am.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        # Ended before its spawn returned: said, with its code; else a plain spawn.
        assert p.returncode == 0 or (
            p.returncode == 1 and "exited with code 3 while starting" in err
        ), err
    agents = [out.strip().splitlines()[-1] for out, _ in outs]
    for agent in agents:
        info = am.wait_status(agent, "exited")
        assert info["exit_code"] == 3, info
        assert "bye" in am("logs", agent).stdout
    wait_for(lambda: container_names(engine, str(am.home)) == [], 60)


@pytest.mark.container
def test_a_killed_keeper_is_replaced_and_nothing_is_lost(am, repo, engine):
    layout = home_layout(am.home)
    ended = am.spawn(repo, "--container", "--runtime", engine, "--cmd", "echo started; sleep 600")
    typed = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        "--cmd",
        'echo ready; read line; echo "got $line" > got.txt; cat got.txt; exit 5',
    )
    am.wait_log(ended, "started")
    am.wait_log(typed, "ready")
    old = keeper_pid(am.home)
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not keepersock.alive(layout))
    # While no keeper runs, one agent is killed: its exit is the engine's to remember.
    subprocess.run([engine, "kill", f"am-{ended}"], check=True, capture_output=True)
    # The next am command starts a keeper, which finds both and types into the other.
    am("send", typed, "hello")
    new = keeper_pid(am.home)
    assert new and new != old
    info = am.wait_status(ended, "exited")
    assert info["exit_code"] == 137, info  # 128 + SIGKILL, read from the engine
    info = am.wait_status(typed, "exited")
    assert info["exit_code"] == 5, info
    log = am("logs", typed).stdout
    assert "got hello" in log and "keeper was not running" in log, log
    # the work is in the workspace, and the diff shows it
    assert "got hello" in am("diff", typed).stdout
    wait_for(lambda: container_names(engine, str(am.home)) == [], 60)


@pytest.mark.container
def test_a_container_removed_behind_ams_back_is_not_running_forever(am, repo, engine):
    agent = am.spawn(repo, "--container", "--runtime", engine, "--cmd", "sleep 600")
    subprocess.run([engine, "rm", "--force", f"am-{agent}"], check=True, capture_output=True)
    info = am.wait_status(agent, "exited")
    # the keeper read the engine's SIGTERM (143) or SIGKILL (137) if it saw the end before the
    # removal, else nothing is known
    assert info["exit_code"] in (None, 137, 143), info


@pytest.mark.container
def test_a_watch_acts_only_on_the_container_it_watched(am, engine, tmp_path):
    """'am stop' removes an agent's container, and the next container of that name ('am
    start', or anyone's) may exist before the old watch sees its end: that watch must never
    record the new one's end as the agent's, nor remove it. Real engine, the keeper's own
    Watch, driven by hand to hit the moment the race only sometimes reaches."""
    import json
    import uuid

    from am import engineapi
    from am.launchspec import ContainerSpec, LaunchSpec

    name = f"am-watch-{uuid.uuid4().hex[:8]}"
    label = ["--label", f"am.home={am.home}"]
    api = engineapi.Endpoint(engineapi.DEFAULT_DOCKER).to_json() if engine == "docker" else None

    def watch(n: int) -> keeper.Watch:
        spec = LaunchSpec(
            argv=["x"], cwd=str(tmp_path), env={}, log=str(tmp_path / "log"),
            exit_file=str(tmp_path / f"exit{n}.json"),
            container=ContainerSpec(engine=engine, name=name, api=api),
        )  # fmt: skip
        w = keeper.Watch(keeper.Keeper(home_layout(am.home)), "x", spec)
        w.launched.set()
        return w

    def exists() -> bool:
        return subprocess.run([engine, "inspect", name], capture_output=True).returncode == 0

    subprocess.run([engine, "create", "--name", name, *label, "am-agent:latest", "true"],
                   check=True, capture_output=True)  # fmt: skip
    old = watch(1)
    assert old.first_look() == "created" and old.ref
    subprocess.run([engine, "rm", "--force", name], check=True, capture_output=True)
    # the next container of that name, ended with a code of its own
    subprocess.run([engine, "run", "--name", name, *label, "am-agent:latest", "sh", "-c", "exit 7"],
                   capture_output=True)  # fmt: skip
    assert exists()
    old.finish()
    assert exists(), "the old watch removed a container it never watched"
    assert not (tmp_path / "exit1.json").exists()
    # Positive control: a watch that names the container by its name alone (as the keeper
    # did) takes the new container's end for its own, and removes it.
    blind = watch(2)
    blind.finish()
    assert not exists()
    assert json.loads((tmp_path / "exit2.json").read_text())["exit_code"] == 7


@pytest.mark.container
def test_a_superseded_watch_never_records_an_end(am, engine, tmp_path, monkeypatch):
    """The old watch of an agent that 'am stop' and 'am start' ran for reaches its end late:
    its container is gone and the record says running (the new start's). A start's watch
    request that supersedes it in the middle of its end must leave no exit file, or the new
    run would read as ended. The supersede is made to land there: in the old watch's look
    at the record. The positive control is the same end without the supersede."""
    import uuid

    from am import engineapi
    from am.launchspec import ContainerSpec, LaunchSpec

    name = f"am-late-{uuid.uuid4().hex[:8]}"
    api = engineapi.Endpoint(engineapi.DEFAULT_DOCKER).to_json() if engine == "docker" else None
    exit_file = tmp_path / "exit.json"
    k = keeper.Keeper(home_layout(am.home))

    def old_watch() -> keeper.Watch:
        spec = LaunchSpec(
            argv=["x"], cwd=str(tmp_path), env={}, log=str(tmp_path / "log"),
            exit_file=str(exit_file), container=ContainerSpec(engine=engine, name=name, api=api),
        )  # fmt: skip
        w = keeper.Watch(k, "x", spec)
        w.launched.set()
        subprocess.run([engine, "create", "--name", name, "am-agent:latest", "true"],
                       check=True, capture_output=True)  # fmt: skip
        assert w.first_look() == "created" and w.ref
        subprocess.run([engine, "rm", "--force", name], check=True, capture_output=True)
        k.watches["x"] = w
        return w

    # the control: not superseded, the vanished container's end is written
    monkeypatch.setattr(k, "still_running", lambda agent_id: True)
    old_watch().finish()
    assert exit_file.exists()
    exit_file.unlink()

    def start_meanwhile(agent_id):
        k.watch(agent_id, launched=False, cid="the-new-container")  # no spec: only supersedes
        return True

    old = old_watch()
    monkeypatch.setattr(k, "still_running", start_meanwhile)
    old.finish()
    assert old.superseded and not exit_file.exists()
    # an end it wrote just before it was superseded goes too: not the new start's
    exit_file.write_text("{}")
    k.watches["x"] = old
    k.watch("x", launched=False, cid="another")
    assert not exit_file.exists()


@pytest.mark.container
def test_an_agent_started_right_after_its_stop_is_watched_to_its_end(am, repo, engine):
    """'am start' straight after 'am stop': the new container is the new watch's, typed
    into, logged and recorded when it ends; the old watch leaves it alone."""
    agent = am.spawn(
        repo, "--container", "--runtime", engine, "--cmd",
        'echo "ready $AM_RUN"; read line; echo "got $line"; exit 4',
    )  # fmt: skip
    am.wait_log(agent, "ready")
    am("stop", agent)
    am("start", agent)
    assert am.info(agent)["status"] == "running"
    wait_for(lambda: am("logs", agent).stdout.count("ready") == 2, 60)
    am("send", agent, "hello")
    info = am.wait_status(agent, "exited")
    assert info["exit_code"] == 4, info
    assert "got hello" in am("logs", agent).stdout
    wait_for(lambda: container_names(engine, str(am.home)) == [], 60)


@pytest.mark.container
def test_a_gated_command_runs_only_once_released(am, tmp_path):
    """The gate of a local podman agent (am/gate.py), on the real engine: its command waits
    while the FIFO has a writer but no line; runs once the line comes; never runs if the
    writer goes without one. The control: the same command without the gate runs at once."""
    import errno
    import uuid

    from am import gate

    engine = "podman"
    engine_ready(engine)
    mark = "RAN-" + uuid.uuid4().hex[:6]
    names = []

    def run(fifo=None) -> str:
        name = f"am-gate-{uuid.uuid4().hex[:8]}"
        names.append(name)
        mount = ["--mount", f"type=bind,source={fifo},target={gate.TARGET},readonly"]
        command = ["sh", "-c", f"echo {mark}; sleep 600"]
        subprocess.run(
            [engine, "run", "--detach", "--name", name, "--label", f"am.home={am.home}",
             *(mount if fifo else []), "am-agent:latest",
             *(gate.command(command) if fifo else command)],
            check=True, capture_output=True,
        )  # fmt: skip
        return name

    def ran(name) -> bool:
        res = subprocess.run([engine, "logs", name], capture_output=True, text=True)
        return mark in res.stdout

    def writer(fifo) -> int:
        """A writer's end, once the container's shell has opened the reading one."""
        got = []

        def opened():
            try:
                got.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as e:
                assert e.errno == errno.ENXIO
            return bool(got)

        wait_for(opened, 60)
        return got[0]

    try:
        control = run()
        wait_for(lambda: ran(control), 60)

        fifo = tmp_path / "gate"
        gate.make(fifo)
        held = run(fifo)
        fd = writer(fifo)  # the shell is past its open: in the read, waiting for the line
        assert not ran(held)
        os.write(fd, b"go\n")
        os.close(fd)
        wait_for(lambda: ran(held), 60)

        gate.make(fifo)
        refused = run(fifo)
        os.close(writer(fifo))  # gone without the line
        status = [engine, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", refused]
        wait_for(
            lambda: subprocess.run(status, capture_output=True, text=True).stdout.startswith(
                "exited"
            ),
            60,
        )
        assert subprocess.run(status, capture_output=True, text=True).stdout.split()[1] != "0"
        assert not ran(refused)
    finally:
        subprocess.run([engine, "rm", "--force", *names], capture_output=True)


@pytest.mark.container
def test_the_keeper_asks_podman_once_for_a_run_of_gated_agents(am, repo, tmp_path):
    """Each podman client costs tens of ms of CPU: the keeper inspects the first gated
    agent's container, learns where podman keeps a container's folder and pid file, and
    sees the next ones run from there (conmon's pid file, /proc), asking nothing. Those
    agents are still held until attached, typed into, and their end recorded."""
    engine_ready("podman")
    shim = tmp_path / "shim"
    shim.mkdir()
    calls = tmp_path / "calls"
    real = subprocess.run(["sh", "-c", "command -v podman"], capture_output=True, text=True)
    (shim / "podman").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\nexec {real.stdout.strip()} "$@"\n'
    )
    (shim / "podman").chmod(0o755)
    env = {"PATH": f"{shim}:{os.environ['PATH']}"}
    stop_keeper(am.home)  # the keeper starts with the spawn's PATH: the shim counts its calls
    try:
        spawn_two_counting_inspects(am, repo, env, calls)
    finally:
        remove_containers("podman", str(am.home))


def spawn_two_counting_inspects(am, repo, env, calls):
    first = am.spawn(repo, "--container", "--runtime", "podman", "--cmd", "echo one; sleep 600",
                     env=env)  # fmt: skip
    second = am.spawn(
        repo, "--container", "--runtime", "podman", "--cmd",
        'echo two; read line; echo "got $line"; exit 6', env=env,
    )  # fmt: skip
    inspects = [c for c in calls.read_text().splitlines() if c.startswith("inspect ")]
    assert len(inspects) == 1, inspects  # the control: the first one is counted
    am.wait_log(first, "one")
    am.wait_log(second, "two")
    am("send", second, "hello")
    info = am.wait_status(second, "exited")
    assert info["exit_code"] == 6, info
    assert "got hello" in am("logs", second).stdout

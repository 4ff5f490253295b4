"""``am status`` and the health column against real agents: known CPU and memory loads in
containers on both engines and in tmux, idle detection, OOM kills and the pids limit."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from containers import engine_ready, remove_containers

from am import enginestats, health
from am.backends import for_runtime as engine_named
from am.backends.docker import Docker
from am.backends.kubernetes import Kubernetes
from am.backends.podman import Podman
from am.backends.tmux import TmuxBackend
from am.commands.status_ import duration, size
from am.enginestats import size_bytes
from am.errors import AmError

MB = 1024**2
# The engine-side way a host without the Linux-only calls takes (am/hostos.py): am status takes
# no figures from cgroups (the keeper's), so it makes the engine's stats call.
PORTABLE = {"AM_PORTABLE": "1"}

# One process: holds ~300 MB (touched, so resident) and keeps one CPU busy.
LOAD = """exec python3 -c '
b = bytearray(300 * 1024 * 1024)
for i in range(0, len(b), 4096):
    b[i] = 1
print("LOADED", flush=True)
while True:
    pass
'"""


def status(am, agent=None, env=None):
    args = ["status", "--json"] + ([agent] if agent else [])
    return json.loads(am(*args, env=env).stdout)


def wait_health(am, agent, word, env=None, timeout=60):
    """Poll ``am list`` (files only, no engine call) until AGENT's health is WORD."""
    deadline = time.monotonic() + timeout
    while True:
        got = {a["id"]: a for a in json.loads(am("list", "--json", env=env).stdout)}[agent]
        if got["health"] == word:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{agent} health {got['health']}, wanted {word}")
        time.sleep(0.3)


def wait_status(am, agent, ready, timeout=30, env=None):
    """``am status`` of AGENT once READY(row) holds (a gVisor agent's process count comes from
    its supervisor's first look inside the sandbox)."""
    deadline = time.monotonic() + timeout
    while not ready(s := status(am, agent, env=env)) and time.monotonic() < deadline:
        time.sleep(0.3)
    return s


@pytest.mark.container
def test_status_figures_of_a_loaded_container(am, repo, engine, isolation):
    agent = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        "--isolation",
        isolation,
        "--cpus",
        "2",
        "--cmd",
        LOAD,
    )
    am.wait_log(agent, "LOADED")
    s = wait_status(am, agent, lambda row: row["pids"] is not None)
    assert s["id"] == agent and s["status"] == "running" and s["runtime"] == engine
    # One busy process, under --cpus 2: at most two CPUs' worth. The lower bound allows for
    # other work on a shared two-core host.
    assert 20 <= s["cpu_percent"] <= 250, s
    assert 250 * MB <= s["memory_bytes"] <= 600 * MB, s  # under gVisor: the whole sandbox
    assert s["memory_limit_bytes"] == 2 * 1024**3
    assert 1 <= s["pids"] <= 5 and s["pids_limit"] == 100  # the agent's, never gVisor's own
    assert s["health"] == "ok" and s["exit_code"] is None and s["oom_killed"] is False
    assert s["uptime_seconds"] >= 0 and s["last_output"] and s["idle_seconds"] >= 0
    table = am("status").stdout
    assert agent in table and "/ 2.0G" in table and "/ 100" in table
    am("stop", agent)
    s = status(am, agent)
    assert s["status"] == "stopped" and s["cpu_percent"] is None and s["health"] == "-"


@pytest.mark.container
def test_oom_and_pids_limit_show_in_health(am, repo, engine, isolation):
    iso = ["--isolation", isolation]
    bomb = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        *iso,
        "--pids",
        "20",
        "--cmd",
        """exec python3 -c '
import os, time
try:
    while True:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
except OSError:
    print("FORK-FAILED", flush=True)
time.sleep(600)
'""",
    )
    oom = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        *iso,
        "--memory",
        "64m",
        "--cmd",
        "sleep 3; python3 -c 'b = bytearray(256 * 1024 * 1024)'; echo CHILD-GONE; sleep 600",
    )
    am.wait_log(bomb, "FORK-FAILED")
    if isolation == "runc":
        am.wait_log(oom, "CHILD-GONE")
    wait_health(am, bomb, "pids")
    wait_health(am, oom, "oom")
    if isolation == "gvisor":
        am.wait_status(oom, "exited", timeout=120)
    rows = {r["id"]: r for r in status(am)}
    assert rows[bomb]["pids"] == rows[bomb]["pids_limit"] == 20
    assert rows[bomb]["pids_limit_hit"] is True and rows[bomb]["health"] == "pids"
    assert rows[oom]["oom_killed"] is True
    assert rows[oom]["health"] == "oom" and rows[oom]["memory_limit_bytes"] == 64 * MB
    if isolation == "runc":
        # the agent lives on; something inside it was OOM-killed
        assert rows[oom]["status"] == "running"
    else:
        # the kernel kills the biggest process of the cgroup: gVisor's own, the whole sandbox
        assert rows[oom]["status"] == "exited" and rows[oom]["exit_code"] == 137
        assert "CHILD-GONE" not in am("logs", oom).stdout
    am("stop", bomb, timeout=120)
    am("stop", oom)
    # what the agents met is kept once they have ended: both words, not '-'
    assert {a["id"]: a["health"] for a in am.list()} == {bomb: "pids", oom: "oom"}


@pytest.mark.container
def test_an_agent_that_dies_of_a_refused_fork_keeps_its_pids_flag(am, repo):
    """A shell ends at "Cannot fork", at once: the keeper reads the refused forks once more as
    the container's stream ends, before its cgroup goes (the poller reads every 0.5 s).
    Podman keeps the cgroup until then; docker removes it before its stream ends, so there the
    flag is kept only when the poller read it first (docs/usage.md)."""
    engine_ready("podman")
    forks = "i=0; while [ $i -lt 40 ]; do sleep 100 & i=$((i+1)); done; exit 3"
    argv = ["--container", "--runtime", "podman", "--pids", "20", "--cmd", forks]
    agent = am.spawn(repo, *argv)
    am.wait_status(agent, "exited", timeout=120)
    info = am.info(agent)
    assert info["exit_code"] == 2 and info["health"] == "pids", info  # dash's "Cannot fork"


def stats_call(engine: str, *names: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [engine, "stats", "--no-stream", "--format", "{{.Name}}", *names],
        capture_output=True,
        text=True,
        timeout=120,
    )


def break_stranger(name: str) -> None:
    """Run container NAME (not am's) on podman, then kill its monitor (conmon) and its process:
    podman still records it running while runc knows it stopped, the state a leftover of a
    killed test run is in."""
    subprocess.run(
        [
            "podman",
            "run",
            "-d",
            "--name",
            name,
            "--label",
            "test.stranger=1",
            "am-base:bookworm",
            "sleep",
            "600",
        ],
        check=True,
        capture_output=True,
    )
    pids = subprocess.run(
        ["podman", "inspect", "--format", "{{.State.ConmonPid}} {{.State.Pid}}", name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for pid in map(int, pids):
        os.kill(pid, signal.SIGKILL)
        wait_gone = time.monotonic() + 30
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < wait_gone:
            time.sleep(0.05)


def figures_of(am, agent, env=None) -> dict:
    return wait_status(am, agent, lambda row: row["pids"] is not None, timeout=20, env=env)


@pytest.mark.container
def test_status_figures_despite_a_strangers_broken_container(am, repo):
    """A container that is not am's, in a state that fails an unnamed 'podman stats', does not
    blind am status: it asks only for its own agents' containers. (AM_PORTABLE=1: no figures
    from the keeper's cgroups, so am status makes the engine's stats call.)"""
    agent = am.spawn(repo, "--container", "--runtime", "podman", "--cmd", "exec sleep 600")
    stranger = f"stranger-{uuid.uuid4().hex[:8]}"
    try:
        break_stranger(stranger)
        # positive control: the engine's own unnamed call fails on the stranger
        unnamed = stats_call("podman")
        assert unnamed.returncode != 0 and "container is stopped" in unnamed.stderr, unnamed
        s = figures_of(am, agent, env=PORTABLE)
        assert s["pids"] >= 1 and s["memory_bytes"] and s["cpu_percent"] is not None, s
        assert s["figures_missing"] is None, s
    finally:
        subprocess.run(["podman", "rm", "-f", stranger], capture_output=True, timeout=120)
        # no engine fixture here to remove the agent's container after the test
        remove_containers("podman", str(am.home))


@pytest.mark.container
def test_stats_of_several_names_survives_one_that_vanished(am, repo, engine):
    """One call for several names fails whole when one is gone (its agent ended between the
    listing and the call): am then asks for each alone, and the others keep their figures."""
    agent = am.spawn(repo, "--container", "--runtime", engine, "--cmd", "exec sleep 600")
    box = am.info(agent)["container"]
    gone = f"am-gone-{uuid.uuid4().hex[:8]}"
    both = stats_call(engine, box, gone)
    assert both.returncode != 0 and box not in both.stdout, both  # positive control
    got = engine_named(engine).stats([box, gone])
    assert set(got) == {box} and got[box]["memory"], got
    with pytest.raises(AmError, match=gone):  # nothing answered: the engine's own words
        engine_named(engine).stats([gone, gone + "-2"])


@pytest.mark.container
def test_status_reads_the_stats_call_it_began_first(am, repo, engine, tmp_path):
    """``am status`` begins the engine's stats call before it imports the backends, and reads
    that answer: one call. When that answer is unusable (here: the first call fails), the
    backend makes its own and the figures are still there: two calls, the positive control of
    the count. (AM_PORTABLE=1: no figures from the keeper's cgroups, so the engine is asked.)"""
    agent = am.spawn(repo, "--container", "--runtime", engine, "--cmd", "exec sleep 600")
    shims, log, fail = tmp_path / "shims", tmp_path / "calls", tmp_path / "fail-next-stats"
    shims.mkdir()
    real = subprocess.run(["sh", "-c", f"command -v {engine}"], capture_output=True, text=True)
    (shims / engine).write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$1" >> {log}\n'
        f'if [ "$1" = stats ] && [ -e {fail} ]; then rm -f {fail}; exit 1; fi\n'
        f'exec {real.stdout.strip()} "$@"\n'
    )
    (shims / engine).chmod(0o755)
    env = {"PATH": f"{shims}:{os.environ['PATH']}", **PORTABLE}
    wait_status(am, agent, lambda row: row["memory_bytes"] is not None, env=env)  # started
    for unusable, calls in ((False, 1), (True, 2)):
        log.write_text("")
        if unusable:
            fail.touch()
        s = status(am, agent, env=env)
        assert s["memory_bytes"] and s["figures_missing"] is None, s
        assert log.read_text().splitlines() == ["stats"] * calls
        assert not fail.exists()


@pytest.mark.container
def test_status_asks_no_engine_for_agents_the_keeper_holds(am, repo, engine, tmp_path):
    """The keeper reads the figures of the containers it holds from their cgroups: am status
    makes no engine call for them, and its figures are those the engine's own stats gives.
    The positive control: with the keeper killed, the same status through the same logging
    shim makes the engine's call."""
    from am import keepersock
    from am.runfiles import keeper_alive

    agent = am.spawn(repo, "--container", "--runtime", engine, "--cmd", LOAD)
    am.wait_log(agent, "LOADED")
    box = am.info(agent)["container"]
    shims, log = tmp_path / "shims", tmp_path / "calls"
    shims.mkdir()
    real = subprocess.run(["sh", "-c", f"command -v {engine}"], capture_output=True, text=True)
    (shims / engine).write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$1" >> {log}\nexec {real.stdout.strip()} "$@"\n'
    )
    (shims / engine).chmod(0o755)
    env = {"PATH": f"{shims}:{os.environ['PATH']}"}
    log.write_text("")
    s = status(am, agent, env=env)
    own = engine_named(engine).stats([box])[box]  # the engine's figures, a moment later
    assert log.read_text() == "", log.read_text()  # no engine call at all
    assert s["figures_missing"] is None and s["pids"] == own["pids"], (s, own)
    assert abs(s["memory_bytes"] - own["memory"]) <= 0.05 * own["memory"], (s, own)
    assert s["memory_limit_bytes"] == own["memory_limit"] == 2 * 1024**3, (s, own)
    assert 250 * MB <= s["memory_bytes"] <= 600 * MB and 20 <= s["cpu_percent"] <= 250, s
    # positive control: no keeper to answer, so the engine is asked
    run = str(am.home / "state" / "run")
    os.kill(keepersock.ask(run, {"op": "ping"})["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while keeper_alive(run) and time.monotonic() < deadline:
        time.sleep(0.05)
    s = status(am, agent, env=env)
    assert "stats" in log.read_text().split() and s["memory_bytes"], (log.read_text(), s)


@pytest.mark.container
@pytest.mark.parametrize("way", ["keeper", "portable"])
def test_status_of_container_agents_needs_no_engine_module(am, repo, engine, way):
    """The keeper's figures, or the early call's answer (the engine-side way), are read
    without the backends: ``am status`` of container agents imports no engine module (they
    cost it about as much as the rest of its start-up)."""
    env = PORTABLE if way == "portable" else {}
    agent = am.spawn(repo, "--container", "--runtime", engine, "--cmd", "exec sleep 600")
    wait_status(am, agent, lambda row: row["memory_bytes"] is not None, env=env)
    probe = (
        "import json, sys\n"
        "from am.main import main\n"
        "code = main(['status', '--json'])\n"
        "print(json.dumps([code, sorted(sys.modules)]), file=sys.stderr)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe],
        env={**am.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    code, modules = json.loads(res.stderr.strip().splitlines()[-1])
    assert code == 0 and json.loads(res.stdout)[0]["memory_bytes"], res.stdout
    assert "am.enginestats" in modules  # it read the keeper's or the engine's answer
    assert {"am.backends.engine", "am.backends.docker", "am.backends.podman"}.isdisjoint(modules)


def test_hand_edited_records_get_rows_not_a_traceback(am):
    """The state file is hostile input: a container name no program can take (a NUL) and a
    runtime that is a list still give every row, and a warning that names each."""
    state = am.home / "state"
    state.mkdir(parents=True)
    made = "2026-01-01T00:00:0{}Z"
    records = {
        "a1": {"runtime": "docker", "status": "running", "container": "x\u0000y"},
        "a2": {"runtime": ["docker"], "status": "stopped", "container": "am-a2"},
        "a3": {"runtime": ["docker"], "status": "running", "container": "am-a3"},
    }
    for i, (aid, r) in enumerate(records.items()):
        r.update(id=aid, mode="container", created=made.format(i))
    (state / "state.json").write_text(json.dumps({"format": 1, "agents": records}))
    res = am("status", "--json")
    rows = {r["id"]: r for r in json.loads(res.stdout)}
    assert set(rows) == {"a1", "a2", "a3"}
    assert "NUL" in rows["a1"]["figures_missing"] and "no backend" in rows["a3"]["figures_missing"]
    assert "Traceback" not in res.stderr and "a1" in res.stderr and "a3" in res.stderr
    listed = am("list")
    assert [ln.split()[0] for ln in listed.stdout.splitlines()[1:]] == ["a1", "a2", "a3"]


def test_stats_names_only_the_agents_containers():
    from am.enginestats import SHAPES

    fmt = ["--format", SHAPES["docker"][1]]
    assert Docker().stats_argv(["am-a", "am-b"]) == [
        "docker",
        "stats",
        "--no-stream",
        "--no-trunc",
        *fmt,
        "--",
        "am-a",
        "am-b",
    ]
    assert Podman().stats_argv(["am-a"]) == [
        "podman",
        "stats",
        "--no-stream",
        "--no-reset",
        "--format",
        SHAPES["podman"][1],
        "--",
        "am-a",
    ]
    assert "{{.ContainerStats.PIDs}}" in SHAPES["podman"][1] and "{{.PIDs}}" in fmt[1]
    assert Docker().stats([]) == {}  # no running container agent: no call at all


@pytest.mark.container
def test_config_precedence_reaches_a_real_container(am, repo, engine):
    am.home.mkdir(parents=True, exist_ok=True)
    (am.home / "config.toml").write_text(
        f'runtime = "{engine}"\n[limits]\nmemory = "1g"\ncpus = 1\npids = 50\n'
    )
    probe = (
        "cg=/sys/fs/cgroup; if [ -f $cg/memory.max ]; then echo MEM=$(cat $cg/memory.max)"
        " PIDS=$(cat $cg/pids.max); else echo MEM=$(cat $cg/memory/memory.limit_in_bytes)"
        " PIDS=$(cat $cg/pids/pids.max); fi; sleep 300"
    )
    agent = am.spawn(repo, "--container", "--pids", "77", "--cmd", probe, env={"AM_CPUS": "1.5"})
    info = am.info(agent)
    assert info["runtime"] == engine  # from the file
    # file, env, flag
    assert info["limits"] == {"memory": "1g", "cpus": "1.5", "pids": 77, "disk": None}
    log = am.wait_log(agent, "PIDS=")
    assert f"MEM={1024**3}" in log and "PIDS=77" in log
    am("stop", agent)


def test_tmux_agent_figures_from_its_process_tree(am, repo):
    busy = am.spawn(repo, "--cmd", LOAD.replace("300 *", "200 *"))
    quiet = am.spawn(repo, "--cmd", "echo QUIET; sleep 300")
    am.wait_log(busy, "LOADED")
    am.wait_log(quiet, "QUIET")
    rows = {r["id"]: r for r in status(am)}
    b, q = rows[busy], rows[quiet]
    assert b["mode"] == "tmux" and b["memory_limit_bytes"] is None and b["pids_limit"] is None
    assert 20 <= b["cpu_percent"] <= 250, b
    assert 150 * MB <= b["memory_bytes"] <= 500 * MB, b
    assert b["pids"] == 1  # the agent's own process; the supervisor is not counted
    assert q["cpu_percent"] < 5 and q["memory_bytes"] < 50 * MB and q["pids"] == 2, q  # sh, sleep
    am("stop", busy)
    am("stop", quiet)


def test_idle_detection(am, repo):
    am.home.mkdir(parents=True, exist_ok=True)
    (am.home / "config.toml").write_text("idle_after = 2\n")
    quiet = am.spawn(repo, "--cmd", "echo ONCE; sleep 300")
    chatty = am.spawn(repo, "--cmd", "while true; do echo tick; sleep 0.3; done")
    am.wait_log(quiet, "ONCE")
    wait_health(am, quiet, "idle")
    rows = {r["id"]: r for r in status(am)}
    assert rows[quiet]["health"] == "idle" and rows[quiet]["idle_seconds"] >= 2
    assert rows[chatty]["health"] == "ok"
    # the variable wins over the file
    rows = {r["id"]: r for r in status(am, env={"AM_IDLE_AFTER": "3600"})}
    assert rows[quiet]["health"] == "ok"
    assert "idle" in am("list").stdout
    am("stop", quiet)
    am("stop", chatty)


def test_watch_refreshes_until_ctrl_c(am, repo):
    agent = am.spawn(repo, "--cmd", "sleep 300")
    watch = subprocess.Popen(
        [*am.argv, "status", "--watch", "--json"],
        env=am.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        docs = [json.loads(watch.stdout.readline()) for _ in range(2)]  # two refreshes
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=30)
    finally:
        watch.kill()
    assert [d[0]["id"] for d in docs] == [agent, agent]
    assert watch.returncode == 0 and "Traceback" not in err, err
    am("stop", agent)


def test_status_of_unknown_agent_and_empty_home(am):
    assert status(am) == []
    assert am("status").stdout == ""
    line = am("status", "nosuch", check=False).stderr.strip().splitlines()[-1]
    assert line.startswith("am: error: no such agent")


# --- pure units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("305.6MiB", int(305.6 * MB)),
        ("2GiB", 2 * 1024**3),
        ("1.5kB", 1500),
        ("0B", 0),
        ("12.3MB", 12_300_000),
        ("--", None),
        ("", None),
    ],
)
def test_docker_sizes(text, expected):
    assert size_bytes(text) == expected


def test_parse_stats_of_both_engines():
    d = Docker().parse_stats("am-a\t70.76%\t305.6MiB / 2GiB\t3\nam-b\t--\t-- / --\t--\n")
    assert d["am-a"] == {
        "cpu_percent": 70.76,
        "memory": int(305.6 * MB),
        "memory_limit": 2 * 1024**3,
        "pids": 3,
    }
    assert d["am-b"]["cpu_percent"] is None and d["am-b"]["pids"] is None
    p = Podman().parse_stats("am-a\t54.5\t319770624\t2147483648\t1\n")
    assert p["am-a"] == {
        "cpu_percent": 54.5,
        "memory": 319770624,
        "memory_limit": 2147483648,
        "pids": 1,
    }


@pytest.mark.parametrize(
    ("view", "events", "idle_for", "pids", "expected"),
    [
        ({"status": "running"}, {}, 1, None, "ok"),
        ({"status": "running"}, {}, 10, None, "idle"),
        ({"status": "running"}, {"oom": True}, 10, None, "oom"),
        ({"status": "running", "limits": {"pids": 20}}, {}, 1, 20, "pids"),
        ({"status": "running", "limits": {"pids": 20}}, {"pids_limit": True}, 1, 3, "pids"),
        ({"status": "exited", "oom_killed": True}, {}, 99, None, "oom"),
        ({"status": "exited"}, {"oom": True}, 99, None, "oom"),
        ({"status": "exited"}, {"pids_limit": True}, 99, None, "pids"),  # kept, like oom
        ({"status": "stopped"}, {"pids_limit": True}, 99, None, "pids"),
        ({"status": "exited"}, {}, 99, None, "-"),
        ({"status": "stopped"}, {}, 99, None, "-"),
    ],
)
def test_health_word(view, events, idle_for, pids, expected):
    assert health.word(view, events, idle_for, 5, pids) == expected


def test_table_formats():
    assert duration(5) == "5s" and duration(65) == "1m05s" and duration(3700) == "1h01m"
    assert duration(90000) == "1d01h" and duration(None) == "-"
    assert size(300 * MB) == "300.0M" and size(2 * 1024**3) == "2.0G" and size(10) == "10B"


def test_why_figures_are_missing(tmp_path):
    tmux_view = {"id": "t", "mode": "tmux", "session": "am-t"}
    box = {"id": "c", "mode": "container", "runtime": "podman", "container": "am-c"}
    figures = {"am-c": {"pids": 3}}
    assert TmuxBackend.figure(tmux_view, {"am-t": {"pids": 2}}) == ({"pids": 2}, None)
    assert "pane was not found" in TmuxBackend.figure(tmux_view, {})[1]
    assert enginestats.figure("podman", box, figures, None) == ({"pids": 3}, None)
    failed = "Podman failed: Error: stats is not supported in rootless mode"
    assert enginestats.figure("podman", box, figures, failed) == (
        None,
        "podman stats failed: Podman failed: Error: stats is not supported in rootless mode",
    )
    assert "did not list am-c" in enginestats.figure("podman", box, {}, None)[1]
    kube = {**box, "runtime": "kubernetes"}
    assert "metrics server" in Kubernetes().figures([kube])["c"][1]
    # A hand-edited record that names no backend: said, and never a search for an engine.
    bogus = {**box, "id": "b", "runtime": None}
    figures, threads = health.live_figures([bogus], str(tmp_path))  # no keeper there
    assert threads == [] and "names no backend" in figures["b"][1]


def test_tables_show_an_id_that_looks_like_a_number_as_written():
    """A hex id such as 497491e8 is also a float's notation: tabulate's guess turned it into
    4.97491e+13 in am status (seen in a test run). am status, image and config keep text."""
    from am.commands.status_ import table

    row = {
        "id": "497491e8", "status": "running", "health": "ok", "cpu_percent": 1.0,
        "memory_bytes": None, "memory_limit_bytes": None, "pids": None, "pids_limit": None,
        "uptime_seconds": 5, "idle_seconds": None, "exit_code": None,
    }  # fmt: skip
    for agent in ("497491e8", "00012e34"):
        text = table([{**row, "id": agent}])
        assert text.splitlines()[1].startswith(f"{agent}  running"), text

"""--isolation: composition of runc and gVisor command lines (pure), the settings, the refusals,
the OOM watch's reading of a sandbox's end, and the registration of gVisor in dockerd's
configuration. The end-to-end checks are the container suites, run for each isolation."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import assert_am_error, assert_nothing_made

from am import config, isolation
from am import plan as planning
from am.backends import network
from am.backends.docker import Docker
from am.backends.podman import Podman
from am.cli import build_parser
from am.errors import AmError
from am.oomwatch import OomWatch
from am.paths import Layout
from am.request import Request

ROOT = Path(__file__).resolve().parents[1]


def plan_for(*extra, tmp=Path("/tmp/amhome")):
    args = build_parser().parse_args(["spawn", "/src", "--container", "--name", "x", *extra])
    layout = Layout(tmp, tmp / "state", tmp / "agents", tmp / "data", tmp)
    return planning.build(Request.from_args(args), layout, "/src", {})


def head(argv: list[str]) -> list[str]:
    return argv[: argv.index("--interactive")]


def test_settings_know_the_same_isolations():
    assert config.ISOLATIONS == isolation.ISOLATIONS
    assert config.KEYS["isolation"].default == isolation.DEFAULT == "runc"


@pytest.mark.parametrize(
    ("engine", "network", "expected"),
    [
        (
            "podman",
            "none",
            ["podman", "--runtime", "runsc", "--runtime-flag", "network=none", "run"],
        ),
        (
            "podman",
            "limited",
            [
                "podman",
                "--runtime",
                "runsc",
                "--runtime-flag",
                "network=none",
                "--runtime-flag",
                "host-uds=all",
                "run",
            ],
        ),
        (
            "podman",
            "full",
            ["podman", "--runtime", "runsc", "--runtime-flag", "network=host", "run"],
        ),
        ("docker", "none", ["docker", "run", "--runtime", "am-runsc-none"]),
        ("docker", "limited", ["docker", "run", "--runtime", "am-runsc-limited"]),
        ("docker", "proxy", ["docker", "run", "--runtime", "am-runsc-proxy"]),
    ],
)
def test_run_head_of_gvisor(engine, network, expected):
    assert isolation.run_head(engine, "gvisor", network) == expected


def test_runc_leaves_the_engine_its_own_runtime():
    for engine in ("docker", "podman"):
        for net in isolation.RUNSC_FLAGS:
            assert isolation.run_head(engine, "runc", net) == [engine, "run"]
    with pytest.raises(ValueError):
        isolation.run_head("docker", "kata", "none")


def test_docker_runtimes_carry_the_same_flags_as_podman():
    runtimes = isolation.docker_runtimes("/usr/bin/runsc")
    assert sorted(runtimes) == [
        "am-runsc-full",
        "am-runsc-limited",
        "am-runsc-none",
        "am-runsc-proxy",
    ]
    for net, flags in isolation.RUNSC_FLAGS.items():
        assert runtimes[isolation.docker_runtime(net)] == {
            "path": "/usr/bin/runsc",
            "runtimeArgs": [f"--{f}" for f in flags],
        }
    # only a limited agent and its proxy may reach or make sockets in their host mounts
    assert [n for n, f in isolation.RUNSC_FLAGS.items() if any("host-uds" in x for x in f)] == [
        "limited",
        "proxy",
    ]


def test_pids_limit_under_each_isolation():
    assert isolation.pids_args("runc", 100, 2) == ["--pids-limit", "100"]
    args = isolation.pids_args("gvisor", 100, 2)
    assert args[2:] == ["--ulimit", "nproc=100:100"]  # gVisor's kernel holds the agent to 100
    ceiling = int(args[1])
    # the sandbox's own tasks, measured: ~45, then ~5 per agent process on 2 cores
    assert ceiling >= 45 + 5 * 100
    assert int(isolation.pids_args("gvisor", 100, 64)[1]) > ceiling  # more CPUs, more stubs


def test_kubernetes_runtime_class():
    assert isolation.runtime_class("runc") is None
    assert isolation.runtime_class("gvisor") == "gvisor"


@pytest.mark.parametrize("engine", [Docker(), Podman()])
def test_agent_run_argv_under_gvisor(engine, tmp_path):
    p = plan_for("--cmd", "true", "--isolation", "gvisor", "--pids", "30", tmp=tmp_path)
    assert p.isolation == "gvisor" and p.record("/h")["isolation"] == "gvisor"
    argv = engine.run_argv(p, "/h", 0, 0)
    # an agent's container is made with 'create' (started once the keeper is attached)
    assert head(argv) == engine.detached_head(isolation.run_head(engine.runtime, "gvisor", "none"))
    assert "create" in head(argv) and "run" not in head(argv)
    assert argv[argv.index("--ulimit") + 1] == "nproc=30:30"
    assert int(argv[argv.index("--pids-limit") + 1]) > 30
    for locked in ("--read-only", "--init", "no-new-privileges", "ALL"):
        assert locked in argv
    runc = engine.run_argv(plan_for("--cmd", "true", "--pids", "30", tmp=tmp_path), "/h", 0, 0)
    # a local podman's runc agent starts with one run, held by its gate (am/gate.py)
    made = {"docker": ["docker", "create"], "podman": ["podman", "run", "--detach"]}
    assert head(runc) == made[engine.runtime] and "--ulimit" not in runc
    assert runc[runc.index("--pids-limit") + 1] == "30"


def test_only_a_container_that_execs_the_agents_own_command_may_end_its_window_early(
    tmp_path, monkeypatch
):
    """The keeper ends an agent's start window when a program other than a shell runs in it:
    only right when that program is the agent's command, not a wrapper of am's (the limited
    network's relay, --mount-agent-config's copies), another image's entrypoint or gVisor's
    sandbox. Gated (podman) or not (docker) alike."""
    from am.backends import engine as engine_module
    from am.valueclass import replace

    monkeypatch.delenv("CONTAINER_HOST", raising=False)
    monkeypatch.setattr(engine_module, "keeper_gates", lambda layout: True)
    layout = Layout(tmp_path, tmp_path / "state", tmp_path / "agents", tmp_path / "data", tmp_path)

    def container(engine, plan):
        return engine.launch_spec(plan).container

    podman, plain = Podman(layout=layout), plan_for("--cmd", "true", tmp=tmp_path)
    assert container(podman, plain).gated and container(podman, plain).direct
    for other in (
        plan_for("--cmd", "true", "--network", "limited", tmp=tmp_path),
        plan_for("--cmd", "true", "--image", "someone/else:1", tmp=tmp_path),
        replace(plain, config_copies=[".claude.json"]),
    ):
        got = container(podman, other)
        assert got.gated and not got.direct, other
    docker = container(Docker(layout=layout), plain)
    assert not docker.gated and docker.direct
    sandboxed = plan_for("--cmd", "true", "--isolation", "gvisor", tmp=tmp_path)
    for engine in (Podman(layout=layout), Docker(layout=layout)):
        assert not container(engine, sandboxed).direct


@pytest.mark.parametrize("network", ["none", "limited"])
def test_a_local_podman_agent_waits_at_its_gate(tmp_path, monkeypatch, network):
    """One 'run --detach': the gate's FIFO mounted read-only, and the gate the command's
    outermost part (before a limited agent's relay, which would otherwise print or connect
    first). Not under gVisor, not through a podman service, never docker."""
    from am import gate
    from am.paths import Layout

    monkeypatch.delenv("CONTAINER_HOST", raising=False)
    layout = Layout(tmp_path, tmp_path / "state", tmp_path / "agents", tmp_path / "data", tmp_path)
    engine = Podman(layout=layout)
    p = plan_for("--cmd", "echo hi", "--network", network, tmp=tmp_path)
    assert engine.gated(p)
    argv = engine.run_argv(p, "/h", 0, 0)
    assert head(argv) == ["podman", "run", "--detach"]
    fifo = layout.gate_file(p.id)
    mount = f"type=bind,source={fifo},target={gate.TARGET},readonly"
    assert argv[argv.index(mount) - 1] == "--mount"
    command = argv[argv.index(p.image) + 1 :]
    assert command[:4] == ["sh", "-c", gate.SCRIPT, "am-gate"]
    assert command[-3:] == ["sh", "-c", "echo hi"]
    under_gvisor = plan_for("--cmd", "true", "--isolation", "gvisor", tmp=tmp_path)
    assert not engine.gated(under_gvisor)
    assert gate.TARGET not in " ".join(engine.run_argv(under_gvisor, "/h", 0, 0))
    assert not Docker(layout=layout).gated(p)
    monkeypatch.setenv("CONTAINER_HOST", "unix:///nonexistent/podman.sock")
    assert not Podman(layout=layout).gated(p)


def test_proxy_of_a_gvisor_agent_runs_under_gvisor():
    files = network.Files(Path("/h/c"), Path("/h/s"), Path("/h/l"))
    argv = network.proxy_run_argv(
        "podman", "x", "/h", "am-egress-1", files, [], isolation="gvisor", host_cpus=2
    )
    assert argv[: argv.index("run") + 1] == isolation.run_head("podman", "gvisor", "proxy")
    assert "--ulimit" in argv and "--read-only" in argv
    runc = network.proxy_run_argv("podman", "x", "/h", "am-egress-1", files, [])
    assert runc[:2] == ["podman", "run"] and "--ulimit" not in runc


def test_docker_without_am_runtimes_is_refused_with_the_fix():
    docker = Docker()
    docker._runtimes = {"runc": {"path": "runc"}}
    err = docker.gvisor_problem("none")
    assert "no gVisor runtime 'am-runsc-none'" in err.message and "engines-up.sh" in err.hint
    docker._runtimes = {"am-runsc-limited": {"path": "/x", "runtimeArgs": ["--network=none"]}}
    assert "host-uds" in docker.gvisor_problem("limited").message  # registered without it
    docker._runtimes = isolation.docker_runtimes("/usr/bin/runsc")
    assert all(docker.gvisor_problem(n) is None for n in isolation.RUNSC_FLAGS)


def test_gvisor_with_gpus_is_refused():
    with pytest.raises(AmError, match="--gpus cannot be used with --isolation gvisor"):
        plan_for("--cmd", "true", "--isolation", "gvisor", "--gpus", "all")


def test_isolation_is_refused_for_tmux_agents_and_with_gpus(am, repo):
    res = am("spawn", repo, "--isolation", "gvisor", "--cmd", "true", check=False)
    assert "--isolation applies to container agents" in assert_am_error(res)
    res = am(
        "spawn",
        repo,
        "--container",
        "--isolation",
        "gvisor",
        "--gpus",
        "all",
        "--cmd",
        "true",
        check=False,
    )
    assert "--gpus cannot be used" in assert_am_error(res)
    assert_nothing_made(am.home)


def watch_end_of(events: int, tmp_path) -> bool:
    """Feed the v1 OOM watch what its eventfd holds once the container's cgroup is gone."""
    watch = OomWatch()
    efd = os.eventfd(0)
    ctl = os.open(tmp_path, os.O_RDONLY)
    os.eventfd_write(efd, events)
    watch._wait_v1(tmp_path / "removed-cgroup", efd, ctl)
    return watch.killed


def test_oom_that_ended_the_whole_sandbox_is_seen(tmp_path):
    # OOM notification and the cgroup's removal, both before the watch read: an OOM kill
    assert watch_end_of(2, tmp_path) is True
    # the control: the removal alone, a container that ended on its own
    assert watch_end_of(1, tmp_path) is False


def register(daemon_json: Path) -> str:
    """engines-up.sh's registration, run alone against DAEMON_JSON (no dockerd involved)."""
    script = (ROOT / "scripts" / "engines-up.sh").read_text()
    body = script[script.index("register_runsc() {") : script.index("# Whether dockerd offers")]
    res = subprocess.run(
        [
            "bash",
            "-c",
            f'{body}\nDAEMON_JSON="$1"; AM_SRC="$2"\nregister_runsc /usr/bin/runsc',
            "x",
            str(daemon_json),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout.strip()


def test_engines_up_registers_the_runtimes_and_keeps_the_rest(tmp_path):
    conf = tmp_path / "daemon.json"
    conf.write_text('{"log-level": "warn", "runtimes": {"mine": {"path": "/opt/mine"}}}')
    assert register(conf) == "changed"
    data = json.loads(conf.read_text())
    assert data["log-level"] == "warn" and data["runtimes"]["mine"] == {"path": "/opt/mine"}
    assert {k: v for k, v in data["runtimes"].items() if k != "mine"} == isolation.docker_runtimes(
        "/usr/bin/runsc"
    )
    assert register(conf) == ""  # already there: the file is not rewritten
    fresh = tmp_path / "new" / "daemon.json"
    assert register(fresh) == "changed"
    assert json.loads(fresh.read_text()) == {
        "runtimes": isolation.docker_runtimes("/usr/bin/runsc")
    }


def without_runsc(am, *args) -> subprocess.CompletedProcess:
    """``am ARGS`` where runsc is hidden (/dev/null over it, in a mount namespace of its own)."""
    hide = 'for f in $(which -a runsc); do mount --bind /dev/null "$f"; done && exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", hide, "sh", *am.argv, *map(str, args)],
        env=am.env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.container
def test_podman_without_runsc(am, repo):
    from containers import engine_ready

    engine_ready("podman")
    # the control: where runsc is, the same spawn gets past the check
    assert Podman().gvisor_problem("none") is None
    res = without_runsc(
        am,
        "spawn",
        repo,
        "--container",
        "--runtime",
        "podman",
        "--isolation",
        "gvisor",
        "--cmd",
        "true",
    )
    line = assert_am_error(res)
    assert "runsc (gVisor) not found" in line and "apt-get install runsc" in res.stderr
    assert_nothing_made(am.home)
    report = json.loads(without_runsc(am, "doctor", "--json").stdout)
    row = {c["check"]: c for c in report["checks"]}["podman gvisor"]
    assert row["ok"] is None and row["detail"].startswith("not available: runsc (gVisor) not")


def test_only_a_folder_its_owner_alone_can_change_is_read_as_runscs_state(tmp_path):
    from am.oomwatch import trusted_folder

    folder = tmp_path / "runsc"
    folder.mkdir(mode=0o700)
    assert trusted_folder(str(folder))
    folder.chmod(0o777)  # anyone could plant state there
    assert not trusted_folder(str(folder))
    assert not trusted_folder("runsc") and not trusted_folder(str(tmp_path / "missing"))


@pytest.mark.container
def test_start_keeps_the_isolation(am, repo, engine):
    cmd = (
        "dmesg 2>&1 | head -1; echo run >> runs.txt; printf 'RUN-%s\\n' $(wc -l < runs.txt); "
        "sleep 300"
    )
    agent = am.spawn(
        repo, "--container", "--runtime", engine, "--isolation", "gvisor", "--cmd", cmd
    )
    am.wait_log(agent, "RUN-1")
    am("stop", agent)
    line = assert_am_error(am("start", agent, "--isolation", "runc", check=False))
    assert "--isolation" in line and "keeps the settings" in line
    am("start", agent)
    log = am.wait_log(agent, "RUN-2")
    assert log.count("Starting gVisor") == 2, log  # both runs on gVisor's kernel
    assert am.info(agent)["isolation"] == "gvisor"
    am("stop", agent)

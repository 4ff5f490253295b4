"""Container agents on engines that cannot see am's files: a remote engine, on this machine.

am runs in a private mount namespace where a tmpfs covers the folder holding AM_HOME, so the
engines (in the root namespace) see an empty folder there; it reaches dockerd over a tcp relay
and podman through ``podman system service`` on tcp (tests/remote.py), with the engine-side
fallbacks of a non-Linux host forced (AM_PORTABLE=1).
"""

import json
import subprocess
import time
import uuid

import pytest
from remote import Namespace, RemoteAm, RemoteEngine

pytestmark = [pytest.mark.container, pytest.mark.remote]


@pytest.fixture
def ram(am, engine, tmp_path):
    folder = tmp_path / "hidden"
    folder.mkdir()
    ns = Namespace(folder)
    remote = RemoteEngine(engine)
    r = RemoteAm(ns, remote, folder / "amhome", am.env)
    try:
        yield r
    finally:
        for name in remote.cli("ps", "-aq", "--filter", f"label=am.home={r.home}").stdout.split():
            remote.cli("rm", "-f", name)
        for vol in remote.cli(
            "volume", "ls", "-q", "--filter", f"label=am.home={r.home}"
        ).stdout.split():
            remote.cli("volume", "rm", "-f", vol)
        ns.close()
        remote.close()


def wait_log(ram, agent: str, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while text not in (out := ram("logs", agent).stdout):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the log of {agent}:\n{out[-2000:]}")
        time.sleep(0.2)
    return out


def wait_status(ram, agent: str, status: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (info := json.loads(ram("info", agent, "--json").stdout))["status"] != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"{agent} still {info['status']}, wanted {status}")
        time.sleep(0.2)
    return info


def test_the_engine_does_not_see_ams_files(ram, repo):
    """The positive control of this tier: without a volume, an agent would get an empty
    folder — the engine creates the bind mount's source on its own side."""
    ram.ns.run("mkdir", "-p", ram.home / "agents" / "x")
    assert ram.ns.run("ls", ram.home).stdout.split() == ["agents"]  # am sees its files
    seen = ram.remote.cli(
        "run",
        "--rm",
        "--pull",
        "never",
        "--mount",
        f"type=bind,source={ram.home.parent},target=/x",
        "am-agent:latest",
        "ls",
        "-A",
        "/x",
    )
    assert seen.returncode == 0 and seen.stdout.strip() == "", seen.stdout


def test_an_agent_lives_in_an_engine_volume(ram, repo, engine):
    agent = ram.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        "--cmd",
        "echo edit >> README && echo new > made.txt && echo AGENT-READY && "
        "read line && echo got-$line && sleep 300",
    )
    info = json.loads(ram("info", agent, "--json").stdout)
    volume = f"am-ws-{agent}"
    assert info["volume"] == volume and info["status"] == "running"
    assert info["workspace_location"] == f"{engine} volume {volume} at {ram.remote.url}"
    assert ram.remote.cli("volume", "inspect", volume).returncode == 0
    # nothing of the workspace stays on this host
    assert ram.ns.run("test", "-e", info["workspace"]).returncode != 0
    wait_log(ram, agent, "AGENT-READY")
    ram("send", agent, "hello-remote")
    wait_log(ram, agent, "got-hello-remote")
    diff = ram("diff", agent).stdout  # read in the running container
    assert "+edit" in diff and "+new" in diff

    ram("stop", agent)
    assert ram.remote.cli("ps", "-aq", "--filter", f"name=am-{agent}").stdout.strip() == ""
    diff = ram("diff", agent).stdout  # read in a throwaway container with the volume
    assert "+edit" in diff and "made.txt" in diff
    res = ram("rm", agent, check=False)  # unsaved work: refused, the volume kept
    assert res.returncode != 0 and "uncommitted" in res.stderr
    assert ram.remote.cli("volume", "inspect", volume).returncode == 0
    ram("start", agent)
    wait_log(ram, agent, "AGENT-READY")  # the same volume, the agent's edits still there
    res = ram("rm", "--force", agent)
    assert "Saved unsaved work" in res.stderr
    assert ram.remote.cli("volume", "inspect", volume).returncode != 0
    assert "got-hello-remote" not in ram("list").stdout


def test_exit_code_and_attach_through_the_engine(ram, repo, engine):
    res = ram("spawn", repo, "--container", "--runtime", engine, "--cmd", "exit 7", check=False)
    # ended before the spawn returned: said, with its code; else a plain spawn
    assert res.returncode == 0 or "exited with code 7 while starting" in res.stderr, res.stderr
    agent = res.stdout.strip().splitlines()[-1]
    assert wait_status(ram, agent, "exited")["exit_code"] == 7
    assert ram.remote.cli("ps", "-aq", "--filter", f"name=am-{agent}").stdout.strip() == ""

    agent = ram.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        "--cmd",
        "echo READY; read line; echo got-$line; sleep 300",
    )
    wait_log(ram, agent, "READY")
    outer = f"outer-{uuid.uuid4().hex[:8]}"
    env = [
        a
        for k, v in ram.env.items()
        if k.startswith(("AM_", "DOCKER_", "CONTAINER_"))
        for a in ("-e", f"{k}={v}")
    ]
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            outer,
            "-x",
            "120",
            "-y",
            "30",
            *env,
            "--",
            *ram.argv,
            "attach",
            agent,
        ],
        check=True,
    )
    try:
        deadline = time.monotonic() + 30
        while (
            "Ctrl-b d detaches"
            not in subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", f"={outer}:"], capture_output=True, text=True
            ).stdout
        ):
            assert time.monotonic() < deadline, "am attach did not attach"
            time.sleep(0.2)
        # The engine's client sets its terminal up after it prints: on a busy host, keys typed
        # before may not reach the agent. Typed again until its answer is in the log (the
        # agent reads one line; a second goes nowhere).
        deadline = time.monotonic() + 60
        while True:
            subprocess.run(
                ["tmux", "send-keys", "-t", f"={outer}:", "via-attach", "Enter"], check=True
            )
            try:
                wait_log(ram, agent, "got-via-attach", timeout=3)
                break
            except AssertionError:
                assert time.monotonic() < deadline, "the typed line never reached the agent"
        subprocess.run(["tmux", "send-keys", "-t", f"={outer}:", "C-b", "d"], check=True)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", f"={outer}:"], capture_output=True)
    assert wait_status(ram, agent, "running")["exit_code"] is None


def test_host_mounts_are_refused_loudly(ram, repo, engine):
    home = ram.home.parent / "user"
    ram.ns.run(
        "sh",
        "-c",
        f'mkdir -p "{home}/.claude" && echo {{}} > "{home}/.claude/.credentials.json"',
        check=True,
    )
    for flags in (["--network", "limited"], ["--mount-agent-config", "--agent", "claude"]):
        res = ram(
            "spawn",
            repo,
            "--container",
            "--runtime",
            engine,
            *flags,
            check=False,
            env={"HOME": str(home)},
        )
        assert res.returncode != 0
        lines = [ln for ln in res.stderr.splitlines() if ln.startswith("am: error:")]
        assert len(lines) == 1 and "needs a local engine" in lines[0], res.stderr
    assert json.loads(ram("list", "--json").stdout) == []
    assert (
        ram.remote.cli("volume", "ls", "-q", "--filter", f"label=am.home={ram.home}").stdout.strip()
        == ""
    )

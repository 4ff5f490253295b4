"""'am stop' while the agent is still being spawned or started: the stop holds.

The spawn or start is frozen (SIGSTOP) at a known step, 'am stop' runs, and the spawn goes on.
Without am's check the spawn then marks the agent running: the agent runs though stopped, or
shows as 'exited' once the stop ended it.
"""

import contextlib
import os
import signal
import subprocess

import pytest
from containers import container_names, engine_client
from helpers import (
    am_sessions,
    assert_am_error,
    many_files,
    restore_caught_unpacking,
    spawn_cut_in_its_checkout,
    wait_for,
)

STOPPED_LINE = "am: error: agent {} was stopped ('am stop') while it started"


@contextlib.contextmanager
def frozen(p: subprocess.Popen):
    """P stopped for the block (its children, git or the engine's client, go on)."""
    os.kill(p.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(p.pid, signal.SIGCONT)


def assert_kept_stopped(am, p: subprocess.Popen, name: str) -> None:
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1, err
    assert out.split() == [name]  # it was made: its id, as for any agent a spawn made
    assert err.strip().splitlines()[-1].startswith(STOPPED_LINE.format(name)), err
    assert "Traceback" not in err
    assert am.info(name)["status"] == "stopped"


@pytest.mark.parametrize("head_start", [False, True], ids=["in-a-new-home", "head-start"])
def test_a_stop_during_the_checkout_keeps_the_agent_stopped_and_it_never_runs(
    am, tmp_path, head_start
):
    ws = am.home / "agents" / "held"
    p = spawn_cut_in_its_checkout(
        am, many_files(tmp_path), "held", cmd="touch ran; sleep 300", head_start=head_start
    )
    with frozen(p):
        # 'am rm' and 'am clean' would delete the tree git is writing: refused, even forced.
        line = assert_am_error(am("rm", "--force", "held", check=False))
        assert "is still being made by its 'am spawn'" in line
        assert "Kept held: its 'am spawn' is still at work" in am("clean", "--all").stderr
        am("stop", "held")
        assert am.info("held")["status"] == "starting"  # until its spawn settles it
    assert_kept_stopped(am, p, "held")
    assert am_sessions(am.home) == []
    assert not (ws / "ran").exists()
    # Whole, and it runs on 'am start'.
    assert (ws / ".git" / "index").exists() and (ws / "d19" / "f999.txt").exists()
    am("start", "held")
    wait_for(lambda: (ws / "ran").exists(), "the started agent to run")
    assert am.info("held")["status"] == "running"


@pytest.mark.container
@pytest.mark.parametrize("head_start", [False, True], ids=["in-a-new-home", "head-start"])
def test_a_stop_during_a_container_spawns_checkout_starts_no_container(
    am, tmp_path, engine, head_start
):
    p = spawn_cut_in_its_checkout(
        am, many_files(tmp_path), "held", "--container", "--runtime", engine, head_start=head_start
    )
    with frozen(p):
        am("stop", "held")
    assert_kept_stopped(am, p, "held")
    assert container_names(engine, str(am.home)) == []


@pytest.mark.container
@pytest.mark.parametrize("command", ["spawn", "start"])
def test_a_stop_while_the_engine_starts_the_container_holds(am, repo, command):
    """The stop comes while podman makes the container: it ends what it finds, and the spawn
    or start ends what podman made after, and keeps the agent stopped."""
    engine = "podman"  # a client of its own that runs while the container is made
    from containers import engine_ready

    engine_ready(engine)
    argv = ["spawn", str(repo), "--name", "held", "--container", "--runtime", engine]
    if command == "start":
        am(*argv, "--cmd", "sleep 300")
        am("stop", "held")
        argv = ["start", "held"]
    else:
        argv += ["--cmd", "sleep 300"]
    p = subprocess.Popen(
        [*am.argv, *argv], env=am.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(
            lambda: engine_client(p, engine) or p.poll() is not None,
            f"the {command} to run 'podman run'",
            60,
            every=0.002,
        )
        assert p.poll() is None, p.communicate()
        with frozen(p):
            am("stop", "held")
        out, err = p.communicate(timeout=120)
        assert p.returncode == 1, err
        assert err.strip().splitlines()[-1].startswith(STOPPED_LINE.format("held")), err
        assert out.split() == (["held"] if command == "spawn" else [])
        assert "Started held" not in err
        assert am.info("held")["status"] == "stopped"
        wait_for(lambda: container_names(engine, str(am.home)) == [], "no container", 60)
    finally:
        subprocess.run([engine, "rm", "-f", "am-held"], capture_output=True)


@pytest.mark.container
def test_a_stop_while_a_limited_agents_proxy_starts_holds(am, repo, engine):
    """The stop removes the proxy the spawn waits to answer: the spawn keeps the agent stopped
    at once (it waited out its 30 s, then undid the agent)."""
    p = subprocess.Popen(
        [*am.argv, "spawn", str(repo), "--name", "held", "--container", "--runtime", engine]
        + ["--network", "limited", "--cmd", "sleep 300"],
        env=am.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(
        lambda: "am_proxy-held" in container_names(engine, str(am.home)) or p.poll() is not None,
        "the spawn to start its network proxy",
        60,
        every=0.02,
    )
    assert p.poll() is None, p.communicate()
    with frozen(p):
        am("stop", "held")
    assert_kept_stopped(am, p, "held")
    wait_for(lambda: container_names(engine, str(am.home)) == [], "no container", 60)


def test_a_restore_at_work_is_left_alone_by_doctor_rm_and_clean(am, tmp_path):
    """A restore's record is 'starting' while it unpacks, as a spawn's: doctor --fix took it
    for an interrupted one and deleted it under the restore."""
    p, _ = restore_caught_unpacking(am, tmp_path, "back")
    ws = am.home / "agents" / "back"
    with frozen(p):
        assert am.info("back")["status"] == "starting"
        fixed = am("doctor", "--fix", "--json").stdout
        assert "back" not in fixed, fixed
        line = assert_am_error(am("rm", "--force", "back", check=False))
        assert "is still being made by its 'am restore'" in line
        assert "Kept back: its 'am restore' is still at work" in am("clean", "--all").stderr
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert am.info("back")["status"] == "stopped"
    assert (ws / "d19" / "f999.txt").read_text() == "19 999\n"

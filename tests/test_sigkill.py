"""A spawn killed with SIGKILL at any point leaves nothing doctor --fix cannot clean."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from containers import container_names, engine_client, engine_ready, remove_containers
from helpers import (
    am_sessions,
    git,
    many_files,
    restore_caught_unpacking,
    spawn_cut_in_its_checkout,
    wait_for,
)

from am import files


def kill_spawns_at(am, source, delays, extra=()):
    for i, delay in enumerate(delays):
        p = subprocess.Popen(
            [*am.argv, "spawn", str(source), "--name", f"k{i}", "--cmd", "sleep 300", *extra],
            env=am.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()


def assert_clean_after_fix(am):
    res = am("doctor", "--fix", "--json", check=False)
    report = json.loads(res.stdout)
    assert all(d["fixed"] and not d["fixed"].startswith("not fixed") for d in report["drift"])
    again = json.loads(am("doctor", "--json", check=False).stdout)
    assert again["drift"] == [], again["drift"]
    for a in am.list():
        assert a["status"] in ("running", "stopped", "exited"), a  # no half-made records
    agents = am.home / "agents"
    names = {a["id"] for a in am.list()}
    leftovers = {p.name for p in agents.iterdir()} - names if agents.exists() else set()
    assert leftovers == set()


def test_sigkilled_tmux_spawns(am, repo):
    # a spawn takes 0.1-0.4 s: kills land in each of its steps, and the late ones after it
    kill_spawns_at(am, repo, [0.02, 0.05, 0.08, 0.12, 0.16, 0.2, 0.3, 0.5, 1.0])
    assert_clean_after_fix(am)
    # nothing blocks the next spawn, even under a name a killed spawn used
    done = {a["id"] for a in am.list()}
    name = next(f"k{i}" for i in range(9) if f"k{i}" not in done)
    agent = am.spawn(repo, "--name", name, "--cmd", "sleep 300")
    assert am.info(agent)["status"] == "running"


def test_sigkilled_url_spawns_leave_the_cache_usable(am, repo):
    url = f"file://{repo}"
    kill_spawns_at(am, url, [0.05, 0.1, 0.2, 0.3, 0.45])
    assert_clean_after_fix(am)
    agent = am.spawn(url, "--cmd", "sleep 300")
    assert am.info(agent)["status"] == "running"


@pytest.mark.container
@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_sigkilled_container_spawns(am, repo, engine):
    engine_ready(engine)
    try:
        kill_spawns_at(
            am, repo, [0.2, 0.5, 0.8, 1.1, 1.5, 2.5], extra=("--container", "--runtime", engine)
        )
        # A killed spawn's session may still be creating its container: fix once every live
        # session has one (a session whose engine client failed is gone by itself).
        wait_for(
            lambda: set(am_sessions(am.home)) <= set(container_names(engine, str(am.home))),
            "the engines to settle",
            60,
        )
        assert_clean_after_fix(am)
        running = {a["container"] for a in am.list() if a["status"] == "running"}
        assert set(container_names(engine, str(am.home))) == running
        agent = am.spawn(repo, "--container", "--runtime", engine, "--cmd", "sleep 300")
        assert am.info(agent)["status"] == "running"
        am("stop", agent)
    finally:
        remove_containers(engine, str(am.home))


@pytest.mark.container
def test_an_interrupt_while_the_engine_makes_the_container_leaves_nothing(am, repo, engine):
    """Ctrl-C while the engine's client makes the container. A client killed there leaves
    dockerd making it after the spawn's undo looked, so the spawn lets the call end, then
    removes what it made: 130, and no container, record or session left."""
    p = subprocess.Popen(
        [*am.argv, "spawn", str(repo), "--container", "--runtime", engine, "--cmd", "sleep 300"],
        env=am.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: engine_client(p, engine) or p.poll() is not None,
            "the spawn to make its container",
            60,
            every=0.002,
        )
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 130, (out, err)
    assert out == "" and "Traceback" not in err
    assert container_names(engine, str(am.home)) == []  # at once: the undo did it, no one else
    assert am.list() == [] and am_sessions(am.home) == []


def interrupt(am, agent: str) -> None:
    """Leave AGENT's record as a spawn killed after its session started leaves it: 'starting',
    its spawn's process gone, no base commit yet."""
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs, as a killed spawn's
    state = am.home / "state" / "state.json"
    data = json.loads(state.read_text())
    data["agents"][agent].update(status="starting", spawn_pid=gone.pid, base_commit=None)
    state.write_text(json.dumps(data))


def test_interrupted_spawn_has_one_truth_and_fix_keeps_its_work(am, repo):
    idle = am.spawn(repo, "--name", "idle", "--cmd", "sleep 300")
    busy = am.spawn(
        repo, "--name", "busy", "--cmd", "echo work > work.txt && echo WORK-DONE; sleep 300"
    )
    am.wait_log(busy, "WORK-DONE")
    for agent in (idle, busy):
        interrupt(am, agent)
    # its session still runs, yet list, info and doctor agree: the spawn did not finish
    assert {a["id"]: a["status"] for a in am.list()} == {idle: "error", busy: "error"}
    report = json.loads(am("doctor", "--json", check=False).stdout)["drift"]
    assert {(d["kind"], d["subject"]) for d in report} == {
        ("stale-spawn", idle),
        ("stale-spawn", busy),
    }
    fixed = {
        d["subject"]: d["fixed"]
        for d in json.loads(am("doctor", "--fix", "--json").stdout)["drift"]
    }
    assert "removed" in fixed[idle] and "kept" in fixed[busy], fixed
    assert not (am.home / "agents" / idle).exists()
    info = am.info(busy)  # adopted: stopped, its work where it was, diff works
    assert info["status"] == "stopped" and info["base_commit"]
    assert (am.home / "agents" / busy / "work.txt").read_text() == "work\n"
    assert "+work" in am("diff", busy).stdout
    assert am_sessions(am.home) == []
    assert json.loads(am("doctor", "--json").stdout)["drift"] == []


@pytest.mark.parametrize("head_start", [False, True], ids=["in-a-new-home", "head-start"])
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_a_spawn_stopped_by_sigterm_or_sighup_undoes_its_work(am, tmp_path, stop, head_start):
    """'timeout', a closed terminal: the spawn alone gets the signal, mid-checkout, and
    undoes what it made as on Ctrl-C, then says so with 128+N."""
    p = spawn_cut_in_its_checkout(am, many_files(tmp_path), "cut", head_start=head_start)
    p.send_signal(stop)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + stop, err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(f"am: error: stopped by {stop.name}; what the spawn had made is undone")
    ), err
    assert am.list() == [] and am_sessions(am.home) == []
    assert os.listdir(am.home / "agents") == []  # neither the workspace nor a head start
    assert json.loads(am("doctor", "--json").stdout)["drift"] == []


@pytest.mark.parametrize("head_start", [False, True], ids=["in-a-new-home", "head-start"])
def test_a_spawn_killed_during_its_checkout_leaves_no_agent_to_adopt(am, tmp_path, head_start):
    """A tmux agent's session starts while git still checks its workspace out. A spawn killed
    then (SIGKILL to its group: git too) leaves a part of the tree, no index and no spec: no
    agent ran, so doctor --fix removes it rather than keep the part as 'unsaved work'."""
    p = spawn_cut_in_its_checkout(am, many_files(tmp_path), "cut", head_start=head_start)
    ws = am.home / "agents" / "cut"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    drift = json.loads(am("doctor", "--fix", "--json").stdout)["drift"]
    fixed = {d["subject"]: d["fixed"] for d in drift}
    assert "removed the record and its workspace" in fixed.get("cut", ""), fixed
    # A head start's part of the tree is in its own folder, which doctor removes too.
    assert [d["kind"] for d in drift if d["subject"] != "cut"] == (
        ["leftover-spawn"] if head_start else []
    )
    assert not ws.exists() and am.list() == [] and am_sessions(am.home) == []
    assert os.listdir(am.home / "agents") == []


def test_a_restore_killed_while_it_unpacks_leaves_nothing_doctor_cannot_clean(am, tmp_path):
    p, agent = restore_caught_unpacking(am, tmp_path, "back")
    p.kill()
    p.communicate()
    assert_clean_after_fix(am)
    assert sorted(e.name for e in (am.home / "agents").iterdir()) == [agent]  # none of it left


@pytest.mark.parametrize(
    "catch, extra",
    [(".tar.partial", ()), (".pack-", ("--worktree",))],
    ids=["writing-the-archive", "packing-a-worktrees-history"],
)
def test_a_snapshot_killed_while_it_writes_leaves_nothing_doctor_cannot_clean(
    am, tmp_path, catch, extra
):
    agent = am.spawn(many_files(tmp_path), "--cmd", "sleep 300", *extra)
    snapshots = am.home / "data" / "snapshots"
    left = killed_at_work(am, ["snapshot", agent], snapshots, catch, "leftover-snapshot")
    assert any(catch in os.path.basename(d["subject"]) for d in left), left
    assert_clean_after_fix(am)
    assert os.listdir(snapshots) == []  # nothing of it left
    assert am.info(agent)["status"] == "running"  # and the agent never noticed


def test_a_pull_killed_while_it_bundles_leaves_nothing_doctor_cannot_clean(am, tmp_path):
    source = many_files(tmp_path)
    agent = am.spawn(source, "--cmd", "sleep 300")
    ws = Path(am.info(agent)["workspace"])
    for d in range(20):  # 20,000 new blobs for the bundle to carry
        for f in range(1000):
            (ws / f"d{d}" / f"f{f}.txt").write_text(f"changed {d} {f}\n")
    git("-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qam", "work", cwd=ws)
    cache = am.home / "data" / "cache"
    left = killed_at_work(am, ["pull", agent], cache, "bundle-", "leftover-pull")
    assert [d["kind"] for d in left] == ["leftover-pull"], left
    assert_clean_after_fix(am)
    assert [n for n in os.listdir(cache) if n.startswith("bundle-")] == []


def killed_at_work(am, args: list[str], folder, catch: str, kind: str) -> list[dict]:
    """'am ARGS', held (SIGSTOP) once FOLDER holds an entry named with CATCH: doctor must not
    list it as KIND while that command lives (it holds its lock), and then SIGKILLed. Returns
    the drift doctor finds after the kill."""
    p = subprocess.Popen(
        [*am.argv, *args], env=am.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def at_work(name: str) -> bool:
        # A held folder counts once it holds more than its lock file: made, it is not yet
        # held, and doctor rightly takes an empty one for a kill's (files.held_temp_dir).
        path = os.path.join(folder, name)
        if catch not in name:
            return False
        try:
            return not os.path.isdir(path) or bool(set(os.listdir(path)) - {files.HELD})
        except OSError:
            return False

    def caught():
        names = os.listdir(folder) if folder.exists() else []
        return any(map(at_work, names)) or p.poll() is not None

    wait_for(caught, f"'am {args[0]}' to write", 120, every=0.01)
    p.send_signal(signal.SIGSTOP)
    try:
        assert p.poll() is None, p.communicate()
        at_work = json.loads(am("doctor", "--json", check=False).stdout)["drift"]
        assert [d for d in at_work if d["kind"] == kind] == []
    finally:
        p.kill()
        p.communicate()
    return json.loads(am("doctor", "--json", check=False).stdout)["drift"]


def test_a_worktree_spawn_killed_in_its_checkout_leaves_no_branch_behind(am, tmp_path):
    source = many_files(tmp_path)
    p = subprocess.Popen(
        [*am.argv, "spawn", str(source), "--worktree", "--name", "wk", "--cmd", "sleep 300"],
        env=am.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ws = am.home / "agents" / "wk"
    wait_for(lambda: (ws / "d0").exists() or p.poll() is not None, "the worktree's checkout", 60)
    p.kill()  # git goes on, and makes the branch and the worktree whole
    assert p.wait() == -signal.SIGKILL
    index = source / ".git" / "worktrees" / "wk" / "index"
    wait_for(lambda: index.exists() and not index.with_suffix(".lock").exists(), "git's end")
    assert git("branch", "--list", "am/wk", cwd=source).strip()  # what the kill left
    (before,) = json.loads(am("doctor", "--json", check=False).stdout)["drift"]
    assert before["kind"] == "stale-spawn"
    assert_clean_after_fix(am)
    assert git("branch", "--list", "am/wk", cwd=source).strip() == ""
    assert "wk" not in git("worktree", "list", cwd=source)
    # and the name is free again
    assert am.info(am.spawn(source, "--worktree", "--name", "wk", "--cmd", "sleep 300"))

"""am doctor finds each kind of drift between the state file and reality, and --fix repairs it."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import pytest
from containers import ENGINES, container_names, engine_ready, remove_containers
from helpers import git, keeper_pid, wait_for


def drift(am, fix=False) -> list[dict]:
    args = ["doctor", "--json"] + (["--fix"] if fix else [])
    return json.loads(am(*args, check=False).stdout)["drift"]


def kinds(report) -> set[tuple[str, str]]:
    return {(d["kind"], d["subject"]) for d in report}


def test_checks_report_tools(am):
    report = json.loads(am("doctor", "--json", check=False).stdout)
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["git"]["ok"] is True and checks["tmux"]["ok"] is True


def test_orphan_session(am):
    name = f"am-orphan{uuid.uuid4().hex[:6]}"
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            name,
            "sleep 600",
            ";",
            "set-option",
            "-t",
            f"={name}:",
            "@am_home",
            str(am.home),
        ],
        check=True,
    )
    other = f"am-other{uuid.uuid4().hex[:6]}"  # a session of another AM_HOME is not ours
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            other,
            "sleep 600",
            ";",
            "set-option",
            "-t",
            f"={other}:",
            "@am_home",
            "/elsewhere",
        ],
        check=True,
    )
    try:
        assert am("doctor", check=False).returncode != 0
        assert ("orphan-session", name) in kinds(drift(am))
        assert other not in {d["subject"] for d in drift(am)}
        assert "session(s) with no agent record" in am("list").stderr
        drift(am, fix=True)
        assert subprocess.run(["tmux", "has-session", "-t", f"={name}:"]).returncode != 0
        assert subprocess.run(["tmux", "has-session", "-t", f"={other}:"]).returncode == 0
        assert drift(am) == []
    finally:
        subprocess.run(["tmux", "kill-session", "-t", f"={other}:"], capture_output=True)


def test_orphan_workspaces(am, repo):
    clean = am.spawn(repo, "--name", "keepclean", "--cmd", "true")
    dirty = am.spawn(repo, "--name", "keepdirty", "--cmd", "echo work > work.txt")
    am.wait_status(dirty, "exited")
    # lose the records, keep the folders
    state = am.home / "state" / "state.json"
    data = json.loads(state.read_text())
    data["agents"] = {}
    state.write_text(json.dumps(data))
    found = kinds(drift(am))
    assert ("orphan-workspace", str(am.home / "agents" / clean)) in found
    assert ("orphan-workspace", str(am.home / "agents" / dirty)) in found
    fixed = {d["subject"]: d["fixed"] for d in drift(am, fix=True)}
    assert not (am.home / "agents" / clean).exists()  # nothing unsaved: removed
    assert "adopted" in fixed[str(am.home / "agents" / dirty)]
    assert (am.home / "agents" / dirty / "work.txt").read_text() == "work\n"
    assert am.info(dirty)["status"] == "stopped"
    assert "work.txt" in am("diff", dirty).stdout
    assert drift(am) == []


def test_only_workspaces_holding_work_are_adopted(am):
    agents = am.home / "agents"
    (agents / "empty").mkdir(parents=True)
    (agents / "notes").mkdir()
    (agents / "notes" / "todo.txt").write_text("mine\n")  # not something a spawn made
    fixed = {d["subject"]: d["fixed"] for d in drift(am, fix=True)}
    assert fixed[str(agents / "empty")] == "removed (empty)"
    assert not (agents / "empty").exists()
    assert fixed[str(agents / "notes")].startswith("left alone")
    assert (agents / "notes" / "todo.txt").read_text() == "mine\n"
    assert am.list() == []  # neither adopted as an agent
    assert kinds(drift(am)) == {("orphan-workspace", str(agents / "notes"))}  # still reported


def test_stale_worktree(am, repo):
    agent = am.spawn(repo, "--worktree", "--cmd", "true")
    am.wait_status(agent, "exited")
    shutil.rmtree(am.home / "agents" / agent)
    assert any(d["kind"] == "stale-worktree" for d in drift(am))
    drift(am, fix=True)
    assert "prunable" not in git("worktree", "list", "--porcelain", cwd=repo)
    assert not any(d["kind"] == "stale-worktree" for d in drift(am))


@pytest.mark.container
@pytest.mark.parametrize("engine", ENGINES)
def test_orphan_and_lost_containers(am, repo, engine):
    engine_ready(engine)
    orphan = f"am-orphan-{uuid.uuid4().hex[:6]}"
    try:
        subprocess.run(
            [
                engine,
                "run",
                "-d",
                "--name",
                orphan,
                "--label",
                f"am.home={am.home}",
                "--label",
                "am.agent=nobody",
                "am-agent:latest",
                "sleep",
                "600",
            ],
            check=True,
            capture_output=True,
        )
        agent = am.spawn(repo, "--container", "--runtime", engine, "--cmd", "sleep 600")
        stopped = am.spawn(repo, "--container", "--runtime", engine, "--cmd", "sleep 600")
        am("stop", stopped)
        # A container of an agent am stopped, there again (the engine was down at the stop)
        subprocess.run(
            [
                engine,
                "run",
                "-d",
                "--name",
                f"am-{stopped}",
                "--label",
                f"am.home={am.home}",
                "am-agent:latest",
                "sleep",
                "600",
            ],
            check=True,
            capture_output=True,
        )
        # The keeper is killed, and the agent's container ends while none runs.
        pid = keeper_pid(am.home)
        os.kill(pid, signal.SIGKILL)
        subprocess.run([engine, "kill", f"am-{agent}"], check=True, capture_output=True)
        report = kinds(drift(am))
        assert ("orphan-container", orphan) in report
        assert ("lost-container", f"am-{stopped}") in report
        # the next keeper (any am command starts one) records how it ended, and removes it
        info = am.wait_status(agent, "exited")
        assert info["exit_code"] == 137  # 128 + SIGKILL, read from the engine
        assert keeper_pid(am.home) != pid
        drift(am, fix=True)
        assert container_names(engine, str(am.home)) == []
        assert am.info(stopped)["status"] == "stopped"
        assert drift(am) == []
    finally:
        remove_containers(engine, str(am.home))


@pytest.mark.container
@pytest.mark.parametrize("engine", ENGINES)
def test_proxy_image_row_shows_squid_and_age(am, engine):
    """Security updates reach the proxy only with a rebuild: doctor says how old it is."""
    from am.backends.network import PROXY_IMAGE

    engine_ready(engine)
    if subprocess.run([engine, "image", "inspect", PROXY_IMAGE], capture_output=True).returncode:
        am("image", "build", "--proxy", "--runtime", engine, timeout=900)
    rows = {r["check"]: r for r in json.loads(am("doctor", "--json", check=False).stdout)["checks"]}
    row = rows[f"{engine} proxy"]
    assert row["ok"] is True, row
    assert re.search(
        rf"^{re.escape(PROXY_IMAGE)}, squid 5\.\S+, built \d+ days? ago$", row["detail"]
    ), row


def test_image_ages_of_both_engines():
    from am.commands.doctor import age_days

    assert age_days("2020-01-01T00:00:00Z") > 365
    assert age_days("2020-01-01 00:00:00.5 -0500 EST") == age_days("2020-01-01T05:00:00Z")
    assert age_days(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())) == 0
    assert age_days("not a time") is None


@pytest.mark.container  # it runs a container engine
def test_doctor_says_whether_gvisor_runs_on_each_engine(am):
    for engine in ENGINES:
        engine_ready(engine)
    report = json.loads(am("doctor", "--json", check=False).stdout)
    checks = {c["check"]: c for c in report["checks"]}
    for engine in ENGINES:
        row = checks[f"{engine} gvisor"]
        # registered and tried: a sandbox of am's image ran on gVisor's kernel
        assert row["ok"] is True and "gVisor's kernel" in row["detail"], row
    text = am("doctor", check=False).stdout
    assert any(line.startswith("ok") and "docker gvisor" in line for line in text.splitlines())


def test_fix_leaves_alone_what_a_spawn_made_after_the_look(am, repo, tmp_path):
    """doctor reads the records, then asks tmux for the sessions: an agent spawned in between
    has a session and a workspace the records doctor read do not name. --fix reads them again
    under the state file's lock and leaves both alone (before, it killed the new agent's
    session and deleted its fresh workspace). doctor is held at its tmux call by a shim."""
    shim = tmp_path / "shim"
    shim.mkdir()
    looked, go = tmp_path / "looked", tmp_path / "go"
    real = shutil.which("tmux")
    (shim / "tmux").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = list-sessions ] && [ ! -e {go} ]; then\n'
        f"  touch {looked}\n"
        f"  while [ ! -e {go} ]; do sleep 0.05; done\n"
        "fi\n"
        f'exec {real} "$@"\n'
    )
    (shim / "tmux").chmod(0o755)
    doctor = subprocess.Popen(
        [*am.argv, "doctor", "--fix", "--json"],
        env={**am.env, "PATH": f"{shim}:{am.env.get('PATH', os.environ['PATH'])}"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(looked.exists, "doctor's look at the sessions", timeout=180)  # after its checks
        agent = am.spawn(repo, "--cmd", "sleep 600")
        go.touch()
        report = json.loads(doctor.communicate(timeout=120)[0])["drift"]
    finally:
        doctor.kill()
    fixed = {d["kind"]: d["fixed"] for d in report}
    assert fixed.get("orphan-session", "").startswith("left alone"), report
    assert fixed.get("orphan-workspace", "").startswith("left alone"), report
    assert am.info(agent)["status"] == "running"
    assert (am.home / "agents" / agent / ".git").is_dir()
    assert drift(am) == []


def test_a_name_with_a_newline_stays_on_its_drift_line(am):
    forged = "x\nok    git            fine"
    (am.home / "agents" / forged).mkdir(parents=True)
    out = am("doctor", check=False).stdout.splitlines()
    drift_lines = [line for line in out if "x\\nok" in line]
    assert len(drift_lines) == 1 and drift_lines[0].startswith("drift orphan-workspace")
    assert [line for line in out if line.startswith("ok    git ")] == [
        line for line in out if line.startswith("ok    git ") and "fine" not in line
    ]

"""Property 10: am checks a record before it acts on anything the record names.

The state file is am's own, but a hand edit or a corrupt file can name a folder outside
AM_HOME, a log anywhere, a tmux session that is not am's or another AM_HOME's container. Each
test edits a real record, and its positive control shows the same command does act on what a
valid record names.
"""

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from containers import container_names
from helpers import assert_am_error, has_session, keeper_pid, wait_for

PROPERTY = "10 records checked before use"
SECRET = "SECRET-OF-THE-HOST-8"


def edit_record(am, agent_id: str, **fields) -> None:
    path = am.home / "state" / "state.json"
    data = json.loads(path.read_text())
    data["agents"][agent_id].update(fields)
    path.write_text(json.dumps(data))


@pytest.fixture
def outside(tmp_path):
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_text(SECRET + "\n")
    return d


def test_rm_never_deletes_a_workspace_outside_the_layout(am, repo, outside):
    control = am.spawn(repo, "--cmd", "sleep 300")
    am("rm", "--force", control)  # control: rm --force deletes what a valid record names
    assert not (am.home / "agents" / control).exists()
    agent = am.spawn(repo, "--cmd", "sleep 300")
    am("stop", agent)
    edit_record(am, agent, workspace=str(outside))
    for verb in ("diff", "snapshot", "stop", "logs"):
        line = assert_am_error(am(verb, agent, check=False))
        assert "is invalid" in line and str(outside) in line
    assert "is invalid" in assert_am_error(am("rm", agent, check=False))
    res = am("rm", "--force", agent)
    assert "nothing it names was touched" in res.stderr
    assert (outside / "secret.txt").read_text() == SECRET + "\n"
    assert (am.home / "agents" / agent).is_dir()  # its own workspace is not guessed at either
    assert am.list() == []


def test_logs_never_prints_a_file_a_record_names(am, repo, outside):
    agent = am.spawn(repo, "--cmd", "echo hello; sleep 300")
    am.wait_log(agent, "hello")  # control: logs prints the file the record names
    edit_record(am, agent, log=str(outside / "secret.txt"))
    res = am("logs", agent, check=False)
    assert "is invalid" in assert_am_error(res)
    assert SECRET not in res.stdout + res.stderr
    doctor = am("doctor", check=False)
    assert "invalid-record" in doctor.stdout and SECRET not in doctor.stdout
    am("doctor", "--fix", check=False)
    assert am.list() == []  # the record only: what it names is left alone
    assert (outside / "secret.txt").read_text() == SECRET + "\n"


def test_info_shows_an_invalid_record_and_fails_with_the_reason(am, repo, outside):
    """Shown, for the user to see what is wrong, with nothing it names read (no health, no
    location), and exit 1 with the fix. The control: the valid record, exit 0, invalid null."""
    agent = am.spawn(repo, "--cmd", "sleep 300")
    valid = json.loads(am("info", agent, "--json").stdout)
    assert valid["invalid"] is None and valid["health"] != "-" and valid["workspace_location"]
    edit_record(am, agent, log=str(outside / "secret.txt"), workspace=str(outside))
    res = am("info", agent, "--json", check=False)
    error = assert_am_error(res)
    assert "is invalid" in error and f"'am rm --force {agent}'" in error
    shown = json.loads(res.stdout)
    assert shown["log"] == str(outside / "secret.txt") and shown["workspace"] == str(outside)
    assert len(shown["invalid"]) == 2 and all(str(outside) in p for p in shown["invalid"])
    assert shown["health"] == "-" and shown["workspace_location"] is None
    text = am("info", agent, check=False)
    assert f"workspace:     {outside}" in text.stdout and "is invalid" in assert_am_error(text)
    assert SECRET not in res.stdout + res.stderr + text.stdout + text.stderr


def test_info_of_an_invalid_record_starts_nothing_and_asks_no_process(am, repo):
    """A tmux agent's record edited into a running container agent's with a workspace
    outside: am info shows it as recorded, and starts no keeper for it (am list would, for a
    valid one: the control). A record whose session is a list breaks no view."""
    agent = am.spawn(repo, "--cmd", "sleep 300")
    container = {"mode": "container", "runtime": "docker", "container": f"am-{agent}"}
    edit_record(am, agent, workspace="/", status="starting", spawn_pid=1, **container)
    shown = json.loads(am("info", agent, "--json", check=False).stdout)
    assert shown["status"] == "starting" and shown["invalid"]  # as recorded: pid 1 not asked
    assert keeper_pid(am.home) is None
    edit_record(am, agent, workspace=str(am.home / "agents" / agent), status="running")
    am("list")  # control: a running container agent's record starts its keeper
    wait_for(lambda: keeper_pid(am.home) is not None, "the keeper", 30)
    edit_record(am, agent, session=["am-x"], mode="tmux", runtime=None, container=None)
    for args in (["list"], ["list", "--json"], ["info", agent], ["status"]):
        res = am(*args, check=False)
        assert "Traceback" not in res.stderr, (args, res.stderr)
    assert "its session ['am-x']" in assert_am_error(am("info", agent, check=False))


def test_stop_never_kills_a_session_that_is_not_ams(am, repo):
    agent = am.spawn(repo, "--cmd", "sleep 300")
    am("stop", agent)
    foreign = f"am-{agent}"
    subprocess.run(["tmux", "new-session", "-d", "-s", foreign, "sleep", "300"], check=True)
    try:
        am("stop", agent)
        am("rm", "--force", agent)
        assert has_session(foreign), "a session without this AM_HOME's @am_home was killed"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", f"={foreign}:"], capture_output=True)
    control = am.spawn(repo, "--cmd", "sleep 300")
    am("stop", control)  # control: am's own session (with @am_home) is killed
    assert not has_session(f"am-{control}")


@pytest.mark.container
def test_stop_never_removes_another_homes_container(am, repo, engine):
    agent = am.spawn(repo, "--cmd", "sleep 300")
    am("stop", agent)
    other = f"/tmp/other-home-{uuid.uuid4().hex[:8]}"
    name = f"am-{agent}"
    run = [
        engine,
        "run",
        "-d",
        "--name",
        name,
        "--label",
        f"am.home={other}",
        "--network",
        "none",
        "--pull",
        "never",
        "am-agent:latest",
        "sleep",
        "300",
    ]
    subprocess.run(run, check=True, capture_output=True)
    try:
        edit_record(am, agent, mode="container", runtime=engine, container=name)
        am("stop", agent)
        am("rm", "--force", agent)
        assert name in container_names(engine, other), "another AM_HOME's container was removed"
    finally:
        subprocess.run([engine, "rm", "-f", name], capture_output=True)
    # control: the same record, naming a container labelled for this AM_HOME: it is removed
    control = am.spawn(repo, "--cmd", "sleep 300")
    am("stop", control)
    name = f"am-{control}"
    run[run.index("--name") + 1] = name
    run[run.index("--label") + 1] = f"am.home={am.home}"
    subprocess.run(run, check=True, capture_output=True)
    try:
        edit_record(am, control, mode="container", runtime=engine, container=name)
        am("stop", control)
        assert name not in container_names(engine, str(am.home))
    finally:
        subprocess.run([engine, "rm", "-f", name], capture_output=True)


def test_pull_and_push_never_take_a_branch_a_record_names_as_an_option(am, repo):
    agent_id = am.spawn(repo, "--cmd", "sleep 300")
    refs = subprocess.run(["git", "for-each-ref"], cwd=repo, capture_output=True, text=True).stdout
    edit_record(am, agent_id, branch="--upload-pack=touch pwned")
    for cmd in ("pull", "push"):
        line = assert_am_error(am(cmd, agent_id, check=False))
        assert "is not a valid branch name" in line and f"am pull {agent_id} --branch NAME" in line
    assert not (repo / "pwned").exists() and not Path("pwned").exists()
    assert (
        subprocess.run(["git", "for-each-ref"], cwd=repo, capture_output=True, text=True).stdout
        == refs
    )
    # control: the same record, with a branch named by the user, pulls
    edit_record(am, agent_id, branch=f"am/{agent_id}")
    assert "nothing to pull" in am("pull", agent_id).stderr

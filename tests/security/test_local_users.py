"""Other local users cannot read an agent's work, and a root am's agents are no one's account.

A second, unprivileged user is made for each test (and removed after). am runs with its
default layout (no AM_HOME) under a home that user may enter; the positive control is a 0644
file beside am's folders, which that user does read.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from containers import engine_ready, remove_containers
from helpers import GIT_ID, Am

PROPERTY = "14 private to the user; agents run as no account"
AGENT_UID = 2_000_000_000


@pytest.fixture
def other_user():
    """A fresh unprivileged account: (uid, gid)."""
    name = f"amt{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    try:
        import pwd

        pw = pwd.getpwnam(name)
        yield pw.pw_uid, pw.pw_gid
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def read_as(user, path: Path) -> subprocess.CompletedProcess:
    uid, gid = user
    return subprocess.run(
        ["cat", str(path)], user=uid, group=gid, extra_groups=[], capture_output=True, text=True
    )


def list_as(user, path: Path) -> subprocess.CompletedProcess:
    uid, gid = user
    return subprocess.run(
        ["ls", str(path)], user=uid, group=gid, extra_groups=[], capture_output=True, text=True
    )


@pytest.fixture
def home(repo):
    """A home folder (0755, as a real one often is) in a folder other users may enter, and an
    am using it with the default layout; its sessions are ended after."""
    top = Path(tempfile.mkdtemp(prefix="amtest-home-", dir="/tmp"))
    top.chmod(0o755)
    home = top / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AM_", "TMUX", "XDG_"))}
    env.update(HOME=str(home), **GIT_ID)
    am = Am(home, env)
    am.repo = repo
    am.state = home / ".local" / "state" / "am"
    yield am
    res = subprocess.run(
        ["tmux", "list-sessions", "-F", "#{session_name}\t#{@am_home}"],
        capture_output=True,
        text=True,
    )
    for line in res.stdout.splitlines():
        name, _, owner = line.partition("\t")
        if owner == str(am.state):
            subprocess.run(["tmux", "kill-session", "-t", f"={name}:"], capture_output=True)
    shutil.rmtree(top, ignore_errors=True)


SECRET = "sekrit-token-31337"


def test_other_users_cannot_read_logs_workspaces_or_snapshots(home, other_user):
    control = home.home / "readable.txt"
    control.write_text("readable\n")
    control.chmod(0o644)
    assert read_as(other_user, control).stdout == "readable\n"  # the positive control
    old = home.home / ".agents"  # as an older am left it
    old.mkdir(mode=0o755)
    old.chmod(0o755)

    agent = home.spawn(
        str(home.repo), "--cmd", f"echo TOKEN={SECRET} > .env; echo printed {SECRET}; sleep 300"
    )
    home.wait_log(agent, f"printed {SECRET}")
    snap = Path(home("snapshot", agent).stdout.strip().splitlines()[-1])
    state = home.state
    data = home.home / ".local" / "share" / "am"
    private = {
        "log": state / "logs" / f"{agent}.log",
        "workspace file": old / agent / ".env",
        "workspace git": old / agent / ".git" / "config",
        "snapshot": snap,
        "state": state / "state.json",
        "spec": state / "run" / f"{agent}.spec.json",
    }
    for what, path in private.items():
        assert path.is_file(), what
        res = read_as(other_user, path)
        assert res.returncode != 0 and SECRET not in res.stdout, (what, res.stdout)
        assert "Permission denied" in res.stderr, (what, res.stderr)
    for folder in (state, state / "logs", state / "run", old, data / "snapshots"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
        assert list_as(other_user, folder).returncode != 0, folder
    for path in (private["log"], snap, private["state"]):
        assert path.stat().st_mode & 0o077 == 0, path  # the files themselves too
    home("stop", agent)


def test_tmux_server_and_agent_keep_the_users_umask(home, repo):
    """am's umask is for what am makes; the agent (and a tmux server am starts) keep the
    user's: files an agent writes for its build are as the user would make them."""
    mine = os.umask(0o022)  # what the user runs am with here
    try:
        agent = home.spawn(str(repo), "--cmd", "umask; touch made-by-agent; sleep 300")
    finally:
        os.umask(mine)
    home.wait_log(agent, "0022")
    ws = home.home / ".agents" / agent
    deadline = time.monotonic() + 30
    while not (ws / "made-by-agent").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (ws / "made-by-agent").stat().st_mode & 0o777 == 0o644
    assert ws.parent.stat().st_mode & 0o777 == 0o700  # am's own folder stays private
    home("stop", agent)


@pytest.fixture(params=("docker", "podman"))
def cengine(request, home):
    engine_ready(request.param)
    yield request.param
    remove_containers(request.param, str(home.state))


PROBE = (
    "id -u; id -un; getent passwd $(id -u); "
    'node -e \'console.log("NODE-USER=" + require("os").userInfo().username)\'; '
    "git --no-pager log --oneline -1 >/dev/null && echo GIT-OK; "
    "echo agent > made.txt && echo WRITE-OK; sleep 300"
)


@pytest.mark.container  # it runs a container engine
def test_root_agents_run_as_no_account_and_others_cannot_read(home, cengine, other_user):
    """As root: the container agent runs as the dedicated uid (named 'agent' inside), writes
    its workspace (whose files are its own), reads the cache mirror's objects of a URL clone,
    and another local user still reads nothing of it."""
    assert os.getuid() == 0, "this test runs am as root"
    agent = home.spawn(f"file://{home.repo}", "--container", "--runtime", cengine, "--cmd", PROBE)
    log = home.wait_log(agent, "WRITE-OK", timeout=120)
    lines = log.replace("\r", "").splitlines()
    assert str(AGENT_UID) in lines and "agent" in lines, log
    assert f"agent:x:{AGENT_UID}:{AGENT_UID}:agent:/home/agent:/bin/bash" in lines, log
    assert "NODE-USER=agent" in lines and "GIT-OK" in lines, log
    ws = home.home / ".agents" / agent
    made = ws / "made.txt"
    assert made.stat().st_uid == AGENT_UID and ws.stat().st_uid == AGENT_UID
    assert read_as(other_user, made).returncode != 0
    assert read_as(other_user, home.state / "logs" / f"{agent}.log").returncode != 0
    info = json.loads(home("doctor", "--json", check=False).stdout)
    row = next(r for r in info["checks"] if r["check"] == "agent uid")
    assert row["ok"] is True and str(AGENT_UID) in row["detail"]
    home("stop", agent)


@pytest.mark.container  # it runs a container engine
def test_a_uid_that_is_an_account_is_refused(home, cengine, other_user):
    """AM_AGENT_UID naming a real account: the spawn refuses before anything is made, and
    doctor fails the row. The control: the default uid spawns (previous test)."""
    uid = str(other_user[0])
    res = home(
        "spawn",
        str(home.repo),
        "--container",
        "--runtime",
        cengine,
        "--cmd",
        "true",
        env={"AM_AGENT_UID": uid},
        check=False,
    )
    assert res.returncode != 0 and "am: error: agents would run as uid" in res.stderr
    assert "is the account" in res.stderr and "AM_AGENT_UID" in res.stderr
    assert not (home.home / ".agents").exists() or not any((home.home / ".agents").iterdir())
    info = json.loads(home("doctor", "--json", env={"AM_AGENT_UID": uid}, check=False).stdout)
    row = next(r for r in info["checks"] if r["check"] == "agent uid")
    assert row["ok"] is False and "is the account" in row["detail"]


def test_subordinate_ids_are_no_agent_uid(tmp_path, monkeypatch):
    """A uid inside a user's /etc/subuid range belongs to that user's rootless containers."""
    from am.backends import hostside

    monkeypatch.setattr(hostside, "_ranges", lambda path: [("alice", 100000, 65536)])
    assert "alice's subordinate ids" in hostside.uid_problem(100500)
    assert hostside.uid_problem(AGENT_UID) is None
    monkeypatch.setenv("AM_AGENT_UID", "abc")
    with pytest.raises(hostside.AmError, match="invalid AM_AGENT_UID"):
        hostside.agent_uid()

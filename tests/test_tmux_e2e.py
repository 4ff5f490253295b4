"""End to end in tmux mode: the real CLI, real git, real tmux, and a fake agent given by --cmd."""

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from helpers import (
    Terminal,
    assert_am_error,
    assert_nothing_made,
    clients_of,
    git,
    has_session,
    pane_tty,
    state_agents,
    wait_for,
)

# The agent commits with its own identity: the tmux server's environment may predate the test's.
GITC = "git -c user.name=agent -c user.email=agent@example.invalid"
ID_RE = re.compile(r"^[0-9a-f]{8}$")

# Writes a file and commits it, edits a tracked file, adds an untracked file, prints a marker
# (built by printf so the marker text never appears in the command line itself), then waits.
FAKE_AGENT = (
    f"echo committed > agent.txt && git add agent.txt && {GITC} commit -qm agent-commit"
    " && echo edited >> README && echo fresh > untracked.txt"
    " && printf '%s-%s\\n' MARKER ready; sleep 60"
)


def test_full_lifecycle(am, repo):
    res = am("spawn", repo, "--cmd", FAKE_AGENT)
    lines = res.stdout.splitlines()
    agent_id = lines[-1]
    assert ID_RE.match(agent_id), res.stdout  # the id alone on the last line
    assert lines == [agent_id]  # stdout carries data only; progress went to stderr

    table = am("list").stdout
    row = [line for line in table.splitlines() if line.startswith(agent_id)]
    assert len(row) == 1 and "running" in row[0].split(), table
    [entry] = am.list()
    assert entry["id"] == agent_id and entry["status"] == "running"
    assert entry["mode"] == "tmux" and entry["runtime"] is None and entry["container"] is None
    assert entry["session"] == f"am-{agent_id}" and entry["exit_code"] is None
    assert has_session(f"am-{agent_id}")

    am.wait_log(agent_id, "MARKER-ready")
    diff = am("diff", agent_id).stdout
    assert "+++ b/agent.txt" in diff and "+committed" in diff  # the commit
    assert "+++ b/README" in diff and "+edited" in diff  # the uncommitted edit
    assert "+++ b/untracked.txt" in diff and "+fresh" in diff  # the untracked file
    ws = Path(entry["workspace"])
    assert ws.is_absolute() and ws.is_relative_to(am.home)
    # diff leaves the agent's own index alone: the untracked file is still untracked
    assert "?? untracked.txt" in git("status", "--porcelain", cwd=ws)

    am("stop", agent_id)
    [entry] = am.list()
    assert entry["status"] == "stopped"
    assert "stopped" in am("list").stdout
    assert not has_session(f"am-{agent_id}")
    assert (ws / "agent.txt").read_text() == "committed\n"
    assert (ws / "README").read_text() == "hello\nedited\n"
    assert (ws / "untracked.txt").read_text() == "fresh\n"
    assert "agent-commit" in git("log", "--format=%s", cwd=ws)

    res = am("rm", agent_id, check=False)
    assert_am_error(res)
    assert ws.is_dir() and (ws / "untracked.txt").exists()
    assert [a["id"] for a in am.list()] == [agent_id]

    res = am("rm", "--force", agent_id)
    assert not ws.exists()
    assert am.list() == []
    assert state_agents(am.home) == {}
    m = re.search(r"(/\S+\.tar\.gz)", res.stderr)
    assert m, f"rm --force did not say where the snapshot went:\n{res.stderr}"
    snap = Path(m.group(1))
    assert snap.is_file() and snap.stat().st_size > 0
    # the record is gone with it
    assert_am_error(am("logs", agent_id, check=False))


def test_branch_from_source_head(am, repo):
    agent_id = am.spawn(repo, "--cmd", "true")
    info = am.info(agent_id)
    assert info["base_commit"] == git("rev-parse", "HEAD", cwd=repo).strip()
    assert info["branch"] == f"am/{agent_id}"
    assert info["source"] == str(repo)
    ws = Path(info["workspace"])
    assert git("branch", "--show-current", cwd=ws).strip() == f"am/{agent_id}"
    assert git("rev-parse", "HEAD", cwd=ws).strip() == info["base_commit"]


def test_base_and_branch_options(am, repo):
    side = git("rev-parse", "side", cwd=repo).strip()
    assert side != git("rev-parse", "HEAD", cwd=repo).strip()
    agent_id = am.spawn(repo, "--base", "side", "--branch", "custom/x", "--cmd", "true")
    info = am.info(agent_id)
    assert info["base_commit"] == side
    assert info["branch"] == "custom/x"
    ws = Path(info["workspace"])
    assert git("branch", "--show-current", cwd=ws).strip() == "custom/x"
    assert git("rev-parse", "HEAD", cwd=ws).strip() == side
    assert not (ws / "file.txt").exists()  # a file only the later commit has

    by_sha = am.spawn(repo, "--base", side[:10], "--cmd", "true")
    assert am.info(by_sha)["base_commit"] == side


def test_spawn_from_file_url(am, repo):
    url = f"file://{repo}"
    agent_id = am.spawn(url, "--cmd", "printf '%s\\n' url-ok; sleep 30")
    info = am.info(agent_id)
    assert info["source"] == url
    assert info["base_commit"] == git("rev-parse", "HEAD", cwd=repo).strip()
    assert (Path(info["workspace"]) / "file.txt").read_text() == "one\n"
    am.wait_log(agent_id, "url-ok")
    assert am.info(agent_id)["status"] == "running"


def test_spawn_from_relative_local_path(am, repo):
    res = subprocess.run(
        [sys.executable, "-m", "am", "spawn", "source", "--cmd", "true"],
        cwd=repo.parent,
        env=am.env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    info = am.info(res.stdout.splitlines()[-1])
    assert info["source"] == str(repo)  # recorded absolute
    assert (Path(info["workspace"]) / "README").read_text() == "hello\n"


def test_worktree(am, repo):
    cmd = (
        f"echo wt > wt.txt && git add wt.txt && {GITC} commit -qm worktree-commit"
        " && printf '%s-%s\\n' WT done; sleep 60"
    )
    agent_id = am.spawn(repo, "--worktree", "--cmd", cmd)
    info = am.info(agent_id)
    ws = Path(info["workspace"])
    assert info["branch"] == f"am/{agent_id}"
    assert str(ws) in git("worktree", "list", "--porcelain", cwd=repo)
    assert (ws / ".git").is_file()  # a worktree, not a clone
    am.wait_log(agent_id, "WT-done")
    # the agent's commit is in the user's repository, on the agent's branch
    assert "worktree-commit" in git("log", "--format=%s", f"am/{agent_id}", cwd=repo)

    am("stop", agent_id)
    am("rm", agent_id)  # nothing unsaved: the commit lives on a branch of the source
    assert not ws.exists()
    assert am.list() == []
    assert str(ws) not in git("worktree", "list", "--porcelain", cwd=repo)
    assert "worktree-commit" in git("log", "--format=%s", f"am/{agent_id}", cwd=repo)


def test_exit_code_is_recorded(am, repo):
    agent_id = am.spawn(repo, "--cmd", "exit 3")
    info = am.wait_status(agent_id, "exited")
    assert info["exit_code"] == 3
    [entry] = am.list()
    assert entry["status"] == "exited" and entry["exit_code"] == 3
    assert "exited (3)" in am("list").stdout
    assert json.loads(am("list", "--json", "--status", "exited").stdout)[0]["id"] == agent_id
    assert json.loads(am("list", "--json", "--status", "running").stdout) == []


def test_exit_by_signal(am, repo):
    # The shell kills itself with SIGTERM: recorded shell-style as 128 + 15.
    agent_id = am.spawn(repo, "--cmd", "kill -TERM $$")
    info = am.wait_status(agent_id, "exited")
    assert info["exit_code"] == 143


def test_session_killed_from_outside(am, repo):
    agent_id = am.spawn(repo, "--cmd", "sleep 60")
    assert am.info(agent_id)["status"] == "running"
    subprocess.run(["tmux", "kill-session", "-t", f"=am-{agent_id}:"], check=True)
    info = am.info(agent_id)
    assert info["status"] == "exited"  # not 'running', and not silently 'stopped'
    # A stopped agent with no unsaved work can be removed without --force.
    am("stop", agent_id)
    am("rm", agent_id)
    assert am.list() == []


def test_names_with_a_dot_get_sessions_of_their_own(am, repo):
    """tmux makes a '.' of a session's name '_': agent a.b's session is am-a,b, apart from
    a_b's, and each command reaches its own agent's."""
    # control: the name as it is becomes another agent's session in tmux's hands
    probe = f"am-probe{uuid.uuid4().hex[:6]}"
    subprocess.run(["tmux", "new-session", "-d", "-s", f"{probe}.x", "sleep 30"], check=True)
    assert has_session(f"{probe}_x")
    subprocess.run(["tmux", "kill-session", "-t", f"={probe}_x:"], check=True)

    assert am.spawn(repo, "--name", "a.b", "--cmd", "read x; echo dot-$x; sleep 60") == "a.b"
    assert am.spawn(repo, "--name", "a_b", "--cmd", "read x; echo under-$x; sleep 60") == "a_b"
    assert am.info("a.b")["session"] == "am-a,b" and am.info("a_b")["session"] == "am-a_b"
    assert [a["status"] for a in am.list()] == ["running", "running"]
    am("send", "a.b", "one")
    am.wait_log("a.b", "dot-one")
    am("rm", "--force", "a.b")
    assert not has_session("am-a,b") and has_session("am-a_b")
    assert am.info("a_b")["status"] == "running"
    am("send", "a_b", "two")
    am.wait_log("a_b", "under-two")


def test_a_record_of_a_dotted_name_in_the_old_form_starts_under_the_new(am, repo):
    """A record made before '.' became ',' names session am-a.b: its start runs am-a,b and
    records it, so that stop and rm find the session."""
    am.spawn(repo, "--name", "a.b", "--cmd", "sleep 60")
    am("stop", "a.b")
    state = am.home / "state" / "state.json"
    data = json.loads(state.read_text())
    data["agents"]["a.b"]["session"] = "am-a.b"
    state.write_text(json.dumps(data))
    assert am.info("a.b")["invalid"] is None  # still a valid record
    am("start", "a.b")
    assert am.info("a.b")["session"] == "am-a,b" and has_session("am-a,b")
    am("stop", "a.b")
    assert not has_session("am-a,b") and am.info("a.b")["status"] == "stopped"


def am_command(am) -> tuple[list[str], dict[str, str]]:
    """The am CLI as a terminal's command, with this test's AM_HOME."""
    return [sys.executable, "-m", "am"], {"AM_HOME": str(am.home), "PATH": os.environ["PATH"]}


def test_attach_through_tmux(am, repo, tmp_path):
    agent_id = am.spawn(repo, "--cmd", "read x; echo got-$x; sleep 60")
    cmd, env = am_command(am)
    # A plain terminal running `am attach` (TMUX unset, so am attaches rather than switches).
    term = Terminal(tmp_path, [*cmd, "attach", agent_id], env)
    try:
        wait_for(lambda: clients_of(f"am-{agent_id}"), "am attach to attach a client")
        term.keys("hello-42", literal=True)
        term.keys("Enter")
        am.wait_log(agent_id, "got-hello-42")

        term.keys("C-b", "d")
        code, err = term.result()
        assert (code, err) == (0, ""), err  # detaching is a clean end of am attach
        assert not clients_of(f"am-{agent_id}")
        assert am.info(agent_id)["status"] == "running"
        assert has_session(f"am-{agent_id}")
    finally:
        term.close()


def test_attach_from_a_detached_session_moves_no_other_client(am, repo, tmp_path):
    """A script in a session nobody watches runs am attach: it attaches in its own pane, and the
    terminal of whoever else uses this tmux server stays where it was."""
    agent_id = am.spawn(repo, "--cmd", "read x; echo got-$x; sleep 60")
    cmd, env = am_command(am)
    other = Terminal(tmp_path, ["sleep", "600"])  # someone's session, and their terminal on it
    watcher = Terminal(tmp_path, ["tmux", "attach-session", "-t", f"={other.name}:"])
    go = tmp_path / "go"
    script = Terminal(tmp_path, [*cmd, "attach", agent_id], env, wait_file=go, keep_tmux=True)
    try:
        wait_for(lambda: clients_of(other.name), "the other user's client")
        victim = pane_tty(watcher.name)
        assert clients_of(other.name) == [victim] and not clients_of(script.name)
        go.touch()
        wait_for(lambda: clients_of(f"am-{agent_id}"), "am attach to attach a client")
        assert clients_of(f"am-{agent_id}") == [pane_tty(script.name)]  # its own, nested
        assert clients_of(other.name) == [victim]  # not moved
        script.keys("hello-nested", literal=True)
        script.keys("Enter")
        am.wait_log(agent_id, "got-hello-nested")
        script.keys("C-b", "d")
        assert script.result() == (0, "")
        assert clients_of(other.name) == [victim]
        assert am.info(agent_id)["status"] == "running"
    finally:
        for t in (script, watcher, other):
            t.close()


def test_attach_inside_tmux_switches_only_the_callers_client(am, repo, tmp_path):
    agent_id = am.spawn(repo, "--cmd", "sleep 60")
    cmd, env = am_command(am)
    other = Terminal(tmp_path, ["sleep", "600"])
    go = tmp_path / "go"
    script = Terminal(tmp_path, [*cmd, "attach", agent_id], env, wait_file=go, keep_tmux=True)
    mine = Terminal(tmp_path, ["tmux", "attach-session", "-t", f"={script.name}:"])
    victim = Terminal(tmp_path, ["tmux", "attach-session", "-t", f"={other.name}:"])
    try:
        wait_for(lambda: clients_of(script.name) and clients_of(other.name), "both clients")
        go.touch()
        assert script.result() == (0, "")  # switching returns at once
        assert clients_of(f"am-{agent_id}") == [pane_tty(mine.name)]
        assert clients_of(other.name) == [pane_tty(victim.name)]
    finally:
        for t in (victim, mine, script, other):
            t.close()


def test_attach_refuses_agent_that_is_not_running(am, repo):
    agent_id = am.spawn(repo, "--cmd", "true")
    am.wait_status(agent_id, "exited")
    line = assert_am_error(am("attach", agent_id, check=False))
    assert "not running" in line


def test_logs_tail(am, repo):
    agent_id = am.spawn(
        repo, "--cmd", "for i in 1 2 3 4 5 6 7 8 9 10; do echo line-$i; done; sleep 60"
    )
    am.wait_log(agent_id, "line-10")
    out = am("logs", "--tail", "3", agent_id).stdout
    assert [line.strip() for line in out.splitlines()] == ["line-8", "line-9", "line-10"]
    assert am("logs", "--tail", "0", agent_id).stdout == ""
    full = am("logs", agent_id).stdout
    assert [f"line-{i}" for i in range(1, 11)] == [
        ln.strip() for ln in full.splitlines() if ln.startswith("line-")
    ]
    assert_am_error(am("logs", "--tail", "-1", agent_id, check=False))


def test_logs_follow_ends_with_the_agent(am, repo):
    agent_id = am.spawn(repo, "--cmd", "echo first-f; sleep 2; echo last-f")
    res = am("logs", "-f", agent_id, timeout=60)
    assert "first-f" in res.stdout and "last-f" in res.stdout
    assert am.info(agent_id)["status"] == "exited"
    # the log outlives the session
    assert "last-f" in am("logs", agent_id).stdout
    # following an agent that has already ended returns at once with the whole log
    assert "last-f" in am("logs", "-f", agent_id, timeout=60).stdout


def test_env_reaches_the_agent_and_no_file(am, repo):
    secret = f"s3cret-{uuid.uuid4().hex}"
    agent_id = am.spawn(
        repo,
        "--env",
        "AM_T_SECRET",
        "--env",
        "AM_T_PLAIN=lit",
        "--cmd",
        'echo "v=[$AM_T_SECRET] p=[$AM_T_PLAIN]"; sleep 60',
        env={"AM_T_SECRET": secret},
    )
    am.wait_log(agent_id, f"v=[{secret}] p=[lit]")
    files = [
        p
        for p in am.home.rglob("*")
        if p.is_file() and not p.is_relative_to(am.home / "agents") and not p.name.endswith(".log")
    ]
    assert files, "no state written?"
    for p in files:
        assert secret.encode() not in p.read_bytes(), f"the value was written to {p}"
    assert am.info(agent_id)["env_names"] == ["AM_T_SECRET", "AM_T_PLAIN"]


def test_clean_removes_only_agents_without_unsaved_work(am, repo):
    idle = am.spawn(repo, "--cmd", "true")
    busy = am.spawn(repo, "--cmd", "echo work > w.txt")
    running = am.spawn(repo, "--cmd", "sleep 60")
    am.wait_status(idle, "exited")
    am.wait_status(busy, "exited")
    busy_ws = Path(am.info(busy)["workspace"])
    assert (busy_ws / "w.txt").exists()
    am("clean")
    assert sorted(a["id"] for a in am.list()) == sorted([busy, running])
    assert (busy_ws / "w.txt").exists()
    assert am.info(running)["status"] == "running"
    res = am("clean", "--all")
    assert [a["id"] for a in am.list()] == [running]
    assert not busy_ws.exists()
    assert re.search(r"/\S+\.tar\.gz", res.stderr)  # its work was snapshotted first


def test_stop_and_rm_take_several_ids(am, repo):
    """Several agents at once: every id is known and every removal allowed before anything
    happens (a mistyped id stops nothing; one agent with unsaved work deletes none), then each
    goes in turn."""
    a, b, c = (am.spawn(repo, "--cmd", "sleep 60") for _ in range(3))
    assert "nope0000" in assert_am_error(am("stop", a, "nope0000", check=False))
    assert {e["status"] for e in am.list()} == {"running"}  # not even a
    res = am("stop", a, b, a)  # twice named, stopped once
    assert res.stderr.count(f"Stopped {a}") == 1 and f"Stopped {b}" in res.stderr
    assert {e["id"]: e["status"] for e in am.list()} == {a: "stopped", b: "stopped", c: "running"}
    ws = {e["id"]: Path(e["workspace"]) for e in am.list()}
    (ws[b] / "work.txt").write_text("unsaved\n")
    res = am("rm", a, b, check=False)  # b holds unsaved work: neither goes
    assert f"agent {b} has unsaved work" in assert_am_error(res)
    assert ws[a].is_dir() and ws[b].is_dir()
    assert sorted(e["id"] for e in am.list()) == sorted([a, b, c])
    res = am("rm", a, c, check=False)  # c runs: neither goes
    assert f"agent {c} is running" in assert_am_error(res)
    assert ws[a].is_dir()
    res = am("rm", "nope0001", a, "nope0002", check=False)  # each unknown id named
    assert "nope0002" in assert_am_error(res) and "nope0001" in res.stderr
    assert ws[a].is_dir()
    # A removal that fails half-way (a folder where a's last log part would be) says so on
    # its own line; the others still go.
    stray = am.home / "state" / "logs" / f"{a}.log.1.tmp"
    stray.mkdir(parents=True)
    (stray / "x").write_text("x")
    res = am("rm", a, b, c, "--force", check=False)
    assert f"agent {a} was not fully removed" in assert_am_error(res)
    assert f"Removed {b}" in res.stderr and f"Removed {c}" in res.stderr
    assert [e["id"] for e in am.list()] == [a]
    stray.joinpath("x").unlink()
    stray.rmdir()
    am("rm", a, "--force")
    assert am.list() == [] and not any(w.exists() for w in ws.values())


def test_count_spawns_several_alike(am, repo):
    res = am("spawn", repo, "--count", "3", "--cmd", "echo READY-now; sleep 60")
    ids = res.stdout.split()
    assert len(ids) == len(set(ids)) == 3 and all(ID_RE.match(i) for i in ids), res.stdout
    assert res.stdout == "".join(f"{i}\n" for i in ids)  # one id a line, nothing else
    assert "Spawning 3 agents, 3 at a time" in res.stderr
    entries = {e["id"]: e for e in am.list()}
    assert sorted(entries) == sorted(ids)
    assert {e["status"] for e in entries.values()} == {"running"}
    assert len({e["workspace"] for e in entries.values()}) == 3  # each its own clone
    assert {e["branch"] for e in entries.values()} == {f"am/{i}" for i in ids}
    for agent_id in ids:
        assert has_session(f"am-{agent_id}")
        am.wait_log(agent_id, "READY-")


def test_count_refuses_what_names_one_agent_and_counts_out_of_range(am, repo):
    for flags in (["--branch", "mine"], ["--publish", "8080:80"]):
        res = am("spawn", repo, "--count", "2", *flags, "--cmd", "true", check=False)
        assert f"{flags[0]} applies to one agent" in assert_am_error(res)
    for bad in ("0", "101", "two", "-1", "1.5"):
        res = am("spawn", repo, "--count", bad, "--cmd", "true", check=False)
        assert "--count" in assert_am_error(res)
    assert_nothing_made(am.home)


def test_count_whose_spawns_all_fail_says_so_once_and_leaves_nothing(am, repo):
    res = am("spawn", repo, "--count", "3", "--base", "no-such-ref", "--cmd", "true", check=False)
    last = assert_am_error(res)
    assert last.startswith("am: error: 3 of 3 agents are not running; 3 did not start"), last
    assert last.endswith("the ids of the 0 made are on standard output")
    assert res.stdout == ""
    assert res.stderr.count("no-such-ref") == 3  # each spawn's own error, once
    assert_nothing_made(am.home)


def test_count_with_a_name_numbers_the_agents(am, repo):
    res = am("spawn", repo, "--count", "3", "--name", "batch", "--cmd", "sleep 60")
    assert sorted(res.stdout.split()) == ["batch-1", "batch-2", "batch-3"], res.stdout
    assert sorted(a["id"] for a in am.list()) == ["batch-1", "batch-2", "batch-3"]
    before = state_agents(am.home)
    # one of the names taken: none is made
    res = am("spawn", repo, "--count", "3", "--name", "batch", "--cmd", "true", check=False)
    assert "an agent named 'batch-1' already exists" in assert_am_error(res)
    # a name that is valid alone, but not with its number
    res = am("spawn", repo, "--count", "2", "--name", "n" * 62, "--cmd", "true", check=False)
    assert f"invalid agent name '{'n' * 62}-1'" in assert_am_error(res)
    assert_nothing_made(am.home, before)


def test_count_with_one_failure_keeps_the_others_and_says_which(am, repo):
    (am.home / "agents" / "part-2").mkdir(parents=True)  # in the way of the second agent
    res = am("spawn", repo, "--count", "3", "--name", "part", "--cmd", "sleep 60", check=False)
    last = assert_am_error(res)
    assert last.startswith("am: error: 1 of 3 agents are not running; 1 did not start"), last
    assert "am: error: agent part-2: workspace" in res.stderr  # its own error, named
    assert sorted(res.stdout.split()) == ["part-1", "part-3"]  # the ids of those made
    agents = state_agents(am.home)
    assert sorted(agents) == ["part-1", "part-3"]
    assert {a["status"] for a in agents.values()} == {"running"}
    assert sorted(p.name for p in (am.home / "agents").iterdir()) == ["part-1", "part-2", "part-3"]
    assert not any((am.home / "agents" / "part-2").iterdir())  # what was there, untouched


def test_agent_starts_on_a_whole_checkout_and_its_base_is_recorded(am, tmp_path):
    """The spawn starts a tmux agent's session while git still checks its workspace out; its
    supervisor waits for the spec, written once the checkout is done (the wait itself:
    tests/unit/test_handover.py). The agent's first look finds every file of the branch and
    a clean tree, and the spawn records the commit it started from."""
    source = tmp_path / "many"
    source.mkdir()
    git("init", "-q", "-b", "main", cwd=source)
    for d in range(4):
        folder = source / f"d{d}"
        folder.mkdir()
        for f in range(500):
            (folder / f"f{f}.txt").write_text(f"{d} {f}\n")
    git("add", ".", cwd=source)
    git("commit", "-qm", "many", cwd=source)
    count = "find . -path ./.git -prune -o -type f -print | wc -l; git status --porcelain | wc -l"
    agent = am.spawn(source, "--cmd", f"echo FILES $({count} | paste -sd' ')")
    assert am.wait_status(agent, "exited")["exit_code"] == 0
    assert "FILES 2000 0" in am("logs", agent).stdout
    assert am.info(agent)["base_commit"] == git("rev-parse", "HEAD", cwd=source).strip()

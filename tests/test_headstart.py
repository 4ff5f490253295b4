"""A spawn's head start (am/headstart.py): its clone and checkout begin before the parser and
the plan, and a spawn that takes them makes exactly what it would have made without."""

import json
import os
import signal
import subprocess

import pytest
from helpers import assert_nothing_made, git, many_files, state_agents, wait_for


def debug_spawn(am, *args, check=True):
    """'am spawn ARGS' with every command am runs traced (AM_DEBUG)."""
    return am("spawn", *args, env={"AM_DEBUG": "1"}, check=check)


def clones(res) -> list[str]:
    """Where each 'git clone' of a traced am command cloned to."""
    return [
        line.split(" [env")[0].split()[-1]
        for line in res.stderr.splitlines()
        if line.startswith("am: debug: git clone ")
    ]


def leftovers(am) -> list[str]:
    return sorted(n for n in os.listdir(am.home / "agents") if n.startswith(".spawn-"))


def test_a_spawn_takes_its_head_start_once_the_home_has_its_workspaces(am, repo):
    first = debug_spawn(am, repo, "--cmd", "sleep 300")
    agent1 = first.stdout.split()[-1]
    # A new home: the first spawn clones in its workspace (it makes no folder for nothing).
    assert clones(first) == [str(am.home / "agents" / agent1)]

    res = debug_spawn(am, repo, "--cmd", "sleep 300")
    agent = res.stdout.split()[-1]
    (early,) = clones(res)
    assert os.path.basename(os.path.dirname(early)).startswith(".spawn-"), early
    ws = am.home / "agents" / agent
    info = am.info(agent)
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    assert info["workspace"] == str(ws) and info["branch"] == f"am/{agent}"
    assert info["base_commit"] == head and info["status"] == "running"
    assert git("symbolic-ref", "HEAD", cwd=ws).strip() == f"refs/heads/am/{agent}"
    assert git("rev-parse", "HEAD", cwd=ws).strip() == head
    assert git("status", "--porcelain", cwd=ws) == ""
    assert leftovers(am) == []
    # What the spawn without a head start made, file for file.
    assert sorted(os.listdir(ws)) == sorted(os.listdir(am.home / "agents" / agent1))


def test_a_named_spawn_with_a_branch_takes_it_too(am, repo):
    (am.home / "agents").mkdir(mode=0o700, parents=True)
    res = debug_spawn(am, repo, "--name", "n1", "--branch", "feature/x", "--cmd", "sleep 300")
    assert ".spawn-" in clones(res)[0] and len(clones(res)) == 1
    ws = am.home / "agents" / "n1"
    assert git("symbolic-ref", "HEAD", cwd=ws).strip() == "refs/heads/feature/x"
    assert am.info("n1")["branch"] == "feature/x" and leftovers(am) == []


@pytest.mark.parametrize(
    "args, name, branch, at",
    [
        # abbreviations argparse reads as --base and --name, which the guess cannot see
        (["--bas", "side"], None, None, "side"),
        (["--nam", "ab"], "ab", "am/ab", "main"),
    ],
    ids=["base", "name"],
)
def test_a_guess_the_plan_does_not_confirm_is_thrown_away(am, repo, args, name, branch, at):
    (am.home / "agents").mkdir(mode=0o700, parents=True)
    res = debug_spawn(am, repo, *args, "--cmd", "sleep 300")
    agent = res.stdout.split()[-1]
    assert name in (None, agent)
    ws = am.home / "agents" / agent
    # The head start cloned first; the spawn, finding it is not what it plans, clones again.
    early, made = clones(res)
    assert ".spawn-" in early and made == str(ws)
    commit = git("rev-parse", at, cwd=repo).strip()
    assert am.info(agent)["base_commit"] == commit
    assert git("rev-parse", "HEAD", cwd=ws).strip() == commit
    assert git("symbolic-ref", "HEAD", cwd=ws).strip() == f"refs/heads/{branch or 'am/' + agent}"
    assert leftovers(am) == []


@pytest.mark.parametrize(
    "args, code",
    [
        (["--bogus"], 2),  # argparse's error, after the clone began
        (["--memory", "1g"], 1),  # the plan's: a container limit for a tmux agent
        (["--cmd", "x", "--agent", "nosuch"], 1),
    ],
    ids=["parser", "plan", "profile"],
)
def test_a_spawn_that_fails_after_its_head_start_leaves_nothing(am, repo, args, code):
    (am.home / "agents").mkdir(mode=0o700, parents=True)
    res = debug_spawn(am, repo, *args, check=False)
    assert ".spawn-" in clones(res)[0]  # it had begun (the trace of a call ended, or killed)
    said = [line for line in res.stderr.splitlines() if not line.startswith("am: debug:")]
    assert res.returncode == code and said[-1].startswith("am: error:"), res.stderr
    assert "Traceback" not in res.stderr
    assert_nothing_made(am.home)


def test_count_spawns_share_no_head_start(am, repo):
    (am.home / "agents").mkdir(mode=0o700, parents=True)
    res = am("spawn", repo, "--count", "2", "--cmd", "sleep 300")
    made = res.stdout.split()
    assert len(made) == 2 and leftovers(am) == []
    for agent in made:
        assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=am.home / "agents" / agent).strip() == (
            f"am/{agent}"
        )


def test_doctor_removes_a_killed_spawns_head_start_only_once_git_has_ended(am, tmp_path):
    """The head start's git holds its folder's lock too: killed with the spawn's process alone
    (git goes on), the folder is left alone while git writes there, and removed after."""
    source = many_files(tmp_path)
    agents = am.home / "agents"
    agents.mkdir(mode=0o700, parents=True)
    p = subprocess.Popen(
        [*am.argv, "spawn", str(source), "--cmd", "sleep 300"],
        env=am.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(
        lambda: (
            any((f / "ws" / "d0").exists() for f in agents.glob(".spawn-*")) or p.poll() is not None
        ),
        "the head start's checkout",
        60,
    )
    assert p.poll() is None
    (folder,) = agents.glob(".spawn-*")

    def drift() -> list[dict]:
        return json.loads(am("doctor", "--json", check=False).stdout)["drift"]

    def kinds() -> list[str]:
        return [d["kind"] for d in drift()]

    p.send_signal(signal.SIGSTOP)
    assert "leftover-spawn" not in kinds()  # at work: held
    p.kill()
    p.wait()
    # Its checkout goes on without it, holding the lock; once it has ended the folder is a
    # dead spawn's (before, doctor listed it at once).
    wait_for(lambda: "leftover-spawn" in kinds(), "the head start's git to end", 120)
    assert (folder / "ws" / ".git" / "index").exists()  # git finished its checkout first
    fixed = json.loads(am("doctor", "--fix", "--json", check=False).stdout)["drift"]
    assert {d["kind"]: d["fixed"] for d in fixed}.get("leftover-spawn") == "removed", fixed
    assert not folder.exists() and drift() == []
    assert state_agents(am.home) == {} or all(
        r["status"] != "starting" for r in state_agents(am.home).values()
    )


@pytest.mark.container
def test_a_container_agent_never_gets_a_clone_that_shares_the_sources_files(am, repo, engine):
    """A tmux agent's clone hard-links the source's object files; a container agent's workspace
    is handed to the agent's uid as root (chown), which would hand the user's own files over
    with it. '--cont' is argparse's --container, which the guess cannot see: it guesses a tmux
    agent, and the spawn must throw that clone away."""
    objects = repo / ".git" / "objects"
    before = {p: p.stat().st_uid for p in objects.rglob("*")}
    # Control: a clone with hard links, handed over as a root spawn hands a workspace over,
    # takes the source's files with it.
    linked = repo.parent / "linked"
    git("clone", "-q", "--local", str(repo), str(linked), cwd=repo.parent)
    shared = [p for p in (linked / ".git" / "objects").rglob("*") if p.is_file()]
    assert any(p.stat().st_nlink > 1 for p in shared)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "-P", "-h", "12345", str(linked)], check=True)
        assert {p: p.stat().st_uid for p in objects.rglob("*")} != before
        subprocess.run(["chown", "-R", "-P", "-h", "0", str(repo), str(linked)], check=True)
        before = {p: p.stat().st_uid for p in objects.rglob("*")}

    (am.home / "agents").mkdir(mode=0o700, parents=True)
    res = debug_spawn(am, repo, "--cont", "--runtime", engine, "--cmd", "sleep 300")
    agent = res.stdout.split()[-1]
    ws = am.home / "agents" / agent
    early, made = clones(res)
    assert ".spawn-" in early and made == str(ws)  # thrown away, cloned again
    assert am.info(agent)["mode"] == "container"
    assert all(p.stat().st_nlink == 1 for p in (ws / ".git" / "objects").rglob("*") if p.is_file())
    assert {p: p.stat().st_uid for p in objects.rglob("*")} == before
    assert leftovers(am) == []

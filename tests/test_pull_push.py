"""The agent's work out: am log, am diff --stat, am pull, am push, and am rm afterwards.

Stand-in agents are shells (``--cmd ... exec sh``) that the test drives with ``am send``, so the
commits are made by the agent itself, in tmux mode and inside containers on docker and podman.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_am_error, git

SHELL = (
    "export GIT_AUTHOR_NAME=agent GIT_AUTHOR_EMAIL=agent@example.invalid "
    "GIT_COMMITTER_NAME=agent GIT_COMMITTER_EMAIL=agent@example.invalid && "
    "echo READY-$((1+1)) && exec sh"
)


class Shell:
    """An agent that is a shell: each step typed with am send, waited for by its mark."""

    def __init__(self, am, source, *mode):
        self.am, self.n = am, 0
        self.id = am.spawn(source, *mode, "--cmd", SHELL)
        am.wait_log(self.id, "READY-2", timeout=120)

    def do(self, script: str) -> None:
        self.n += 1
        # the terminal echoes the typed $((n+0)); only the shell's output reads MARK-n
        self.am("send", self.id, f"{script}; echo MARK-$(({self.n}+0))")
        self.am.wait_log(self.id, f"MARK-{self.n}", timeout=120)

    def commit(self, *names: str) -> None:
        self.do(
            " && ".join(
                f"echo {n} >> work.txt && git add work.txt && git commit -qm {n}" for n in names
            )
        )

    def commits(self) -> list[dict]:
        return json.loads(self.am("log", self.id, "--json").stdout)


def branch_commits(repo: Path, branch: str, base: str) -> list[str]:
    return git("rev-list", f"{base}..{branch}", cwd=repo).split()


def pull(am, agent_id, *args, check=True):
    return am("pull", agent_id, *args, check=check)


def check_pull(am, repo: Path, mode: tuple) -> None:
    base = git("rev-parse", "HEAD", cwd=repo).strip()
    agent = Shell(am, repo, *mode)
    branch = f"am/{agent.id}"
    agent.commit("one", "two")

    # what the agent did, read the safe way
    log = agent.commits()
    assert [c["message"] for c in log] == ["two\n", "one\n"]
    assert log[0]["author"]["email"] == "agent@example.invalid" and log[1]["parents"] == [base]
    oneline = am("log", agent.id, "--oneline").stdout
    assert oneline.splitlines() == [f"{log[0]['commit'][:7]} two", f"{log[1]['commit'][:7]} one"]
    text = am("log", agent.id).stdout
    assert f"commit {log[0]['commit']}" in text and "Author: agent <agent@example.invalid>" in text
    assert "work.txt | 2 ++" in am("diff", agent.id, "--stat").stdout

    # pull: the branch holds exactly the agent's commits
    res = pull(am, agent.id)
    assert res.stdout.strip() == log[0]["commit"]
    assert f"Created {branch} with 2 commit(s) in {repo}" in res.stderr
    assert branch_commits(repo, branch, base) == [c["commit"] for c in log]
    assert git("rev-parse", branch, cwd=repo).strip() == log[0]["commit"]
    assert "warning" not in res.stderr

    # more commits: a fast-forward; an uncommitted file is reported, not pulled
    agent.commit("three")
    agent.do("echo draft > draft.txt")
    res = pull(am, agent.id)
    head = agent.commits()[0]["commit"]
    assert (
        f"Fast-forwarded {branch} by 1 commit(s)" in res.stderr and "3 since its base" in res.stderr
    )
    assert "1 uncommitted or untracked file(s) that were not pulled: see am diff" in res.stderr
    assert git("rev-parse", branch, cwd=repo).strip() == head
    assert "draft.txt" not in git("ls-tree", "--name-only", branch, cwd=repo).split()
    assert "is up to date" in pull(am, agent.id).stderr

    # a rewritten history is refused without --force, and nothing changes
    agent.do("rm draft.txt && git reset -q --hard HEAD~2")
    agent.commit("rewritten")
    line = assert_am_error(pull(am, agent.id, check=False))
    assert "history was rewritten" in line and "--force" in line
    assert git("rev-parse", branch, cwd=repo).strip() == head
    res = pull(am, agent.id, "--force")
    rewritten = agent.commits()[0]["commit"]
    assert git("rev-parse", branch, cwd=repo).strip() == rewritten
    assert f"Forced {branch}" in res.stderr
    assert branch_commits(repo, branch, base) == [c["commit"] for c in agent.commits()]

    # one more commit, not pulled: am rm counts it
    agent.commit("four")
    four = agent.commits()[0]["commit"]
    am("stop", agent.id)
    line = assert_am_error(am("rm", agent.id, check=False))
    assert "unsaved work: 1 commit(s) the source does not have" in line
    # into another branch, from a stopped agent (a throwaway sandbox for a container agent)
    res = pull(am, agent.id, "--branch", "review/it")
    assert git("rev-parse", "review/it", cwd=repo).strip() == four
    assert git("rev-parse", branch, cwd=repo).strip() == rewritten
    # am rm: nothing unsaved any more, and the pulled branches stay
    am("rm", agent.id)
    assert not (am.home / "agents" / agent.id).exists()
    assert git("rev-parse", "review/it", cwd=repo).strip() == four


def test_pull_tmux(am, repo):
    check_pull(am, repo, ())


@pytest.mark.container
def test_pull_container(am, repo, engine):
    check_pull(am, repo, ("--container", "--runtime", engine))


def check_push(am, repo: Path, tmp_path: Path, mode: tuple) -> None:
    remote = tmp_path / "remote.git"
    git("clone", "-q", "--bare", repo, remote)
    url = f"file://{remote}"
    base = git("rev-parse", "HEAD", cwd=repo).strip()
    agent = Shell(am, url, *mode)
    branch = f"am/{agent.id}"
    agent.commit("pushed")
    am("stop", agent.id)
    line = assert_am_error(am("rm", agent.id, check=False))
    assert "1 commit(s) the source does not have" in line and f"am push {agent.id}" in line
    refs_before = sorted(
        p.name for p in (am.home / "agents" / agent.id / ".git").rglob("*") if "refs" in p.parts
    )

    res = am("push", agent.id)
    head = agent.commits()[0]["commit"]
    assert res.stdout.strip() == head and f"Pushed {head[:12]} to {url} as {branch}" in res.stderr
    assert git("rev-list", f"{base}..{branch}", cwd=remote).split() == [head]
    assert am.info(agent.id)["pushed"] == [head]
    # another remote, another branch name
    other = tmp_path / "other.git"
    git("init", "-q", "--bare", other)
    am("push", agent.id, "--remote", f"file://{other}", "--branch", "feature/x")
    assert git("rev-parse", "feature/x", cwd=other).strip() == head
    am("push", agent.id, "--remote", other, "--branch", "feature/y")  # its folder's path
    assert git("rev-parse", "feature/y", cwd=other).strip() == head
    assert "not a URL" in assert_am_error(am("push", agent.id, "--remote", "origin", check=False))
    # the workspace was only read: no ref, no remote-tracking ref was written there
    assert (
        sorted(
            p.name for p in (am.home / "agents" / agent.id / ".git").rglob("*") if "refs" in p.parts
        )
        == refs_before
    )
    # pushed to its own URL: am rm no longer counts the commit
    am("rm", agent.id)


def test_push_tmux(am, repo, tmp_path):
    check_push(am, repo, tmp_path, ())


@pytest.mark.container
def test_push_container(am, repo, tmp_path, engine):
    check_push(am, repo, tmp_path, ("--container", "--runtime", engine))


def test_push_from_a_local_source_goes_through_its_remote(am, repo, tmp_path):
    remote = tmp_path / "origin.git"
    git("init", "-q", "--bare", remote)
    git("remote", "add", "origin", remote, cwd=repo)
    agent = Shell(am, repo)
    agent.commit("local")
    head = agent.commits()[0]["commit"]
    res = am("push", agent.id)
    assert res.stdout.strip() == head
    # pulled into the source first, then pushed from there
    assert git("rev-parse", f"am/{agent.id}", cwd=repo).strip() == head
    assert git("rev-parse", f"am/{agent.id}", cwd=remote).strip() == head
    line = assert_am_error(am("push", agent.id, "--remote", "nowhere", check=False))
    assert "no remote 'nowhere'" in line
    # a repository's folder, as git itself takes it; a path with a space in it
    folder = tmp_path / "by path.git"
    git("init", "-q", "--bare", folder)
    assert am("push", agent.id, "--remote", folder).stdout.strip() == head
    assert git("rev-parse", f"am/{agent.id}", cwd=folder).strip() == head
    # a path, not a file:// URL, which git percent-decodes: the control pushes "d%41" into "dA"
    for name in ("d%41", "dA"):
        git("init", "-q", "--bare", tmp_path / name)
    git("push", "-q", f"file://{tmp_path / 'd%41'}", "HEAD:refs/heads/control", cwd=repo)
    assert git("branch", "--list", "control", cwd=tmp_path / "dA").strip() == "control"
    am("push", agent.id, "--remote", tmp_path / "d%41")
    assert git("rev-parse", f"am/{agent.id}", cwd=tmp_path / "d%41").strip() == head
    assert f"am/{agent.id}" not in git("branch", "--list", cwd=tmp_path / "dA")

    # a name that is no remote is no folder either, though one of that name is where am runs;
    # written as a path, it is
    def push_from(where, remote):
        argv = [sys.executable, "-m", "am", "push", agent.id, "--remote", remote, "--branch", "y"]
        return subprocess.run(argv, cwd=where, env=am.env, capture_output=True, text=True)

    assert "no remote 'dA'" in assert_am_error(push_from(tmp_path, "dA"))
    assert push_from(tmp_path, "./dA").returncode == 0
    assert git("rev-parse", "y", cwd=tmp_path / "dA").strip() == head
    am("stop", agent.id)
    am("rm", agent.id)


def test_pull_of_a_worktree_agent_says_the_branch_is_there(am, repo):
    agent = Shell(am, repo, "--worktree")
    agent.commit("in-place")
    head = agent.commits()[0]["commit"]
    res = pull(am, agent.id)
    assert "already on" in res.stderr and "nothing to pull" in res.stderr
    assert res.stdout.strip() == head
    assert git("rev-parse", f"am/{agent.id}", cwd=repo).strip() == head


def test_pull_errors_are_clear_and_change_nothing(am, repo, tmp_path):
    agent = Shell(am, repo)
    res = pull(am, agent.id)
    assert "no commits since its base: nothing to pull" in res.stderr
    assert git("branch", "--list", f"am/{agent.id}", cwd=repo).strip() == ""
    for name in ("-x", "HEAD", "a..b"):
        assert "invalid branch name" in assert_am_error(
            pull(am, agent.id, f"--branch={name}", check=False)
        )
    assert "no such agent" in assert_am_error(pull(am, "nobody", check=False))
    agent.commit("c")
    # the branch checked out in the user's worktree is never moved under them
    git("switch", "-q", "-c", f"am/{agent.id}", cwd=repo)
    line = assert_am_error(pull(am, agent.id, check=False))
    assert f"am/{agent.id} is checked out in {repo}" in line and "--branch" in line
    git("switch", "-q", "main", cwd=repo)
    git("branch", "-D", f"am/{agent.id}", cwd=repo)
    # a source that is gone
    moved = tmp_path / "moved"
    repo.rename(moved)
    line = assert_am_error(pull(am, agent.id, check=False))
    assert "is gone" in line
    moved.rename(repo)
    assert "Created" in pull(am, agent.id).stderr


@pytest.mark.parametrize("source", ["path", "url"])
def test_a_head_that_is_a_tag_object_is_refused_and_nothing_moves(am, repo, tmp_path, source):
    if source == "url":
        remote = tmp_path / "remote.git"
        git("clone", "-q", "--bare", repo, remote)
    agent = Shell(am, repo if source == "path" else f"file://{remote}")
    agent.commit("tagged")
    # HEAD names an annotated tag object: it peels to a commit, but is none
    agent.do("git tag -a -m t t1 && git rev-parse t1 > .git/HEAD.new && mv .git/HEAD.new .git/HEAD")
    refs = git("for-each-ref", cwd=repo)
    line = assert_am_error(pull(am, agent.id, check=False))
    assert "the agent's bundle was refused" in line and "is not a commit" in line
    assert git("for-each-ref", cwd=repo) == refs
    # a URL agent's copy in am's cache, made for this pull, is gone again with it
    outbox = am.home / "data" / "cache" / "outbox"
    assert not outbox.exists() or list(outbox.iterdir()) == []
    # back on its branch, the same commit comes in
    agent.do("git checkout -q am/" + agent.id)
    assert f"Created am/{agent.id} with 1 commit(s)" in pull(am, agent.id).stderr
    if source == "url":
        assert len(list(outbox.iterdir())) == 1

"""Bad input: one `am: error:` line, a non-zero exit, no traceback, and nothing half-made."""

import os
import shutil
import sys

import pytest
from helpers import assert_am_error, assert_nothing_made, git, has_session, state_agents

GITC = "git -c user.name=agent -c user.email=agent@example.invalid"


def test_unknown_id(am, repo):
    existing = am.spawn(repo, "--cmd", "sleep 60")  # a state file with someone else in it
    before = state_agents(am.home)
    for command in ("info", "stop", "rm", "logs", "diff", "attach", "snapshot"):
        line = assert_am_error(am(command, "deadbeef", check=False))
        assert "deadbeef" in line, command
        assert_nothing_made(am.home, before)
    assert am.info(existing)["status"] == "running"


def test_unknown_id_with_no_state_at_all(am):
    for command in ("info", "stop", "rm", "logs", "diff", "attach"):
        assert_am_error(am(command, "deadbeef", check=False))
    assert_nothing_made(am.home)


@pytest.mark.parametrize(
    "name",
    ["../x", "a b", "-rf", "UPPER", "a" * 64, ".", "..", "x/y", "_x", ""],
    ids=[
        "dotdot",
        "space",
        "dash",
        "upper",
        "64chars",
        "dot",
        "dotdot-only",
        "slash",
        "underscore-first",
        "empty",
    ],
)
def test_invalid_name(am, repo, name):
    line = assert_am_error(am("spawn", repo, f"--name={name}", "--cmd", "sleep 60", check=False))
    assert "name" in line
    assert_nothing_made(am.home)


def test_longest_valid_name(am, repo):
    name = "a" * 63
    assert am.spawn(repo, "--name", name, "--cmd", "true") == name


def test_dash_name_as_separate_argument(am, repo):
    # `--name -rf` must not be taken as options either
    assert_am_error(am("spawn", repo, "--name", "-rf", "--cmd", "true", check=False))
    assert_nothing_made(am.home)


def test_source_is_not_a_repository(am, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = assert_am_error(am("spawn", empty, "--cmd", "true", check=False))
    assert "not a git repository" in line
    assert_nothing_made(am.home)


def test_source_does_not_exist(am, tmp_path):
    assert_am_error(am("spawn", tmp_path / "nowhere", "--cmd", "true", check=False))
    assert_nothing_made(am.home)


def test_an_am_home_that_cannot_be_made(am, repo):
    """An AM_HOME where nothing can be made (read-only, or not the user's: here /proc, where
    even root makes no folder) and whose config cannot exist: a spawn says which folder it
    cannot make and why, and doctor, which only reads the home, still reports (it ended in a
    traceback once it kept a cache there)."""
    env = {"AM_HOME": "/proc/am-no-such-folder/home"}
    line = assert_am_error(am("spawn", repo, "--cmd", "true", check=False, env=env))
    assert "cannot make the folder /proc/am-no-such-folder/home/state: No such file" in line
    assert "set it to a folder you can write" in line
    res = am("doctor", check=False, env=env)
    assert "Traceback" not in res.stderr and "git" in res.stdout, res.stderr


def test_unreachable_url(am):
    res = am(
        "spawn",
        "https://127.0.0.1:9/none.git",
        "--cmd",
        "true",
        check=False,
        env={"GIT_TERMINAL_PROMPT": "0"},
        timeout=120,
    )
    line = assert_am_error(res)
    assert "127.0.0.1" in line
    assert_nothing_made(am.home)


def test_existing_name(am, repo):
    am.spawn(repo, "--name", "dup", "--cmd", "sleep 60")
    before = state_agents(am.home)
    ws = am.home / "agents" / "dup"
    (ws / "mine.txt").write_text("the first agent's work\n")
    line = assert_am_error(am("spawn", repo, "--name", "dup", "--cmd", "true", check=False))
    assert "dup" in line and "exists" in line
    assert state_agents(am.home) == before
    assert (ws / "mine.txt").read_text() == "the first agent's work\n"
    assert has_session("am-dup")
    assert_nothing_made(am.home, before)


def test_failing_base_removes_the_clone(am, repo):
    res = am("spawn", repo, "--base", "nonexistent", "--cmd", "true", check=False)
    line = assert_am_error(res)
    assert "nonexistent" in line
    assert "Preparing workspace" in res.stderr  # it had got as far as cloning
    assert_nothing_made(am.home)


def test_failing_base_with_worktree_leaves_the_source_alone(am, repo):
    branches = git("branch", "--list", cwd=repo)
    worktrees = git("worktree", "list", cwd=repo)
    assert_am_error(
        am("spawn", repo, "--worktree", "--base", "nonexistent", "--cmd", "true", check=False)
    )
    assert_nothing_made(am.home)
    assert git("branch", "--list", cwd=repo) == branches
    assert git("worktree", "list", cwd=repo) == worktrees


def test_existing_branch_with_worktree_leaves_the_source_alone(am, repo):
    head = git("rev-parse", "side", cwd=repo)
    assert_am_error(
        am("spawn", repo, "--worktree", "--branch", "side", "--cmd", "true", check=False)
    )
    assert_nothing_made(am.home)
    assert git("rev-parse", "side", cwd=repo) == head  # the user's branch survives the undo


def test_reused_worktree_name_keeps_the_earlier_agents_branch(am, repo):
    cmd = (
        f"echo w > w.txt && git add w.txt && {GITC} commit -qm earlier-work"
        " && printf '%s-%s\\n' WT done"
    )
    am.spawn(repo, "--worktree", "--name", "wt", "--cmd", cmd)
    am.wait_log("wt", "WT-done")
    am("stop", "wt")
    am("rm", "wt")  # the work lives on in the source, on branch am/wt
    tip = git("rev-parse", "am/wt", cwd=repo)
    assert_am_error(am("spawn", repo, "--worktree", "--name", "wt", "--cmd", "true", check=False))
    assert_nothing_made(am.home)
    assert git("rev-parse", "am/wt", cwd=repo) == tip


def test_existing_branch_in_clone(am, repo):
    # a clone already has the source's default branch
    assert_am_error(am("spawn", repo, "--branch", "main", "--cmd", "true", check=False))
    assert_nothing_made(am.home)


def path_with(tmp_path, *tools) -> str:
    """A PATH holding only TOOLS (as symlinks), plus the shell the agents run under."""
    d = tmp_path / "bin"
    d.mkdir()
    for tool in (*tools, "sh"):
        os.symlink(shutil.which(tool), d / tool)
    os.symlink(sys.executable, d / "python3")
    return str(d)


def test_missing_tmux(am, repo, tmp_path):
    res = am("spawn", repo, "--cmd", "true", env={"PATH": path_with(tmp_path, "git")}, check=False)
    line = assert_am_error(res)
    assert "tmux" in line
    assert_nothing_made(am.home)


@pytest.mark.parametrize("kind", ["path", "url"])
def test_missing_git(am, repo, tmp_path, kind):
    source = repo if kind == "path" else f"file://{repo}"
    res = am(
        "spawn", source, "--cmd", "true", env={"PATH": path_with(tmp_path, "tmux")}, check=False
    )
    line = assert_am_error(res)
    assert "git" in line
    assert_nothing_made(am.home)


@pytest.mark.parametrize(
    "flag",
    [
        ["--memory", "1g"],
        ["--cpus", "2"],
        ["--pids", "50"],
        ["--gpus", "all"],
        ["--network", "none"],
        ["--network", "full"],
        ["--allow-domain", "example.com"],
        ["--image", "alpine"],
        ["--runtime", "docker"],
    ],
    ids=lambda f: f[0].lstrip("-") + "=" + f[1],
)
def test_container_flags_need_container(am, repo, flag):
    line = assert_am_error(am("spawn", repo, *flag, "--cmd", "true", check=False))
    assert flag[0] in line
    assert_nothing_made(am.home)


@pytest.mark.parametrize(
    "args",
    [
        ["--agent", "nosuchagent"],
        ["--cmd", ""],
        ["--cmd", "true", "--skip-permissions"],
        ["--branch", "bad..branch", "--cmd", "true"],
        ["--base", "-x", "--cmd", "true"],
        ["--env", "1BAD=x", "--cmd", "true"],
        ["--env", "AM_TEST_UNSET_VAR", "--cmd", "true"],
    ],
    ids=[
        "unknown-agent",
        "empty-cmd",
        "skip-permissions-with-cmd",
        "bad-branch",
        "dash-base",
        "bad-env-name",
        "unset-env",
    ],
)
def test_other_bad_spawn_input(am, repo, args):
    assert_am_error(am("spawn", repo, *args, check=False))
    assert_nothing_made(am.home)


def test_url_with_worktree(am, repo):
    assert_am_error(am("spawn", f"file://{repo}", "--worktree", "--cmd", "true", check=False))
    assert_nothing_made(am.home)


def test_restore_of_missing_or_bogus_snapshot(am, tmp_path):
    assert_am_error(am("restore", tmp_path / "none.tar.gz", check=False))
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"not an archive")
    assert_am_error(am("restore", bogus, check=False))
    assert_nothing_made(am.home)


def test_usage_errors_use_the_same_form(am):
    assert_am_error(am("spawn", check=False))
    assert_am_error(am("list", "--status", "bogus", check=False))
    assert_am_error(am("nosuchcommand", check=False))


def test_attach_without_a_terminal_says_so_in_ams_words(am, repo):
    """Not tmux's own 'open terminal failed: not a terminal', which names neither the cause
    nor what to do instead."""
    agent = am.spawn(repo, "--cmd", "sleep 60")
    res = am("attach", agent, check=False, input="")  # its input a pipe, no terminal
    assert "needs a terminal" in assert_am_error(res) and "am send" in res.stderr
    # inside tmux, from a pane no client shows (a script in a detached session): nested
    server = f"/tmp/tmux-{os.getuid()}/default"  # the fixture's (it sets no TMUX_TMPDIR)
    res = am("attach", agent, check=False, input="", env={"TMUX": f"{server},1,0"})
    assert "needs a terminal" in assert_am_error(res)
    assert has_session(f"am-{agent}")  # and the agent runs on

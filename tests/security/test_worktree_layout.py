"""Property 9: no container agent gets a writable share of the user's git folder.

To commit in a worktree, a container agent had to write the repository's shared git folder
(objects, refs, logs). The positive control runs that layout by hand on each engine: the agent
replaces logs/HEAD with a symbolic link, and the user's own `git checkout` then appends to the
file it names. No mount layout lets the agent commit there without such a write, so
`--worktree --container` is refused, before anything is made.
"""

import subprocess

import pytest
from containers import container_names
from helpers import assert_am_error, assert_nothing_made, git

PROPERTY = "9 no writable share of the user's git folder"
pytestmark = pytest.mark.container


def test_worktree_container_is_refused(am, repo, tmp_path, engine):
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file\n")
    git("branch", "other", cwd=repo)
    common = repo / ".git"
    wt = tmp_path / "wt"
    git("worktree", "add", "-q", "-b", "agent", wt, cwd=repo)
    mounts = [
        (common, True),
        (common / "objects", False),
        (common / "refs", False),
        (common / "logs", False),
        (common / "worktrees" / "wt", False),
    ]
    for path, readonly in mounts:
        if not readonly:
            subprocess.run(["chown", "-R", "1000:1000", path], check=True)
    argv = [engine, "run", "--rm", "--pull", "never", "--network", "none", "--user", "1000:1000"]
    for path, readonly in mounts:
        argv += [
            "--mount",
            f"type=bind,source={path},target={path}" + (",readonly" if readonly else ""),
        ]
    argv += [
        "am-agent:latest",
        "sh",
        "-c",
        f"rm -f {common}/logs/HEAD && ln -s {victim} {common}/logs/HEAD && echo PLANTED",
    ]
    assert "PLANTED" in subprocess.run(argv, capture_output=True, text=True).stdout
    git("checkout", "-q", "other", cwd=repo)
    assert "checkout: moving from main to other" in victim.read_text()  # control
    (common / "logs" / "HEAD").unlink()
    victim.write_text("the user's file\n")

    git("worktree", "remove", "--force", wt, cwd=repo)
    branches = git("branch", "--list", cwd=repo)
    res = am(
        "spawn",
        repo,
        "--container",
        "--runtime",
        engine,
        "--worktree",
        "--cmd",
        "sleep 300",
        check=False,
    )
    line = assert_am_error(res)
    assert "--worktree cannot be combined with --container" in line and "leave out" in line
    assert_nothing_made(am.home)
    assert container_names(engine, str(am.home)) == []
    assert git("branch", "--list", cwd=repo) == branches
    assert victim.read_text() == "the user's file\n"

"""Property 12: snapshots are self-contained, and a restore takes nothing on trust.

Hand-made archives: a hard link to a symbolic link (plain tarfile then sets the link member's
mode and time on the file the symbolic link names), and a manifest naming a repository whose
hook `git worktree add` would run. And real snapshots of agents spawned from a URL: they hold
every object they need, restored here or extracted anywhere.
"""

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from helpers import assert_am_error, assert_nothing_made, git

from .test_symlinks import _archive

PROPERTY = "12 snapshots self-contained, restore trusts no archive"


def archive(path: Path, manifest: dict, members: list[tarfile.TarInfo]) -> Path:
    return _archive(path, [(m, None) for m in members], manifest)


def plain_extract(tar: tarfile.TarFile, dest) -> None:
    """tarfile's own extraction, as a program that trusts the archive does it: the "tar"
    filter where this Python has filters (3.11.4 on), none before (Debian 12's 3.11.2)."""
    if hasattr(tarfile, "tar_filter"):
        tar.extractall(dest, filter="tar")
    else:
        tar.extractall(dest)


def test_hard_link_to_a_symbolic_link_changes_nothing_outside(am, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file\n")
    link = tarfile.TarInfo("workspace/L")
    link.type, link.linkname = tarfile.SYMTYPE, str(victim)
    hard = tarfile.TarInfo("workspace/H")
    hard.type, hard.linkname, hard.mode, hard.mtime = tarfile.LNKTYPE, "workspace/L", 0o777, 0
    evil = archive(tmp_path / "evil.tar.gz", {"id": "x", "worktree": False}, [link, hard])

    def reset():
        victim.chmod(0o600)
        os.utime(victim, (1_600_000_000, 1_600_000_000))

    # positive control: plain tarfile makes the link at H, then chmods and utimes through it
    reset()
    with tarfile.open(evil) as tar:
        plain_extract(tar, tmp_path / "plain")
    st = victim.stat()
    mode = 0o755 if hasattr(tarfile, "tar_filter") else 0o777  # the filter drops group write
    assert (st.st_mode & 0o777, st.st_mtime) == (mode, 0), "control: nothing went through"
    reset()
    line = assert_am_error(am("restore", evil, "--name", "evil", check=False))
    assert "refusing to restore" in line and "hard link" in line
    st = victim.stat()
    assert (st.st_mode & 0o777, st.st_mtime) == (0o600, 1_600_000_000)
    assert_nothing_made(am.home)


def test_restore_never_takes_its_source_from_the_archive(am, repo, tmp_path, markers):
    victim = tmp_path / "victim-repo"  # any host repository: another agent's workspace, say
    shutil.copytree(repo, victim)
    hook = victim / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\n{markers.payload()}\n")
    hook.chmod(0o755)
    commit = git("rev-parse", "HEAD", cwd=victim).strip()
    git("worktree", "add", "-q", "--detach", tmp_path / "control-wt", commit, cwd=victim)
    markers.take()  # control: a worktree added there runs its hook
    git("worktree", "remove", "--force", tmp_path / "control-wt", cwd=victim)
    manifest = {
        "id": "x",
        "worktree": True,
        "source": str(victim),
        "commit": commit,
        "base_commit": commit,
        "branch": "am/x",
    }
    readme = tarfile.TarInfo("workspace/README")
    evil = archive(tmp_path / "evil.tar.gz", manifest, [readme])
    worktrees = git("worktree", "list", "--porcelain", cwd=victim)
    line = assert_am_error(am("restore", evil, "--name", "x", check=False))
    assert "--source REPO" in line
    assert markers.fired() == []
    assert_nothing_made(am.home)
    # named by the user, the repository is used, and only that one
    assert am("restore", evil, "--name", "x", "--source", repo).stdout.split()[-1] == "x"
    assert str(am.home / "agents" / "x") in git("worktree", "list", cwd=repo)
    assert git("worktree", "list", "--porcelain", cwd=victim) == worktrees
    assert am.info("x")["source"] == str(repo) and markers.fired() == []


def url_agent(am, repo, mode: str) -> str:
    """An agent of file://REPO (it borrows objects from am's cache) with work of every kind."""
    cmd = (
        "echo edit >> README && echo new > new.txt && git add new.txt && "
        "git -c user.name=a -c user.email=b commit -qm agent && echo untracked > u.txt && "
        "echo READY; sleep 300"
    )
    extra = [] if mode == "tmux" else ["--container", "--runtime", mode]
    agent = am.spawn(f"file://{repo}", *extra, "--cmd", cmd)
    am.wait_log(agent, "READY")
    return agent


def check_self_contained(am, repo, tmp_path, mode):
    agent = url_agent(am, repo, mode)
    ws = am.home / "agents" / agent
    assert (ws / ".git" / "objects" / "info" / "alternates").is_file()
    # control: without the cache's objects, the workspace's own repository is incomplete
    bare = tmp_path / "without-cache"
    shutil.copytree(ws / ".git", bare, symlinks=True)
    (bare / "objects" / "info" / "alternates").unlink()
    assert subprocess.run(["git", "--git-dir", bare, "fsck"], capture_output=True).returncode
    diff = am("diff", agent).stdout
    am("stop", agent)
    snap = Path(am("snapshot", agent).stdout.strip().splitlines()[-1])
    out = tmp_path / "extracted"
    out.mkdir()
    with tarfile.open(snap) as tar:
        plain_extract(tar, out)
    extracted = out / "workspace"
    assert not (extracted / ".git" / "objects" / "info" / "alternates").exists()
    fsck = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", extracted, "fsck", "--full"],
        capture_output=True,
        text=True,
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    log = git("-c", "safe.directory=*", "log", "--format=%s", "-2", cwd=extracted)
    assert log.split() == ["agent", "second"]
    # restored here, it is an ordinary agent: diff, rm and clean read it
    back = am("restore", snap, "--name", "back").stdout.split()[-1]
    assert am("diff", back).stdout == diff
    assert "unsaved work" in assert_am_error(am("rm", back, check=False))
    am("rm", "--force", back)
    am("rm", "--force", agent)


def test_snapshot_of_a_url_agent_is_self_contained(am, repo, tmp_path):
    check_self_contained(am, repo, tmp_path, "tmux")


@pytest.mark.container
def test_snapshot_of_a_url_container_agent_is_self_contained(am, repo, tmp_path, engine):
    check_self_contained(am, repo, tmp_path, engine)

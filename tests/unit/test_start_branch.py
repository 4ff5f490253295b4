"""A spawn's branch and its source check with fewer git calls: what they read from files
must be what git itself answers, and anything unusual is still asked of git."""

import os
from pathlib import Path

import pytest
from helpers import git

from am import git as amgit
from am import gitfiles, gitsafe
from am.errors import AmError


def clone(source: Path, dest: Path) -> gitsafe.Repo:
    amgit.clone(str(source), dest, hardlinks=True)
    return gitsafe.open_clone(dest)


def commit_of(ws: Path, rev: str) -> str:
    return git("rev-parse", "--verify", f"{rev}^{{commit}}", cwd=ws).strip()


def test_the_base_read_from_the_clone_is_the_commit_git_names(repo, tmp_path):
    ws = tmp_path / "ws"
    got = amgit.start_branch(clone(repo, ws), "am/one", None)
    assert got == commit_of(repo, "HEAD") == commit_of(ws, "HEAD")
    assert git("branch", "--show-current", cwd=ws).strip() == "am/one"
    # a base by name still goes through git
    ws2 = tmp_path / "ws2"
    assert amgit.start_branch(clone(repo, ws2), "am/two", "side") == commit_of(repo, "side")


def test_a_branch_file_naming_a_tag_is_peeled_as_git_peels_it(repo, tmp_path):
    """A hand-made branch file may hold an annotated tag: the base is its commit, as
    ``rev-parse HEAD^{commit}`` says, not the tag's own name."""
    git("tag", "-a", "-m", "t", "v1", cwd=repo)
    tag = git("rev-parse", "v1", cwd=repo).strip()
    ws = tmp_path / "ws"
    r = clone(repo, ws)
    (ws / ".git" / "refs" / "heads" / "main").write_text(tag + "\n")
    assert tag != commit_of(ws, "HEAD")  # positive control: the file's name is not the commit
    assert amgit.start_branch(r, "am/one", None) == commit_of(ws, "HEAD")


def test_unusual_heads_are_asked_of_git(repo, tmp_path):
    # packed: no loose file for HEAD's branch
    ws = tmp_path / "packed"
    r = clone(repo, ws)
    git("pack-refs", "--all", "--prune", cwd=ws)
    assert not (ws / ".git" / "refs" / "heads" / "main").exists()
    assert amgit.start_branch(r, "am/one", None) == commit_of(repo, "HEAD")
    # a branch file that is a link is not followed: git answers
    ws = tmp_path / "linked"
    r = clone(repo, ws)
    ref = ws / ".git" / "refs" / "heads" / "main"
    os.rename(ref, ws / ".git" / "elsewhere")
    ref.symlink_to(ws / ".git" / "elsewhere")
    assert gitfiles.loose_ref(ws / ".git", "refs/heads/main") is None
    assert amgit.start_branch(r, "am/one", None) == commit_of(repo, "HEAD")
    # an empty source: the error says so
    empty = tmp_path / "empty"
    empty.mkdir()
    git("init", "-q", "-b", "main", cwd=empty)
    with pytest.raises(AmError, match="no commits to start from"):
        amgit.start_branch(clone(empty, tmp_path / "ws-empty"), "am/one", None)


def test_a_source_is_plainly_a_repository_only_as_git_would_find_it(repo, tmp_path, monkeypatch):
    assert gitfiles.plainly_a_repository(str(repo))
    assert amgit.check_source(str(repo)) == str(repo.resolve())
    sub = repo / "sub"
    sub.mkdir()
    assert not gitfiles.plainly_a_repository(str(sub))  # git decides (and finds the parent)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / ".git").symlink_to(repo / ".git")
    assert not gitfiles.plainly_a_repository(str(linked))
    (tmp_path / "empty").mkdir()
    assert not gitfiles.plainly_a_repository(str(tmp_path / "empty"))
    with pytest.raises(AmError, match="is not a git repository"):
        amgit.check_source(str(tmp_path / "empty"))
    # another owner's repository: git's own ownership check decides
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(repo).st_uid + 1)
    assert not gitfiles.plainly_a_repository(str(repo))

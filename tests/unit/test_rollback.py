"""Rollback: undo steps run newest first, each on its own, and failures are reported."""

import argparse
from pathlib import Path

import pytest
from helpers import git

from am import rollback
from am.errors import AmError


def test_steps_run_newest_first_and_failures_do_not_stop_the_rest(capsys):
    done = []
    undo = rollback.Rollback("the spawn")
    undo.push(done.append, "first made")
    undo.push(lambda: (_ for _ in ()).throw(OSError("disk gone")))
    undo.push(done.append, "last made")

    def refuse(name):
        raise AmError(f"cannot remove {name}")

    undo.push(refuse, "box")
    failures = undo.run()
    assert done == ["last made", "first made"]
    assert len(failures) == 2
    assert failures[0].endswith("refuse(box): cannot remove box")
    assert failures[1].endswith("OSError: disk gone")
    err = capsys.readouterr().err.splitlines()
    assert err == [f"am: warning: undoing the spawn failed: {f}" for f in failures]
    assert undo.run() == []  # steps run once


def test_a_clean_rollback_says_nothing(capsys):
    done = []
    undo = rollback.Rollback()
    undo.push(done.append, 1)
    assert undo.run() == [] and done == [1]
    assert capsys.readouterr().err == ""


def test_failed_restore_deletes_the_branch_even_if_the_worktree_removal_fails(
    am, repo, tmp_path, monkeypatch, capsys
):
    """restore.py's rollback: one failing step (worktree_remove) no longer skips the next
    (delete_branch), and the failure is named."""
    from am import git as amgit
    from am import snapshot
    from am.commands import restore

    agent_id = am.spawn(repo, "--worktree", "--cmd", "true")
    am.wait_status(agent_id, "exited")
    snap = am("snapshot", agent_id).stdout.strip().splitlines()[-1]
    monkeypatch.setenv("AM_HOME", str(am.home))

    def extract(*a, **kw):
        raise AmError("extract failed")

    real_remove = amgit.worktree_remove

    def worktree_remove(source, ws):  # its work done, then a failure (as of a late prune)
        real_remove(source, ws)
        raise OSError("worktree removal failed")

    monkeypatch.setattr(snapshot, "extract", extract)
    monkeypatch.setattr(amgit, "worktree_remove", worktree_remove)
    with pytest.raises(AmError, match="extract failed"):
        restore.run(argparse.Namespace(snapshot=snap, name="wr", source=str(repo)))
    assert "am/wr" not in git("branch", "--list", "am/wr", cwd=repo)
    assert "wr" not in {a["id"] for a in am.list()}
    assert not Path(am.home / "agents" / "wr").exists()
    err = capsys.readouterr().err
    assert "am: warning: undoing the restore failed: worktree_remove(" in err
    assert "OSError: worktree removal failed" in err

"""Pure units of the workspace checks: snapshot.plan_members (what a restore unpacks, and what
it refuses) and gitsafe's alternates check (a clone borrows objects only from am's cache)."""

import io
import tarfile
from pathlib import Path

import pytest

from am import gitsafe, snapshot
from am.errors import AmError

R = snapshot.ROOT


def archive(*members) -> tarfile.TarFile:
    """An in-memory tar of MEMBERS: (name, kind[, link target])."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, *target in members:
            info = tarfile.TarInfo(name)
            info.type = {
                "dir": tarfile.DIRTYPE,
                "reg": tarfile.REGTYPE,
                "sym": tarfile.SYMTYPE,
                "lnk": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            if target:
                info.linkname = target[0]
            tar.addfile(info, io.BytesIO(b"") if kind == "reg" else None)
    buf.seek(0)
    return tarfile.open(fileobj=buf, mode="r")


def planned(*members, skip_git=False) -> list[str]:
    return [m.name for m in snapshot.plan_members(archive(*members), Path("/s.tar"), skip_git)]


def test_plan_keeps_workspace_members_in_order_and_skips_git_when_asked():
    members = [
        (snapshot.MANIFEST, "reg"),
        (R, "dir"),
        (f"{R}/a", "reg"),
        (f"{R}/link", "sym", "a"),
        (f"{R}/hard", "lnk", f"{R}/a"),
        (f"{R}/.git", "dir"),
        (f"{R}/.git/HEAD", "reg"),
    ]
    assert planned(*members) == [
        R,
        f"{R}/a",
        f"{R}/link",
        f"{R}/hard",
        f"{R}/.git",
        f"{R}/.git/HEAD",
    ]
    assert planned(*members, skip_git=True) == [R, f"{R}/a", f"{R}/link", f"{R}/hard"]


def test_a_history_pack_is_not_a_workspace_member():
    pack = f"{snapshot.OBJECTS}/pack-{'a' * 40}.pack"
    assert planned((R, "dir"), (pack, "reg")) == [R]


@pytest.mark.parametrize(
    "members, why",
    [
        ([(R, "dir"), ("/etc/passwd", "reg")], "points outside"),
        ([(R, "dir"), (f"{R}/../x", "reg")], "points outside"),
        ([(R, "dir"), ("other/x", "reg")], "not under workspace/"),
        ([(R, "dir"), (f"{R}/a", "reg"), (f"{R}/a", "reg")], "appears twice"),
        ([(R, "dir"), (f"{R}/p", "fifo")], "not a file, folder or link"),
        ([(R, "reg")], "is not a folder"),
        ([(R, "dir"), (f"{R}/l", "sym", "/etc"), (f"{R}/l/x", "reg")], "lies beyond a"),
        ([(R, "dir"), (f"{R}/h", "lnk", "/etc/passwd")], "hard link"),
        ([(R, "dir"), (f"{R}/l", "sym", "x"), (f"{R}/h", "lnk", f"{R}/l")], "hard link"),
        ([(f"{R}/x", "reg")], "holds no workspace/ folder"),
        ([(R, "dir"), (f"{R}/d/f", "reg"), (f"{R}/d", "sym", "/tmp")], "lies beyond a"),
    ],
)
def test_plan_refuses(members, why):
    with pytest.raises(AmError, match="refusing to restore") as e:
        planned(*members)
    assert why in e.value.message


def test_alternates_only_to_am_cache(tmp_path):
    ws = tmp_path / "ws"
    mirror = tmp_path / "cache" / "m.git"
    (mirror / "objects").mkdir(parents=True)
    alternates = tmp_path / "alternates"
    allowed = gitsafe.mirror_objects(mirror)
    gitsafe._check_alternates(alternates, allowed, ws)  # none at all: fine
    alternates.write_text(f"# a comment\n{mirror / 'objects'}\n")
    gitsafe._check_alternates(alternates, allowed, ws)
    for bad in ("/etc", "../../other/objects", str(tmp_path / "cache" / "other.git/objects")):
        alternates.write_text(f"{bad}\n")
        with pytest.raises(gitsafe.Refused, match="borrows objects from"):
            gitsafe._check_alternates(alternates, allowed, ws)
    alternates.write_text(f"{mirror / 'objects'}\n")
    with pytest.raises(gitsafe.Refused, match="borrows objects from"):
        gitsafe._check_alternates(alternates, (), ws)  # a clone with no mirror borrows nothing
    alternates.unlink()
    alternates.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(gitsafe.Refused, match="not a regular file"):
        gitsafe._check_alternates(alternates, allowed, ws)


def test_snapshots_of_one_agent_in_one_second_each_get_a_name(tmp_path, monkeypatch):
    import os
    import time

    monkeypatch.setattr(time, "gmtime", lambda *_: time.struct_time((2026, 1, 2, 3, 4, 5, 0, 2, 0)))
    first, first_tmp, fd1 = snapshot.reserve(tmp_path, "a")
    second, second_tmp, fd2 = snapshot.reserve(tmp_path, "a")  # the first still writing
    assert (first.name, second.name) == ("a-20260102T030405Z.tar.gz", "a-20260102T030405Z-2.tar.gz")
    assert first_tmp.name == "a-20260102T030405Z.tar.partial"
    os.replace(first_tmp, first)  # done
    os.close(fd1)
    third, _, fd3 = snapshot.reserve(tmp_path, "a")
    assert third.name == "a-20260102T030405Z-3.tar.gz"
    assert not snapshot.left_by_a_kill(tmp_path, second_tmp.name)  # held by its writer
    os.close(fd2)
    assert snapshot.left_by_a_kill(tmp_path, second_tmp.name)  # its writer gone
    assert not snapshot.left_by_a_kill(tmp_path, first.name)
    os.close(fd3)


def test_worktree_list_is_read_as_paths_and_branches():
    from am import git

    out = "worktree /r\0HEAD 1a\0branch refs/heads/main\0\0worktree /w\0HEAD 2b\0detached\0\0"
    assert git.parse_worktrees(out) == [("/r", "main"), ("/w", None)]
    assert git.parse_worktrees("") == []

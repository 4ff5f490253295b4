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


# --- own_branch: the restored clone's HEAD on the new agent's branch, written as data ---------

OLD, NEW = "a" * 40, "b" * 40


def restored_git(tmp_path: Path, packed: str | None = None, loose: bool = True) -> Path:
    """A workspace whose .git has HEAD on am/old, its ref loose or in PACKED."""
    git_dir = tmp_path / "ws" / ".git"
    (git_dir / "refs" / "heads" / "am").mkdir(parents=True)
    (git_dir / "HEAD").write_text("ref: refs/heads/am/old\n")
    if loose:
        (git_dir / "refs" / "heads" / "am" / "old").write_text(f"{OLD}\n")
    if packed is not None:
        (git_dir / "packed-refs").write_text(packed)
    return git_dir


def test_own_branch_moves_head_to_a_new_branch_at_the_old_ones_commit(tmp_path):
    git_dir = restored_git(tmp_path)
    assert snapshot.own_branch(git_dir.parent, "am/new")
    assert (git_dir / "HEAD").read_text() == "ref: refs/heads/am/new\n"
    assert (git_dir / "refs" / "heads" / "am" / "new").read_text() == f"{OLD}\n"
    assert (git_dir / "refs" / "heads" / "am" / "old").read_text() == f"{OLD}\n"  # it stays
    assert sorted(p.name for p in git_dir.iterdir()) == ["HEAD", "refs"]


def test_own_branch_is_done_when_head_is_on_the_branch_already(tmp_path):
    git_dir = restored_git(tmp_path)
    assert snapshot.own_branch(git_dir.parent, "am/old")
    assert (git_dir / "HEAD").read_text() == "ref: refs/heads/am/old\n"
    assert sorted(p.name for p in git_dir.iterdir()) == ["HEAD", "refs"]


def test_own_branch_reads_packed_refs_line_by_line_and_only_whole_lines(tmp_path):
    packed = (
        "# pack-refs with: peeled fully-peeled sorted\n"
        f"junk refs/heads/am/old\n"  # no object name: not this ref's line
        f"{NEW} refs/heads/x/refs/heads/am/old\n"  # another ref that ends alike
        f"{OLD} refs/heads/am/old\n"
        f"^{NEW}\n"
    )
    git_dir = restored_git(tmp_path, packed, loose=False)
    assert snapshot.own_branch(git_dir.parent, "am/new")
    assert (git_dir / "refs" / "heads" / "am" / "new").read_text() == f"{OLD}\n"


@pytest.mark.parametrize("case", ["linked-refs", "branch-folder-is-a-file", "detached", "no-ref"])
def test_own_branch_changes_nothing_when_it_cannot(tmp_path, case):
    git_dir = restored_git(tmp_path, loose=case != "no-ref")
    outside = tmp_path / "outside"
    outside.mkdir()
    if case == "linked-refs":
        (outside / "am").mkdir()
        (outside / "am" / "old").write_text(f"{OLD}\n")
        (git_dir / "refs" / "heads" / "am" / "old").unlink()
        (git_dir / "refs" / "heads" / "am").rmdir()
        (git_dir / "refs" / "heads").rmdir()
        (git_dir / "refs" / "heads").symlink_to(outside)
        # control: by path, the old branch reads through the link
        assert (git_dir / "refs" / "heads" / "am" / "old").read_text() == f"{OLD}\n"
    elif case == "branch-folder-is-a-file":
        (git_dir / "refs" / "heads" / "am" / "old").rename(git_dir / "refs" / "heads" / "x")
        (git_dir / "refs" / "heads" / "am").rmdir()
        (git_dir / "refs" / "heads" / "am").write_text(f"{OLD}\n")
        (git_dir / "HEAD").write_text("ref: refs/heads/x\n")
    elif case == "detached":
        (git_dir / "HEAD").write_text(f"{OLD}\n")
    head = (git_dir / "HEAD").read_text()
    listing = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert not snapshot.own_branch(git_dir.parent, "am/new")
    assert (git_dir / "HEAD").read_text() == head
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == listing


def test_own_branch_leaves_nothing_when_a_write_fails(tmp_path):
    """A full disk, as a file size limit: the file made for HEAD goes again."""
    import subprocess
    import sys

    git_dir = restored_git(tmp_path)
    code = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from am import snapshot\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))\n"
        "print(snapshot.own_branch(Path(sys.argv[1]), 'am/new'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(git_dir.parent)], capture_output=True, text=True
    )
    assert out.stdout == "False\n", out.stderr
    assert sorted(p.name for p in git_dir.iterdir()) == ["HEAD", "refs"]
    assert (git_dir / "HEAD").read_text() == "ref: refs/heads/am/old\n"
    # control: under the same limit, a file is made and its write fails
    code = (
        "import os, resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))\n"
        "fd = os.open('made', os.O_WRONLY | os.O_CREAT)\n"
        "try:\n    os.write(fd, b'x')\nexcept OSError as e:\n    print(e.errno)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout.strip() == "27" and (tmp_path / "made").stat().st_size == 0

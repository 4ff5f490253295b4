"""Snapshots: a whole workspace archived and restored, and hostile archives refused."""

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from helpers import assert_am_error, assert_nothing_made, git


def last_line(res) -> str:
    return res.stdout.strip().splitlines()[-1]


def make_busy_workspace(am, repo, tmp_path) -> tuple[str, Path, Path]:
    """An exited agent whose workspace holds every kind of file a snapshot must keep."""
    agent_id = am.spawn(repo, "--cmd", "true")
    am.wait_status(agent_id, "exited")
    ws = Path(am.info(agent_id)["workspace"])
    (ws / "committed.txt").write_text("committed\n")
    git("add", "committed.txt", cwd=ws)
    git("commit", "-qm", "agent commit", cwd=ws)
    (ws / "README").write_text("hello\nuncommitted edit\n")
    (ws / "file.txt").unlink()  # an uncommitted deletion
    (ws / "sub").mkdir()
    (ws / "sub" / "untracked.txt").write_text("untracked\n")
    (ws / "debug.log").write_text("ignored\n")  # *.log is in the fixture's .gitignore
    target = tmp_path / "outside-target.txt"
    target.write_text("outside, not to be touched\n")
    os.symlink(target, ws / "outside-link")
    os.symlink("README", ws / "inside-link")
    return agent_id, ws, target


def test_snapshot_and_restore_round_trip(am, repo, tmp_path):
    agent_id, ws, target = make_busy_workspace(am, repo, tmp_path)
    original_diff = am("diff", agent_id).stdout
    assert "outside-link" in original_diff and "uncommitted edit" in original_diff

    snap = Path(last_line(am("snapshot", agent_id)))
    assert snap.is_file() and snap.is_relative_to(am.home)

    res = am("restore", snap, "--name", "r1")
    assert last_line(res) == "r1"
    info = am.info("r1")
    assert info["status"] == "stopped"
    rws = Path(info["workspace"])
    assert rws != ws and rws.is_dir()
    assert am("diff", "r1").stdout == original_diff
    assert info["base_commit"] == am.info(agent_id)["base_commit"]
    # on a branch of its own at the commit the snapshot's was at, which stays
    assert info["branch"] == "am/r1"
    assert git("symbolic-ref", "HEAD", cwd=rws).strip() == "refs/heads/am/r1"
    head = git("rev-parse", "HEAD", cwd=ws).strip()
    assert git("rev-parse", f"refs/heads/am/{agent_id}", "am/r1", cwd=rws).split() == [head] * 2
    assert (rws / "debug.log").read_text() == "ignored\n"
    assert (rws / "sub" / "untracked.txt").read_text() == "untracked\n"
    assert not (rws / "file.txt").exists()
    assert (rws / "outside-link").is_symlink()
    assert os.readlink(rws / "outside-link") == str(target)
    assert os.readlink(rws / "inside-link") == "README"
    assert target.read_text() == "outside, not to be touched\n"
    assert git("log", "--format=%s", "-1", cwd=rws).strip() == "agent commit"
    assert git("status", "--porcelain", cwd=rws) == git("status", "--porcelain", cwd=ws)

    # the original is untouched, and a restored agent is an agent like any other
    assert am.info(agent_id)["status"] == "exited"
    assert_am_error(am("restore", snap, "--name", "r1", check=False))  # the name is taken
    am("rm", "--force", "r1")
    assert not rws.exists()
    assert target.read_text() == "outside, not to be touched\n"  # rm never follows links


def test_restore_without_name_prints_a_new_id(am, repo, tmp_path):
    agent_id, _, _ = make_busy_workspace(am, repo, tmp_path)
    snap = last_line(am("snapshot", agent_id))
    new_id = last_line(am("restore", snap))
    assert new_id != agent_id and len(new_id) == 8
    assert am.info(new_id)["status"] == "stopped"


def test_restores_of_one_snapshot_pull_into_branches_of_their_own(am, repo):
    """Two restores of one clone's snapshot, and the agent it was taken of, each pull into
    their own branch: none moves another's."""
    agent_id = am.spawn(repo, "--cmd", "true")
    am.wait_status(agent_id, "exited")
    ws = Path(am.info(agent_id)["workspace"])
    git("commit", "-q", "--allow-empty", "-m", "the agent's", cwd=ws)
    am("pull", agent_id)
    first = git("rev-parse", f"am/{agent_id}", cwd=repo).strip()
    snap = last_line(am("snapshot", agent_id))
    for name in ("r1", "r2"):
        assert last_line(am("restore", snap, "--name", name, "--source", repo)) == name
        rws = Path(am.info(name)["workspace"])
        git("commit", "-q", "--allow-empty", "-m", f"{name}'s", cwd=rws)
        res = am("pull", name)
        assert "warning" not in res.stderr
        assert git("log", "-1", "--format=%s", f"am/{name}", cwd=repo).strip() == f"{name}'s"
        assert git("rev-parse", f"am/{name}~1", cwd=repo).strip() == first
    assert git("rev-parse", f"am/{agent_id}", cwd=repo).strip() == first


def test_a_restore_refuses_a_name_that_makes_no_branch_before_making_anything(am, repo):
    agent_id = am.spawn(repo, "--cmd", "true")
    am.wait_status(agent_id, "exited")
    snap = last_line(am("snapshot", agent_id))
    before = {a["id"]: a for a in am.list()}  # as derived: exited, its session gone
    for name in ("x.lock", "y."):
        line = assert_am_error(am("restore", snap, "--name", name, check=False))
        assert f"invalid agent name {name!r}" in line
        assert_nothing_made(am.home, before)


def test_a_restore_finds_the_branch_in_packed_refs(am, repo):
    agent_id = am.spawn(repo, "--cmd", "true")
    am.wait_status(agent_id, "exited")
    ws = Path(am.info(agent_id)["workspace"])
    git("pack-refs", "--all", cwd=ws)
    assert not (ws / ".git" / "refs" / "heads" / "am" / agent_id).exists()
    snap = last_line(am("snapshot", agent_id))
    res = am("restore", snap, "--name", "packed")
    assert "warning" not in res.stderr
    rws = Path(am.info("packed")["workspace"])
    assert git("symbolic-ref", "HEAD", cwd=rws).strip() == "refs/heads/am/packed"
    assert git("rev-parse", "HEAD", cwd=rws) == git("rev-parse", "HEAD", cwd=ws)


def test_a_restore_moves_no_branch_through_a_link_in_the_snapshots_git(am, repo, tmp_path):
    """The agent made its branch's folder a link to a folder outside: what the restore writes
    for the new branch stays in the workspace, and HEAD stays as it was."""
    outside = tmp_path / "outside"
    outside.mkdir()
    agent_id = am.spawn(repo, "--cmd", "true")
    am.wait_status(agent_id, "exited")
    ws = Path(am.info(agent_id)["workspace"])
    ref = ws / ".git" / "refs" / "heads" / "am" / agent_id
    ref.rename(outside / agent_id)
    ref.parent.rmdir()
    os.symlink(outside, ref.parent)
    snap = last_line(am("snapshot", agent_id))
    res = am("restore", snap, "--name", "linked")
    assert "HEAD stays as the snapshot had it" in res.stderr
    rws = Path(am.info("linked")["workspace"])
    link = rws / ".git" / "refs" / "heads" / "am"
    # positive control: by path, the branch reads through the link, and the new one's ref
    # would be written beside it, outside
    assert (
        link.is_symlink()
        and (link / agent_id).read_text().strip() == git("rev-parse", "HEAD", cwd=ws).strip()
    )
    assert sorted(p.name for p in outside.iterdir()) == [agent_id]
    assert (rws / ".git" / "HEAD").read_text() == f"ref: refs/heads/am/{agent_id}\n"
    assert am.info("linked")["branch"] == "am/linked"


def test_snapshot_of_a_worktree_agent_restores(am, repo, tmp_path):
    agent_id = am.spawn(repo, "--worktree", "--cmd", "true")
    am.wait_status(agent_id, "exited")
    ws = Path(am.info(agent_id)["workspace"])
    (ws / "new.txt").write_text("new\n")
    (ws / "debug.log").write_text("ignored\n")
    diff = am("diff", agent_id).stdout
    snap = last_line(am("snapshot", agent_id))
    # without a repository named, a standalone agent from the history the snapshot carries
    assert last_line(am("restore", snap, "--name", "alone")) == "alone"
    alone = Path(am.info("alone")["workspace"])
    assert am("diff", "alone").stdout == diff
    assert (alone / ".git").is_dir() and am.info("alone")["worktree"] is False
    assert git("fsck", cwd=alone) == "" and (alone / "debug.log").read_text() == "ignored\n"
    assert str(alone) not in git("worktree", "list", "--porcelain", cwd=repo)
    # named, the repository it was a worktree of gets a worktree again
    assert last_line(am("restore", snap, "--name", "wr", "--source", repo)) == "wr"
    rws = Path(am.info("wr")["workspace"])
    assert am("diff", "wr").stdout == diff
    assert (rws / "debug.log").read_text() == "ignored\n"
    assert str(rws) in git("worktree", "list", "--porcelain", cwd=repo)


# --- hostile archives -------------------------------------------------------------------------


def add_file(tar, name, data=b"x\n"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def add_link(tar, name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def build_archive(path: Path, members) -> Path:
    manifest = json.dumps(
        {
            "id": "evil",
            "source": None,
            "branch": "am/evil",
            "commit": None,
            "base_commit": None,
            "worktree": False,
        }
    ).encode()
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, "am-snapshot.json", manifest)
        add_dir(tar, "workspace")
        add_file(tar, "workspace/README", b"hello\n")
        for kind, *args in members:
            {"file": add_file, "dir": add_dir, "link": add_link}[kind](tar, *args)
    return path


# The extraction folder is $AM_HOME/agents/.restore-XXXX, so three '..' reach tmp_path.
HOSTILE = {
    "dotdot": lambda t: [("file", "../../../evil")],
    "dotdot-under-workspace": lambda t: [("file", "workspace/../../../../evil")],
    "absolute": lambda t: [("file", str(t / "evil"))],
    "through-symlink": lambda t: [
        ("link", "workspace/link", str(t / "outdir")),
        ("file", "workspace/link/evil"),
    ],
    "through-relative-symlink": lambda t: [
        ("link", "workspace/up", "../../../.."),
        ("file", "workspace/up/outdir/evil"),
    ],
    "hardlink-outside": lambda t: [
        ("link", "workspace/hl", str(t / "outdir" / "victim"), tarfile.LNKTYPE)
    ],
    "workspace-is-a-symlink": lambda t: [("link", "workspace", str(t / "outdir"))],
}


@pytest.mark.parametrize("kind", HOSTILE.keys())
def test_hostile_archive_is_refused(am, tmp_path, kind):
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    (outdir / "victim").write_text("victim\n")
    archive = build_archive(tmp_path / "hostile.tar.gz", HOSTILE[kind](tmp_path))
    before = sorted(p.name for p in tmp_path.iterdir()) + ["amhome"]

    line = assert_am_error(am("restore", archive, "--name", "x", check=False))
    assert str(archive) in line or "refus" in line

    assert not (tmp_path / "evil").exists()
    assert sorted(p.name for p in outdir.iterdir()) == ["victim"]
    assert (outdir / "victim").read_text() == "victim\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)
    assert am.list() == []
    assert_nothing_made(am.home)
    agents = am.home / "agents"
    assert not agents.exists() or list(agents.iterdir()) == []  # no .restore- leftovers either


def test_snapshots_of_one_agent_at_once_each_write_an_archive_of_their_own(am, repo):
    import subprocess

    agent_id = am.spawn(repo, "--cmd", "sleep 300")
    archives: list[str] = []
    for _ in range(5):  # until two of them fell in one second, as they mostly do
        ps = [
            subprocess.Popen(
                [*am.argv, "snapshot", agent_id],
                env=am.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outs = [p.communicate() for p in ps]
        assert [p.returncode for p in ps] == [0, 0, 0], outs
        made = [out.strip().splitlines()[-1] for out, _ in outs]
        assert len(set(made)) == 3, made
        archives += made
        stamps = [Path(a).name.split("-")[1].split(".")[0] for a in made]
        if len(set(stamps)) < 3:
            break
    else:
        pytest.fail(f"no two snapshots fell in one second: {archives}")
    for a in archives:
        with tarfile.open(a) as tar:
            assert json.load(tar.extractfile("am-snapshot.json"))["id"] == agent_id
    names = os.listdir(Path(archives[0]).parent)
    assert sorted(names) == sorted(
        [Path(a).name for a in archives]
        + [Path(a).name.replace(".tar.gz", ".json") for a in archives]
    )

"""Property 2: host-side file operations never follow a symbolic link out of the workspace.

The outside folder stands for the user's files; each positive control shows a naive operation
(dereferencing tar, a following walk, plain cat, an unfiltered extract) does reach it.
"""

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from helpers import assert_am_error, git, state_agents

from am import wsops

PROPERTY = "2 no symlink escapes"
SECRET = "SECRET-OF-THE-HOST-42"


@pytest.fixture
def outside(tmp_path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_text(SECRET + "\n")
    return d


def test_snapshot_stores_links_as_links(am, agent, outside):
    agent_id, ws = agent
    (ws / "to-file").symlink_to(outside / "secret.txt")
    (ws / "to-dir").symlink_to(outside)
    naive = ws.parent / "naive.tar"
    with tarfile.open(naive, "w", dereference=True) as tar:  # positive control: tar -h
        tar.add(ws, arcname="workspace")
    assert SECRET.encode() in naive.read_bytes()
    naive.unlink()
    path = Path(am("snapshot", agent_id).stdout.strip().splitlines()[-1])
    with tarfile.open(path) as tar:
        link = tar.getmember("workspace/to-file")
        assert link.issym() and link.linkname == str(outside / "secret.txt")
        assert tar.getmember("workspace/to-dir").issym()
        assert "workspace/to-dir/secret.txt" not in tar.getnames()
        for m in tar.getmembers():
            if m.isreg():
                assert SECRET.encode() not in tar.extractfile(m).read()
    # and such a snapshot restores, links intact, nothing written outside
    restored = am("restore", path, "--name", "back").stdout.strip().splitlines()[-1]
    back = am.home / "agents" / restored
    assert os.readlink(back / "to-file") == str(outside / "secret.txt")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def _archive(
    path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], manifest: dict | None = None
) -> Path:
    """A hand-made snapshot: a manifest (a valid one unless given), then MEMBERS."""
    manifest = json.dumps(
        manifest
        or {
            "id": "evil",
            "source": None,
            "branch": None,
            "commit": None,
            "worktree": False,
            "mode": "tmux",
        }
    ).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("am-snapshot.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        root = tarfile.TarInfo("workspace")
        root.type, root.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(root)
        for m, data in members:
            if data is not None:
                m.size = len(data)
            tar.addfile(m, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"pwned\n"):
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind=tarfile.SYMTYPE):
    m = tarfile.TarInfo(name)
    m.type, m.linkname = kind, target
    return m, None


def _attacks(outside: Path, home: Path) -> dict[str, list]:
    depth = "../" * 8
    return {
        "dotdot name": [_file(f"workspace/{depth}{outside.relative_to('/')}/dropped")],
        "absolute name": [_file(f"{outside}/dropped")],
        "file through absolute link": [
            _link("workspace/esc", str(outside)),
            _file("workspace/esc/dropped"),
        ],
        "file through relative link": [
            _link("workspace/esc", depth + str(outside)[1:]),
            _file("workspace/esc/dropped"),
        ],
        "file over a link": [
            _link("workspace/dropped", str(outside / "secret.txt")),
            _file("workspace/dropped", b"overwritten\n"),
        ],
        "hard link to outside": [
            _link("workspace/hl", str(outside / "secret.txt"), tarfile.LNKTYPE),
            _file("workspace/hl", b"overwritten\n"),
        ],
    }


@pytest.mark.parametrize(
    "attack",
    [
        "dotdot name",
        "absolute name",
        "file through absolute link",
        "file through relative link",
        "file over a link",
        "hard link to outside",
    ],
)
def test_restore_never_writes_outside(am, tmp_path, outside, attack):
    members = _attacks(outside, am.home)[attack]
    control = _archive(tmp_path / "control.tar.gz", members)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with tarfile.open(control) as tar:  # positive control: an unfiltered extract escapes
        for m in tar.getmembers():
            try:
                # (Pythons without extraction filters, Debian 12's 3.11.2, trust fully anyway)
                tar.extract(
                    m,
                    scratch,
                    **({"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}),
                )
            except OSError:
                pass
    escaped = (outside / "dropped").exists() or "overwritten" in (
        outside / "secret.txt"
    ).read_text()
    assert escaped, f"{attack}: the unfiltered control did not escape"
    for p in outside.iterdir():
        p.unlink()
    (outside / "secret.txt").write_text(SECRET + "\n")

    evil = _archive(tmp_path / "evil.tar.gz", _attacks(outside, am.home)[attack])
    line = assert_am_error(am("restore", evil, "--name", "evil", check=False))
    assert "refusing to restore" in line or "not an am snapshot" in line, line
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == SECRET + "\n"
    assert state_agents(am.home) == {}
    assert not (am.home / "agents" / "evil").exists()
    assert [p for p in (am.home / "agents").iterdir()] == []


def test_rm_and_clean_never_follow_links(am, repo, outside):
    a = am.spawn(str(repo), "--cmd", "sleep 300")
    b = am.spawn(str(repo), "--cmd", "sleep 300")
    for agent_id in (a, b):
        ws = am.home / "agents" / agent_id
        (ws / "to-dir").symlink_to(outside)
        (ws / "to-file").symlink_to(outside / "secret.txt")
    ws_a = am.home / "agents" / a
    victims = []  # positive control: a walk that follows links reaches the outside file
    for root, _, files in os.walk(ws_a, followlinks=True):
        victims += [Path(root) / f for f in files if f == "secret.txt"]
    assert victims
    am("rm", "--force", a)
    am("stop", b)
    am("clean", "--all")
    assert state_agents(am.home) == {}
    assert (outside / "secret.txt").read_text() == SECRET + "\n"


def test_rm_of_a_workspace_replaced_by_a_link(am, agent, outside):
    """tmux agents run as the user: one can swap its workspace folder for a link."""
    agent_id, ws = agent
    shutil.rmtree(ws)
    ws.symlink_to(outside)
    assert (ws / "secret.txt").exists()  # control: the path now leads outside
    am("rm", "--force", agent_id)
    assert not os.path.lexists(ws)
    assert (outside / "secret.txt").read_text() == SECRET + "\n"


@pytest.mark.parametrize("kind", ["link", "fifo", "folder", "too-large"])
def test_a_packed_refs_not_plainly_a_file_is_not_read_and_blocks_no_rm_force(
    am, agent, outside, kind
):
    """The agent makes .git/packed-refs a link to a file of the host's, a FIFO, a folder, or
    a sparse file past what am reads: am reads no ref from it, refuses what needs the refs,
    and 'am rm --force' still saves and removes, at once (a read that grew its bytes chunk by
    chunk took minutes for 200 MB)."""
    agent_id, ws = agent
    packed = ws / ".git" / "packed-refs"
    packed.unlink(missing_ok=True)
    if kind == "link":
        packed.symlink_to(outside / "secret.txt")
        assert SECRET in packed.read_text()  # control: by path, the refs are the host's file
    elif kind == "fifo":
        os.mkfifo(packed)
    elif kind == "folder":
        packed.mkdir()
    else:
        with open(packed, "wb") as f:
            f.truncate(wsops.REFS_MAX + 1)
    res = am("diff", agent_id, check=False)
    why = "larger than 256 MiB" if kind == "too-large" else "not a regular file"
    assert f"packed-refs is {why}" in assert_am_error(res)
    assert SECRET not in res.stdout + res.stderr
    assert "unsaved work: not inspected" in assert_am_error(am("rm", agent_id, check=False))
    res = am("rm", "--force", agent_id)
    assert "Saved unsaved work" in res.stderr and state_agents(am.home) == {}
    assert not os.path.lexists(ws)
    assert (outside / "secret.txt").read_text() == SECRET + "\n"


def test_logs_refuses_a_linked_log(am, agent, outside):
    agent_id, _ = agent
    log = Path(am.info(agent_id)["log"])
    log.unlink()
    log.symlink_to(outside / "secret.txt")
    assert SECRET in log.read_text()  # control: a plain read follows it
    res = am("logs", agent_id, check=False)
    assert "no log" in assert_am_error(res)
    assert SECRET not in res.stdout + res.stderr


def test_diff_shows_links_as_text(am, agent, outside):
    agent_id, ws = agent
    (ws / "dir").mkdir()
    (ws / "dir" / "secret.txt").write_text("inside\n")
    git("add", "dir", cwd=ws)
    git("commit", "-qm", "dir", cwd=ws)
    shutil.rmtree(ws / "dir")
    (ws / "dir").symlink_to(outside)  # a tracked folder swapped for a link out
    (ws / "to-file").symlink_to(outside / "secret.txt")
    assert SECRET in (ws / "dir" / "secret.txt").read_text()  # control: naive reads follow
    diff = am("diff", agent_id).stdout
    assert f"+{outside / 'secret.txt'}" in diff and f"+{outside}" in diff
    assert "b/dir/secret.txt" not in diff  # the committed file is gone, not read through
    assert SECRET not in diff
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_worktree_restore_stays_in_its_target(am, wt_agent, repo, outside, tmp_path):
    """A worktree snapshot's files are moved only inside the new worktree."""
    agent_id, ws = wt_agent
    (ws / "new.txt").write_text("work\n")
    (ws / "to-dir").symlink_to(outside)
    snap = Path(am("snapshot", agent_id).stdout.strip().splitlines()[-1])
    restored = (
        am("restore", snap, "--name", "wt-back", "--source", repo).stdout.strip().splitlines()[-1]
    )
    back = am.home / "agents" / restored
    assert (back / "new.txt").read_text() == "work\n"
    assert os.readlink(back / "to-dir") == str(outside)
    assert (back / ".git").is_file()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    # the same snapshot with a file planted through the link is refused, the target untouched
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(snap) as src, tarfile.open(evil, "w:gz") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isreg() else None)
        extra, data = _file("workspace/to-dir/dropped")
        extra.size = len(data)
        dst.addfile(extra, io.BytesIO(data))
    line = assert_am_error(am("restore", evil, "--name", "wt-evil", "--source", repo, check=False))
    assert "refusing to restore" in line
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert not (am.home / "agents" / "wt-evil").exists()
    assert "am/wt-evil" not in git("branch", "--list", "am/wt-evil", cwd=repo)


def test_the_workspace_hand_over_changes_links_never_what_they_name(tmp_path, outside):
    """As root, am gives a container agent's uid its workspace (chown, am/backends/hostside.py)
    at each start, over a tree the agent has written: a link to a file and a link to a folder
    outside stay pointing there, and only the links themselves change owner."""
    from am.backends.hostside import grant, grant_argv

    if os.getuid() != 0:
        pytest.fail("changing owners needs root, as am's hand-over does")
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "file").write_text("x")
    (ws / "to-file").symlink_to(outside / "secret.txt")
    (ws / "sub" / "to-dir").symlink_to(outside)
    uid = 2_000_000_123
    # Positive control: the same hand-over that follows links (-L) takes the outside files.
    naive = grant_argv(ws, uid)
    naive[naive.index("-P")] = "-L"
    subprocess.run(naive, check=True)
    assert (outside / "secret.txt").stat().st_uid == uid
    shutil.chown(outside / "secret.txt", 0, 0)
    shutil.chown(outside, 0, 0)
    grant(ws, uid + 1)
    for path in (ws, ws / "sub", ws / "sub" / "file"):
        assert path.stat().st_uid == uid + 1, path
    for link in (ws / "to-file", ws / "sub" / "to-dir"):
        assert os.lstat(link).st_uid == uid + 1, link
    assert (outside / "secret.txt").stat().st_uid == 0
    assert outside.stat().st_uid == 0

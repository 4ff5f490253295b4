"""Property 8: a container agent's workspace is read only inside its sandbox.

Three attacks of a hostile agent on the host tools that used to walk its workspace, each with a
real agent on both engines and a positive control showing the attack works against plain host
git or tarfile:

- a config race: the agent flips .git/config between a clean copy and one defining a clean
  filter while am diff runs (am checked the file, then git read it again);
- a crafted index entry whose path climbs out of the workspace: plain `git add --all` with a
  copy of that index hashes the host file into the agent's objects;
- a folder swapped for a symbolic link while a snapshot walks it (renameat2 RENAME_EXCHANGE in
  a loop): a path-based walk archives the outside file.

Races are tried a bounded number of times.
"""

import hashlib
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from helpers import assert_am_error

from .conftest import plain_env

PROPERTY = "8 container workspace read only in its sandbox"
pytestmark = pytest.mark.container
SECRET = "SECRET-OF-THE-HOST-6"
EMPTY_BLOB = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def host_git(ws: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    """Plain git on the host, as a user (or am before this round) would run it there."""
    return subprocess.run(
        ["git", "-c", f"safe.directory={ws}", *args],
        cwd=ws,
        env={**plain_env(), **(env or {})},
        capture_output=True,
    )


def spawn_racer(am, repo, engine, script: str, ready: str) -> tuple[str, Path]:
    agent = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        "--env",
        f"SCRIPT={script}",
        "--cmd",
        'python3 -c "$SCRIPT"',
    )
    am.wait_log(agent, ready)
    return agent, am.home / "agents" / agent


CONFIG_RACE = """
import os, time
os.chdir("/workspace")
clean = open(".git/config").read()
evil = clean + '[filter "x"]\\n\\tclean = {payload}\\n'
open(".gitattributes", "w").write("*.txt filter=x\\n")
open("untracked.txt", "w").write("agent work\\n")
print("RACING", flush=True)
while True:
    for text in (evil, clean):
        with open(".git/config.new", "w") as f:
            f.write(text)
        os.replace(".git/config.new", ".git/config")
        time.sleep(0.001)
"""


def test_config_race_in_diff_never_runs_on_the_host(am, repo, engine, markers, tmp_path):
    agent, ws = spawn_racer(
        am, repo, engine, CONFIG_RACE.replace("{payload}", markers.payload()), "RACING"
    )
    # positive control: plain git on the host, while the agent races, runs the filter. Each
    # try starts from no index: one that already holds the file, unchanged since, makes git
    # skip the file, so only the first try used to have a chance (it missed once in CI).
    control_index = tmp_path / "control-index"
    for _ in range(200):
        control_index.unlink(missing_ok=True)
        host_git(ws, "add", "--all", env={"GIT_INDEX_FILE": str(control_index)})
        if markers.path().exists():
            break
    markers.take()
    for _ in range(10):
        diff = am("diff", agent)
        assert "+agent work" in diff.stdout  # the agent's file, unfiltered
        assert markers.fired() == [], "am diff ran the planted filter on the host"
    am("stop", agent)


def crafted_index(ws: Path, entry: str, tmp: Path) -> bytes:
    """An index holding one entry whose path is ENTRY (git itself would refuse to write it):
    written with a placeholder of the same length, patched, and its checksum made again."""
    placeholder = "p" * len(entry)
    index = tmp / "crafted-index"
    subprocess.run(
        [
            "git",
            "-c",
            "safe.directory=*",
            "update-index",
            "--add",
            "--cacheinfo",
            f"100644,{EMPTY_BLOB},{placeholder}",
        ],
        cwd=ws,
        check=True,
        env={**plain_env(), "GIT_INDEX_FILE": str(index), "GIT_DIR": str(ws / ".git")},
    )
    body = index.read_bytes()[:-20].replace(placeholder.encode(), entry.encode())
    return body + hashlib.sha1(body).digest()


def loose(ws: Path, oid: str) -> Path:
    return ws / ".git" / "objects" / oid[:2] / oid[2:]


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_crafted_index_entry_copies_no_host_file(am, repo, engine, tmp_path, state):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n")
    oid = subprocess.run(
        ["git", "hash-object", str(outside / "secret.txt")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    agent = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        "--cmd",
        "echo work > new.txt; echo READY; sleep 300",
    )
    am.wait_log(agent, "READY")
    ws = am.home / "agents" / agent
    index = crafted_index(ws, os.path.relpath(outside / "secret.txt", ws), tmp_path)
    (ws / ".git" / "index").write_bytes(index)  # what the agent writes from inside
    # positive control: plain `git add --all` with a copy of that index copies the host file
    (tmp_path / "copy").write_bytes(index)
    host_git(ws, "add", "--all", env={"GIT_INDEX_FILE": str(tmp_path / "copy")})
    assert host_git(ws, "cat-file", "-p", oid).stdout.decode().strip() == SECRET
    loose(ws, oid).unlink()
    if state == "stopped":
        am("stop", agent)
    diff = am("diff", agent)
    assert "+work" in diff.stdout and SECRET not in diff.stdout + diff.stderr
    rm = am("rm", agent, check=False)  # the unsaved-work check (refused: running or unsaved)
    assert rm.returncode != 0 and SECRET not in rm.stderr
    snap = Path(am("snapshot", agent).stdout.strip().splitlines()[-1])
    assert not loose(ws, oid).exists(), "the host file was hashed into the agent's objects"
    assert host_git(ws, "cat-file", "-e", oid).returncode != 0
    with tarfile.open(snap) as tar:
        for m in tar.getmembers():
            if m.isreg():
                assert SECRET.encode() not in tar.extractfile(m).read()
    am("rm", "--force", agent)


SWAP = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
os.chdir("/workspace")
os.mkdir("d")
open("d/secret.txt", "w").write("inside the workspace\\n")
os.symlink("{outside}", "l")
print("SWAPPING", flush=True)
while True:
    libc.renameat2(-100, b"d", -100, b"l", 2)  # RENAME_EXCHANGE
"""


def test_snapshot_never_follows_a_swapped_folder(am, repo, engine, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n")
    agent, ws = spawn_racer(am, repo, engine, SWAP.replace("{outside}", str(outside)), "SWAPPING")
    # positive control: tarfile walks by path strings and follows the swap within some tries
    naive = tmp_path / "naive.tar"
    for _ in range(500):
        with tarfile.open(naive, "w") as tar:
            try:
                tar.add(ws, "workspace", filter=lambda m: None if "/.git" in m.name else m)
            except OSError:
                continue  # the swap also breaks the naive walk now and then
        if SECRET.encode() in naive.read_bytes():
            break
    assert SECRET.encode() in naive.read_bytes(), "control: the swap was never followed"
    for _ in range(5):
        res = am("snapshot", agent, check=False)
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
        with tarfile.open(res.stdout.strip().splitlines()[-1]) as tar:
            for m in tar.getmembers():
                assert m.name in ("am-snapshot.json", "workspace") or m.name.startswith(
                    "workspace/"
                )
                if m.isreg():
                    assert SECRET.encode() not in tar.extractfile(m).read(), m.name
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    am("stop", agent)


def test_stopped_agents_are_read_in_a_throwaway_container(am, repo, engine):
    """What reading a stopped agent's workspace leaves: nothing written into its .git, and no
    container behind."""
    agent = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        "--cmd",
        "echo work > new.txt; echo READY; sleep 300",
    )
    am.wait_log(agent, "READY")
    am("stop", agent)
    ws = am.home / "agents" / agent
    git_dir = ws / ".git"

    def listing():
        return sorted(
            (str(p.relative_to(git_dir)), p.stat().st_mtime_ns) for p in git_dir.rglob("*")
        )

    before = listing()
    assert "+work" in am("diff", agent).stdout
    assert "uncommitted" in am("rm", agent, check=False).stderr
    am("snapshot", agent)
    assert listing() == before
    res = subprocess.run(
        [engine, "ps", "-a", "--filter", f"label=am.home={am.home}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
    )
    assert res.stdout.split() == []


def test_removal_never_depends_on_the_sandbox(am, repo, engine):
    """With the agent's image gone, a stopped agent's workspace cannot be read in a sandbox:
    am says so, and rm --force still snapshots it (on the host, nothing running) and removes
    it."""
    import uuid

    tag = f"am-agent:gone-{uuid.uuid4().hex[:8]}"
    subprocess.run([engine, "tag", "am-agent:latest", tag], check=True)
    try:
        agent = am.spawn(
            repo,
            "--container",
            "--runtime",
            engine,
            "--image",
            tag,
            "--cmd",
            "echo work > new.txt; echo READY; sleep 300",
        )
        am.wait_log(agent, "READY")
        am("stop", agent)
    finally:
        subprocess.run([engine, "rmi", tag], capture_output=True)  # the tag only
    line = assert_am_error(am("rm", agent, check=False))
    assert "not inspected" in line and "throwaway" in line
    res = am("rm", "--force", agent)
    assert "snapshotting on the host" in res.stderr and "Saved unsaved work" in res.stderr
    snap = res.stderr.split("Saved unsaved work of")[1].split(" to ")[1].split()[0]
    with tarfile.open(snap) as tar:
        assert tar.extractfile("workspace/new.txt").read() == b"work\n"
    assert not (am.home / "agents" / agent).exists()

"""Snapshots: one archive of a whole workspace, with a manifest, and restoring from one.

Archives are written with tarfile, which stores symbolic links as links (it never follows them;
FIFOs, sockets and devices are left out), and read back through tarfile's ``data`` filter, which
refuses absolute names, ``..``, any name that resolves outside the target (through a link
restored earlier), hard links to files outside it and device files, so a restore never writes
outside its folder. Symbolic links themselves are restored as they were, wherever they point
(a virtualenv's ``bin/python -> /usr/bin/python3``): a link is only text, and nothing is ever
written through it. Creating one runs no git when the workspace fails
``am.gitsafe``'s checks: the manifest's commit is then null.
"""

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from am import git, gitsafe
from am.errors import AmError

MANIFEST = "am-snapshot.json"
ROOT = "workspace"


def create(record: dict, layout) -> Path:
    """Archive RECORD's workspace under the snapshots folder; returns the archive's path."""
    ws = Path(record["workspace"])
    if not ws.is_dir() or ws.is_symlink():
        raise AmError(f"workspace {ws} of agent {record['id']} is missing")
    head = head_commit(record)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    layout.snapshots.mkdir(parents=True, exist_ok=True)
    path = layout.snapshots / f"{record['id']}-{stamp}.tar.gz"
    n = 1
    while path.exists():
        n += 1
        path = layout.snapshots / f"{record['id']}-{stamp}-{n}.tar.gz"
    manifest = {
        "id": record["id"],
        "source": record.get("source"),
        "branch": record.get("branch"),
        "commit": head or None,
        "base_commit": record.get("base_commit"),
        "worktree": bool(record.get("worktree")),
        "agent": record.get("agent"),
        "mode": record.get("mode"),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = path.with_suffix(".partial")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            data = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
            # lstat-based: links stay links
            tar.add(ws, arcname=ROOT, recursive=True, filter=_plain)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    manifest["size"] = path.stat().st_size
    manifest["archive"] = str(path)
    path.with_suffix("").with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def head_commit(record: dict) -> str | None:
    """The workspace's HEAD commit, or None when git may not run there (or there is none)."""
    try:
        repo = gitsafe.open_record(record)
    except AmError:
        return None
    res = git.ws_git(repo, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
    return res.out.strip() or None


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Files, folders and links only: a FIFO or device is no one's work, and no restore takes it."""
    return info if info.isreg() or info.isdir() or info.issym() or info.islnk() else None


def restore_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's ``data`` filter, except that a symbolic link keeps its target."""
    if not member.issym():
        return tarfile.data_filter(member, dest)
    checked = tarfile.data_filter(member.replace(linkname=".", deep=False), dest)
    return checked.replace(linkname=member.linkname, deep=False)


def read_manifest(path: Path) -> dict:
    try:
        with tarfile.open(path, "r:*") as tar:
            member = tar.getmember(MANIFEST)
            f = tar.extractfile(member)
            return json.loads(f.read())
    except (OSError, KeyError, tarfile.TarError, ValueError) as e:
        raise AmError(f"{path} is not an am snapshot ({e})") from None


def extract(path: Path, dest: Path, *, skip_git: bool = False) -> None:
    """Extract the workspace of archive PATH into DEST (which must not exist yet)."""
    prefix = ROOT + "/"
    with (
        tarfile.open(path, "r:*") as tar,
        tempfile.TemporaryDirectory(prefix=".restore-", dir=dest.parent) as tmp,
    ):
        members = []
        for m in tar.getmembers():
            if m.name == MANIFEST:
                continue
            if not (m.name == ROOT or m.name.startswith(prefix)):
                raise AmError(f"refusing to restore {path}: it holds {m.name!r}, which is not "
                              f"under {ROOT}/", "am snapshots hold only their workspace")
            rel = m.name[len(prefix) :]
            if skip_git and (rel == ".git" or rel.startswith(".git/")):
                continue
            members.append(m)
        try:
            tar.extractall(tmp, members=members, filter=restore_filter)
        except tarfile.FilterError as e:
            raise AmError(f"refusing to restore {path}: {e}") from None
        src = Path(tmp) / ROOT
        if skip_git:
            # DEST is a fresh worktree at the snapshot's commit: replace its files wholesale so
            # that deletions the agent had not committed are restored too.
            for child in list(dest.iterdir()):
                if child.name == ".git":
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            for child in src.iterdir() if src.exists() else []:
                os.replace(child, dest / child.name)
        else:
            os.replace(src, dest)

"""Snapshots: one archive of a whole workspace, with a manifest, and restoring from one.

Archives are written with tarfile, which stores symbolic links as links (it never follows them;
FIFOs, sockets and devices are left out), and read back with tarfile's ``data`` filter (which
refuses absolute names, ``..``, hard links that point outside the target and device files),
symbolic links last and nothing beneath one, so a restore never writes outside its folder yet
brings links back exactly as they were. An archive holding anything but its manifest and
``workspace/`` is refused. Creating one runs no git when the workspace fails ``am.gitsafe``'s
checks: the manifest's commit is then null.
"""

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath

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


def read_manifest(path: Path) -> dict:
    try:
        with tarfile.open(path, "r:*") as tar:
            member = tar.getmember(MANIFEST)
            f = tar.extractfile(member)
            return json.loads(f.read())
    except (OSError, KeyError, tarfile.TarError, ValueError) as e:
        why = " ".join(str(e).split())  # tarfile's messages span several lines
        raise AmError(f"{path} is not an am snapshot ({why})") from None


def _refuse(path: Path, why: str) -> AmError:
    return AmError(f"refusing to restore {path}: {why}")


def _plan_members(tar, path: Path, skip_git: bool):
    """Split the workspace's members into (everything but symlinks, symlinks), refusing names
    that could write outside the target: absolute ones, ``..``, and anything beneath a link."""
    others, links = [], []
    for m in tar.getmembers():
        if m.name.startswith("/") or ".." in PurePosixPath(m.name).parts:
            raise _refuse(path, f"member {m.name!r} points outside the archive's folder")
        parts = PurePosixPath(m.name).parts
        if m.name == MANIFEST:
            continue
        if not parts or parts[0] != ROOT:
            raise _refuse(path, f"it holds {m.name!r}, which is not under {ROOT}/")
        if skip_git and parts[1:2] == (".git",):
            continue
        if len(parts) == 1 and not m.isdir():
            raise _refuse(path, f"{ROOT!r} is not a folder")
        (links if m.issym() else others).append(m)
    link_paths = {PurePosixPath(m.name) for m in links}
    for m in others + links:
        names = [m.name] + ([m.linkname] if m.islnk() else [])
        for name in names:
            if any(parent in link_paths for parent in PurePosixPath(name).parents):
                raise _refuse(path, f"{name!r} lies beyond a symbolic link")
    return others, links


def as_data(m: tarfile.TarInfo, path: Path) -> tarfile.TarInfo:
    """What tarfile's ``data`` filter makes of member M, for Pythons without it (Debian 12's
    3.11.2 has no extraction filters): special files refused, a hard link only to a name in
    the archive's folder, no setuid/setgid/sticky or group/other write bits, owned by the user
    who restores (as root too)."""
    import copy
    import stat

    if not (m.isreg() or m.isdir() or m.islnk()):
        raise _refuse(path, f"{m.name!r} is a special file")
    if m.islnk():
        target = PurePosixPath(m.linkname)
        if target.is_absolute() or ".." in target.parts or target.parts[:1] != (ROOT,):
            raise _refuse(path, f"hard link {m.name!r} points outside the archive's folder")
    m = copy.copy(m)
    mode = m.mode & ~(stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH)
    if m.isdir():
        mode |= 0o700
    else:
        mode |= 0o600
        if not mode & 0o100:
            mode &= ~0o011
    m.mode = mode
    m.uid, m.gid, m.uname, m.gname = os.getuid(), os.getgid(), "", ""
    return m


def extract(path: Path, dest: Path, *, skip_git: bool = False) -> None:
    """Extract the workspace of archive PATH into DEST (which must not exist yet).

    Symbolic links are restored as they were, wherever they point (a link is only a name), but
    only after everything else, and nothing is ever extracted beneath one.
    """
    with (
        tarfile.open(path, "r:*") as tar,
        tempfile.TemporaryDirectory(prefix=".restore-", dir=dest.parent) as tmp,
    ):
        others, links = _plan_members(tar, path, skip_git)
        tar.errorlevel = 2  # every extraction problem is an error, none only a warning
        try:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=others, filter="data")
            else:
                tar.extractall(tmp, members=[as_data(m, path) for m in others])
        except getattr(tarfile, "FilterError", ()) as e:
            raise _refuse(path, str(e)) from None
        except (tarfile.TarError, OSError) as e:
            raise _refuse(path, " ".join(str(e).split())) from None
        for m in links:
            link = Path(tmp, m.name)
            if os.path.lexists(link):
                raise _refuse(path, f"{m.name!r} appears twice")
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(m.linkname, link)
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

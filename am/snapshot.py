"""Snapshots: one self-contained archive of a whole workspace, with a manifest, and restoring.

**Creating one**: the workspace is walked where the agent cannot turn the walk against the
host (``am.workspace``: the agent's sandbox for a container agent); what comes back is a tar
stream, untrusted, and every member is re-checked and re-written here: only folders, files and
links under ``workspace/``, each parent a folder seen before, a hard link only to a file seen
before, no owner. A clone that borrows objects from am's repository cache (URL agents) gets
those objects as a pack of its own inside the archive, verified by ``git index-pack`` on the
host, and the ``alternates`` file that pointed at the cache is left out: the archive restores,
or extracts and passes ``git fsck``, anywhere.

**Restoring one** is stricter than tarfile's ``data`` filter: every member must be the manifest
or under ``workspace/``; no ``..``, absolute name or duplicate; nothing beneath a link or a
file; a hard link only to a regular file earlier in the archive; no device or FIFO. Members are
written through folder descriptors opened without following links, symbolic links last (as they
were, wherever they point) and folder modes at the very end, so no write, chmod or utime ever
passes through a link. The manifest's ``source`` is never used: a worktree snapshot is restored
only into a repository the user names.
"""

import contextlib
import errno
import io
import json
import os
import re
import shutil
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath

from am import clock, files, paths, validate
from am.errors import AmError

MANIFEST = "am-snapshot.json"
HEAD_MEMBER = "am-head.json"
ROOT = "workspace"
ALTERNATES = f"{ROOT}/.git/objects/info/alternates"
PACKS = f"{ROOT}/.git/objects/pack"
OBJECTS = "am-objects"  # a worktree's history, for a restore with no repository named
OID = validate.OID_RE
OBJECTS_PACK = re.compile(rf"^{OBJECTS}/pack-(?:[0-9a-f]{{40}}|[0-9a-f]{{64}})\.pack$")
ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}  # file names are bytes


def create(record: dict, layout, *, on_host: bool = False) -> Path:
    """Archive RECORD's (checked) workspace under the snapshots folder; returns its path."""
    from am import workspace

    workspace.check_present(record)
    ops = workspace.for_record(record, layout, on_host=on_host)
    path, tmp, fd = reserve(layout.snapshots, record["id"])
    manifest = {
        "id": record["id"],
        "source": record.get("source"),
        "branch": record.get("branch"),
        "commit": None,
        "base_commit": record.get("base_commit"),
        "worktree": bool(record.get("worktree")),
        "agent": record.get("agent"),
        "mode": record.get("mode"),
        "disk": (record.get("limits") or {}).get("disk"),  # for 'am restore' to mention
        "time": clock.iso(),
    }
    try:
        # gzip -6 as tar -z: level 9 takes twice the time for a few per cent
        with (
            open(fd, "wb", closefd=False) as partial,
            tarfile.open(
                fileobj=partial,
                mode="w:gz",
                compresslevel=6,
                format=tarfile.PAX_FORMAT,
                **ENCODING,
            ) as out,
        ):
            with ops.stream("tar") as pipe:
                src = tarfile.open(fileobj=pipe, mode="r|", **ENCODING)
                manifest["commit"] = _head(src)
                _add_bytes(out, MANIFEST, json.dumps(manifest, indent=1).encode())
                alternates, dropped = _copy_workspace(src, out)
            for warning in ops.warnings:
                print(f"am: warning: snapshot of {record['id']}: {warning}", file=sys.stderr)
            if dropped:
                print(
                    f"am: warning: snapshot of {record['id']}: left out {dropped} archive "
                    "member(s) that were not plain files, folders or links of the workspace",
                    file=sys.stderr,
                )
            if alternates is not None:
                _add_pack(ops, out, tmp, manifest["commit"], PACKS, alternates)
            elif manifest["worktree"] and manifest["commit"]:
                _add_pack(ops, out, tmp, manifest["commit"], OBJECTS, None)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        os.close(fd)  # and its lock: the archive is whole, or gone
    manifest["size"] = path.stat().st_size
    manifest["archive"] = str(path)
    path.with_suffix("").with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def _add_bytes(out, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    out.addfile(info, io.BytesIO(data))


def _head(src) -> str | None:
    """The HEAD commit the stream's first member names (None when it names none)."""
    from am import workspace

    first = src.next()
    if first is None or first.name != HEAD_MEMBER or not first.isreg() or first.size > 65536:
        raise AmError("the workspace's archive stream does not start with its HEAD")
    try:
        data = json.loads(src.extractfile(first).read())
    except ValueError:
        data = None
    return workspace.parse_head(data).commit if isinstance(data, dict) else None


def _clean(m: tarfile.TarInfo, seen: dict[str, str]) -> tarfile.TarInfo | None:
    """A fresh member with only what a workspace member may carry, or None to leave it out."""
    parts = PurePosixPath(m.name).parts
    if (
        not parts
        or parts[0] != ROOT
        or "/".join(parts) != m.name
        or ".." in parts
        or m.name in seen
    ):
        return None
    parent = "/".join(parts[:-1])
    if parent and seen.get(parent) != "dir":
        return None
    kind = (
        "dir"
        if m.isdir()
        else "reg"
        if m.isreg()
        else "sym"
        if m.issym()
        else "lnk"
        if m.islnk()
        else None
    )
    if kind is None or (len(parts) == 1 and kind != "dir"):
        return None
    if kind == "lnk" and seen.get(m.linkname) != "reg":
        return None
    info = tarfile.TarInfo(m.name)
    info.type, info.mode, info.mtime = m.type, m.mode & 0o777, max(0, int(m.mtime))
    if kind == "reg":
        info.type, info.size = tarfile.REGTYPE, m.size
    if kind in ("sym", "lnk"):
        info.linkname = m.linkname
    seen[m.name] = kind
    return info


def _copy_workspace(src, out) -> tuple[bytes | None, int]:
    """Copy the stream's workspace members into OUT, each re-checked; returns the alternates
    file (held back: a pack replaces it) and how many members were left out."""
    seen: dict[str, str] = {}
    alternates, dropped = None, 0
    while (m := src.next()) is not None:
        src.members.clear()  # a stream: nothing is looked up again, so nothing is kept
        info = _clean(m, seen)
        if info is None:
            dropped += 1
            continue
        if info.name == ALTERNATES and info.isreg() and info.size <= 65536:
            alternates = src.extractfile(m).read()
            continue
        out.addfile(info, src.extractfile(m) if info.isreg() else None)
    return alternates, dropped


# An archive is written to <name>.tar.partial, made and flocked by its writer alone
# (``files.create_locked``), then renamed; a pack is indexed for it in a .pack-<random>
# folder held likewise. Doctor tells either at work (held) from one a kill left.
PARTIAL = ".partial"
PACK_TEMP = ".pack-"


def reserve(folder: Path, agent_id: str) -> tuple[Path, Path, int]:
    """A new snapshot's archive path in FOLDER, its partial file made, and that file's
    descriptor holding its lock. Two snapshots of one agent in the same second each get a
    name of their own."""
    try:
        return _reserve(folder, agent_id)
    except OSError as e:
        raise files.cannot_write(folder, e) from None


def _reserve(folder: Path, agent_id: str) -> tuple[Path, Path, int]:
    paths.private_dir(folder)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1, 10_000):
        path = folder / (
            f"{agent_id}-{stamp}.tar.gz" if n == 1 else f"{agent_id}-{stamp}-{n}.tar.gz"
        )
        tmp = path.with_suffix(PARTIAL)
        if os.path.lexists(path):
            continue
        fd = files.create_locked(tmp)
        if fd is None:
            continue
        if not os.path.lexists(path):
            return path, tmp, fd
        # Another snapshot's, renamed from that partial between the look and the making.
        tmp.unlink()
        os.close(fd)
    raise AmError(f"no free name for a snapshot of {agent_id} in {folder}")


def left_by_a_kill(folder: Path, entry: str) -> bool:
    """Whether ENTRY of the snapshots FOLDER is part of a snapshot that ended before it
    finished: a partial archive, or a folder a pack was indexed in, that no process holds."""
    if entry.endswith(PARTIAL):
        return files.left_by_a_kill(folder / entry)
    return entry.startswith(PACK_TEMP) and files.held_left_by_a_kill(folder / entry)


def _add_pack(ops, out, partial: Path, commit: str | None, folder: str, alternates: bytes | None):
    """Objects the workspace's own folder lacks, packed in the sandbox and indexed here
    (beside the archive's PARTIAL file, in a held folder), under FOLDER: a URL clone's
    borrowed from am's cache (its ALTERNATES file is then left out), or a worktree's history
    (so it restores where its repository is not)."""
    fmt = "sha256" if commit and len(commit) == 64 else "sha1"
    try:
        with files.held_temp_dir(partial.parent, PACK_TEMP) as tmp:
            pack = Path(tmp) / "incoming.pack"
            with ops.stream("pack") as pipe, open(pack, "wb") as f:
                shutil.copyfileobj(pipe, f, 1 << 20)
            name = index_pack(pack, fmt, Path(tmp))
            for suffix in (".pack", ".idx"):
                info = out.gettarinfo(
                    str(pack.with_suffix(suffix)), f"{folder}/pack-{name}{suffix}"
                )
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(pack.with_suffix(suffix), "rb") as f:
                    out.addfile(info, f)
    except AmError as e:
        if alternates is None:
            print(
                f"am: warning: the worktree's history could not be packed into the "
                f"snapshot ({e.message}): it restores only into its repository (--source)",
                file=sys.stderr,
            )
            return
        print(
            f"am: warning: the snapshot borrows objects from am's cache, which could not be "
            f"packed into it ({e.message}): it restores only where that cache is",
            file=sys.stderr,
        )
        _add_bytes(out, ALTERNATES, alternates)


def index_pack(pack: Path, fmt: str, cwd: Path) -> str:
    """Check every object of the (untrusted) PACK and write its index beside it, with git
    outside any repository; returns the pack's name."""
    from am import git, proc

    res = proc.run(
        [
            "git",
            "index-pack",
            f"--object-format={fmt}",
            "-o",
            str(pack.with_suffix(".idx")),
            str(pack),
        ],
        cwd=cwd,
        env=git.ws_env({"GIT_CEILING_DIRECTORIES": str(cwd.parent)}),
    )
    name = res.out.strip().split()[-1] if res.ok and res.out.strip() else ""
    if not OID.match(name):
        raise AmError(f"git index-pack refused it: {res.brief()}")
    return name


# --- restoring --------------------------------------------------------------------------------


def read_manifest(path: Path) -> dict:
    """The archive's manifest, its fields checked (it is as untrusted as the rest)."""
    try:
        with tarfile.open(path, "r:*") as tar:
            member = tar.getmember(MANIFEST)
            if not member.isreg() or member.size > 1 << 20:
                raise ValueError("the manifest is not a small file")
            data = json.loads(tar.extractfile(member).read())
    except (OSError, KeyError, tarfile.TarError, ValueError) as e:
        why = " ".join(str(e).split())  # tarfile's messages span several lines
        raise AmError(f"{path} is not an am snapshot ({why})") from None
    if not isinstance(data, dict):
        raise AmError(f"{path} is not an am snapshot (its manifest is not an object)")

    def text(key):
        v = data.get(key)
        return v if isinstance(v, str) and v.isprintable() and len(v) < 4096 else None

    def oid(key):
        v = data.get(key)
        return v if isinstance(v, str) and OID.match(v) else None

    return {
        "id": text("id"),
        "source": text("source"),
        "branch": text("branch"),
        "commit": oid("commit"),
        "base_commit": oid("base_commit"),
        "worktree": data.get("worktree") is True,
        "agent": text("agent"),
        "mode": text("mode"),
        "disk": disk_size(text("disk")),
    }


def disk_size(value: str | None) -> str | None:
    """A manifest's --disk, if it is one (a hint for the user, never applied by itself)."""
    from am import disk

    try:
        return disk.check_size(value)
    except AmError:
        return None


def _refuse(path: Path, why: str) -> AmError:
    return AmError(f"refusing to restore {path}: {why}")


def plan_members(tar, path: Path, skip_git: bool) -> list[tarfile.TarInfo]:
    """The workspace members to restore, in order, or a refusal naming the first bad one."""
    kinds: dict[str, str] = {}
    chosen = []
    for m in tar.getmembers():
        name = m.name
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts:
            raise _refuse(path, f"member {name!r} points outside the archive's folder")
        if name == MANIFEST:
            continue
        if parts[:1] == (OBJECTS,) and (
            OBJECTS_PACK.match(name) or OBJECTS_PACK.match(name.replace(".idx", ".pack"))
        ):
            if not m.isreg() or name in kinds:
                raise _refuse(path, f"{name!r} is not a plain file")
            kinds[name] = "history"
            continue  # a worktree's history, not a workspace file (history_pack)
        if not parts or parts[0] != ROOT:
            raise _refuse(path, f"it holds {name!r}, which is not under {ROOT}/")
        if "/".join(parts) != name.rstrip("/"):
            raise _refuse(path, f"member {name!r} is not a plain name")
        if name in kinds:
            raise _refuse(path, f"{name!r} appears twice")
        kind = (
            "dir"
            if m.isdir()
            else "reg"
            if m.isreg() and not m.issparse()
            else "sym"
            if m.issym()
            else "lnk"
            if m.islnk()
            else None
        )
        if kind is None:
            raise _refuse(path, f"{name!r} is not a file, folder or link")
        if len(parts) == 1 and kind != "dir":
            raise _refuse(path, f"{ROOT!r} is not a folder")
        kinds[name] = kind
        for parent in list(PurePosixPath(name).parents)[:-1]:
            if kinds.get(str(parent), "dir") != "dir":
                raise _refuse(path, f"{name!r} lies beyond a {_what(kinds[str(parent)])}")
        if kind == "lnk":
            # Only to a regular file restored before it: never through a link (the hard link
            # to a symbolic link would otherwise have its mode and time set through that link).
            if kinds.get(m.linkname) != "reg":
                raise _refuse(
                    path,
                    f"hard link {name!r} points to {m.linkname!r}, which is "
                    "not a file earlier in the archive",
                )
        if skip_git and parts[1:2] == (".git",):
            continue
        chosen.append(m)
    if ROOT not in kinds:
        raise _refuse(path, f"it holds no {ROOT}/ folder")
    for m in chosen:  # parents named later in the archive than their children
        for parent in list(PurePosixPath(m.name).parents)[:-1]:
            if kinds.get(str(parent), "dir") != "dir":
                raise _refuse(path, f"{m.name!r} lies beyond a {_what(kinds[str(parent)])}")
    return chosen


def history_pack(path: Path) -> str | None:
    """The name of the pack of a worktree's history that archive PATH carries, if any."""
    with tarfile.open(path, "r:*", **ENCODING) as tar:
        return next((n for n in tar.getnames() if OBJECTS_PACK.match(n)), None)


def restore_history(path: Path, ws: Path, commit: str, branch: str | None) -> None:
    """Make WS (an empty folder) a repository of its own from the worktree history archive
    PATH carries: am's own git init (no template, no hooks), the pack indexed anew on the host
    (its index in the archive is not trusted), the branch at COMMIT, HEAD on it."""
    from am import git, gitsafe, proc

    member = history_pack(path)
    fmt = "sha256" if len(commit) == 64 else "sha1"
    res = proc.run(
        ["git", "init", "--quiet", "--template=", f"--object-format={fmt}", str(ws)],
        cwd="/",
        env=git.ws_env(),
    )
    if not res.ok or member is None:
        raise _refuse(path, f"cannot make a repository of its history: {res.brief()}")
    packs = ws / ".git" / "objects" / "pack"
    incoming = packs / "incoming.pack"
    with tarfile.open(path, "r:*", **ENCODING) as tar, open(incoming, "xb") as f:
        shutil.copyfileobj(tar.extractfile(member), f, 1 << 20)
    name = index_pack(incoming, fmt, packs)
    for suffix in (".pack", ".idx"):
        os.replace(incoming.with_suffix(suffix), packs / f"pack-{name}{suffix}")
    repo = gitsafe.open_clone(ws)
    if branch:
        git.ws_git(repo, "update-ref", f"refs/heads/{git.check_branch(branch)}", commit)
        git.ws_git(repo, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
    else:
        git.ws_git(repo, "update-ref", "--no-deref", "HEAD", commit)
    git.ws_git(repo, "read-tree", commit)


PACKED_REFS_MAX = 64 << 20  # a packed-refs file larger than this is not read
HEAD_TEMP = "HEAD.am-new"


def own_branch(ws: Path, branch: str) -> bool:
    """Put the HEAD of WS, a clone's restored workspace, on BRANCH (the new agent's own), made
    at the commit of the branch HEAD was on, as ``git switch -c`` would; the snapshot's branch
    stays. Written through descriptors, no link followed, and no git run in what the archive
    held. True as well when HEAD is on BRANCH already (a snapshot restored under its own
    agent's name); False, changing nothing, unless HEAD plainly names a branch with a loose
    or packed ref at a commit, and BRANCH is not there yet."""
    from am import gitfiles

    try:
        tree = _Tree(ws / ".git")
    except OSError:
        return False
    try:
        old = gitfiles.branch_in_head(_read(tree, "HEAD", 300))
        new = f"refs/heads/{branch}"
        if old is None or old == new:
            return old == new
        commit = gitfiles.object_name(_read(tree, old, 100)) or _packed(tree, old)
        if commit is None:
            return False
        _write_new(tree.top, HEAD_TEMP, f"ref: {new}\n")
        try:
            fd, last = tree.parent(new)
            try:
                _write_new(fd, last, f"{commit}\n")
            finally:
                os.close(fd)
        except BaseException:
            os.unlink(HEAD_TEMP, dir_fd=tree.top)
            raise
        os.replace(HEAD_TEMP, "HEAD", src_dir_fd=tree.top, dst_dir_fd=tree.top)
        return True
    except (OSError, UnicodeError):  # a name that is not a folder, BRANCH there already, ...
        return False
    finally:
        tree.close()


def _read(tree: "_Tree", name: str, size: int) -> str:
    """The first SIZE bytes of regular file NAME under TREE as text; "" if it is none."""
    from am import gitfiles

    try:
        fd, last = tree.parent(name, create=False)
    except OSError:
        return ""
    try:
        return gitfiles.head_of(last, size, fd)
    finally:
        os.close(fd)


def _packed(tree: "_Tree", ref: str) -> str | None:
    """The commit REF names in TREE's ``packed-refs``, if it is there."""
    from am import gitfiles

    text = _read(tree, "packed-refs", PACKED_REFS_MAX)
    if len(text) >= PACKED_REFS_MAX:
        return None
    # found in place: a list of its lines would cost many times the file's size
    end, line = text.find(f" {ref}\n"), f" {ref}\n"
    while end >= 0:
        start = text.rfind("\n", 0, end) + 1
        name = gitfiles.object_name(f"{text[start:end]}\n")
        if name:
            return name
        end = text.find(line, end + 1)
    return None


def _write_new(fd: int, name: str, text: str) -> None:
    """Make file NAME in folder FD holding TEXT, or nothing: a write that fails (a full disk)
    takes the file away again."""
    out = os.open(
        name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd
    )
    try:
        try:
            _pwrite_all(out, memoryview(text.encode()), 0)
        finally:
            os.close(out)
    except BaseException:
        os.unlink(name, dir_fd=fd)
        raise


def check(path: Path, *, skip_git: bool = False) -> None:
    """Refuse archive PATH now, before anything is made, if ``extract`` would."""
    try:
        with tarfile.open(path, "r:*", **ENCODING) as tar:
            plan_members(tar, path, skip_git)
    except (OSError, tarfile.TarError) as e:
        raise _refuse(path, " ".join(str(e).split())) from None


def _what(kind: str) -> str:
    return {"sym": "symbolic link", "lnk": "hard link", "reg": "file"}.get(kind, kind)


class _Tree:
    """Writes under one folder through descriptors: no component is ever a followed link."""

    def __init__(self, top: Path):
        self.top = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def close(self):
        os.close(self.top)

    def parent(self, name: str, create: bool = True) -> tuple[int, str]:
        """An open descriptor of NAME's folder (made as needed), and NAME's last part."""
        parts = PurePosixPath(name).parts
        fd = os.dup(self.top)
        try:
            for part in parts[:-1]:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o700, dir_fd=fd)
                nxt = os.open(
                    part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                )
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1]


def _file_mode(mode: int) -> int:
    mode = (mode & 0o755) | 0o600
    return mode if mode & 0o100 else mode & ~0o111


def _write(tar, tree: _Tree, m: tarfile.TarInfo) -> None:
    fd, last = tree.parent(m.name)
    try:
        if m.isdir():
            with contextlib.suppress(FileExistsError):  # made earlier as a child's parent
                os.mkdir(last, 0o700, dir_fd=fd)
        elif m.islnk():
            sfd, slast = tree.parent(m.linkname, create=False)
            try:
                os.link(slast, last, src_dir_fd=sfd, dst_dir_fd=fd, follow_symlinks=False)
            finally:
                os.close(sfd)
        else:
            out = os.open(
                last,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=fd,
            )
            try:
                write_sparse(out, tar.extractfile(m))
                os.fchmod(out, _file_mode(m.mode))
                os.utime(out, (max(0, int(m.mtime)),) * 2)
            finally:
                os.close(out)
    finally:
        os.close(fd)


BLOCK = 4096  # a file system block: the granularity of holes
ZEROS = bytes(1 << 20)


def write_sparse(out: int, src) -> None:
    """Copy SRC into the new file OUT, leaving every block of zeros a hole. An agent's sparse
    file (``truncate -s 1T``) takes no room where it was written, and a tar stream holds it as
    zeros: written out as they come, it would take its full length on the host's disk (or
    overflow a --disk workspace) though the agent never had that room."""
    end = 0
    while chunk := src.read(len(ZEROS)):
        if chunk == ZEROS[: len(chunk)]:
            end += len(chunk)
            continue
        view, run = memoryview(chunk), None  # run: where the blocks of data being met began
        for i in range(0, len(chunk) + BLOCK, BLOCK):
            block = view[i : i + BLOCK]
            data = len(block) > 0 and block != ZEROS[: len(block)]
            if data and run is None:
                run = i
            elif not data and run is not None:
                _pwrite_all(out, view[run:i], end + run)  # a call per stretch of data
                run = None
        end += len(chunk)
    os.ftruncate(out, end)  # the holes at the end, and the length


def _pwrite_all(out: int, data: memoryview, offset: int) -> None:
    """Write all of DATA at OFFSET: a file system that fills up mid-call writes less and says
    so only by the count (the next call raises ENOSPC), and a short write left as it is would
    read back as zeros once the file's length is set."""
    while data:
        n = os.pwrite(out, data, offset)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        data, offset = data[n:], offset + n


def _finish_dir(tree: _Tree, m: tarfile.TarInfo) -> None:
    fd, last = tree.parent(m.name, create=False)
    try:
        dfd = os.open(last, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        os.fchmod(dfd, (m.mode & 0o755) | 0o700)
        os.utime(dfd, (max(0, int(m.mtime)),) * 2)
    finally:
        os.close(dfd)


# A restore unpacks into <workspaces>/.restore-<id>+<random>, then moves the files into
# place. The folder is held (files.held_temp_dir), so that doctor tells a restore's at work
# from one a kill left; named for its agent, as an older am's was (told by its record).
RESTORE_TEMP = ".restore-"
TEMP_END = "+"


def restore_prefix(agent_id: str) -> str:
    return f"{RESTORE_TEMP}{agent_id}{TEMP_END}"


def agent_of_restore(entry: str) -> str | None:
    """The agent whose restore unpacks into folder ENTRY (pure); None if ENTRY is not one's,
    or is an older am's, which named no agent."""
    if not entry.startswith(RESTORE_TEMP):
        return None
    agent_id, sep, _ = entry.removeprefix(RESTORE_TEMP).rpartition(TEMP_END)
    return agent_id if sep else None


def extract(path: Path, dest: Path, *, skip_git: bool = False) -> None:
    """Extract the workspace of archive PATH into DEST (which must not exist yet, unless
    SKIP_GIT: then DEST is a fresh worktree whose files are replaced, .git kept)."""
    # A --disk workspace is a file system of its own, mounted at DEST: the files are written
    # on it, so that moving them into place is a rename, never a copy across file systems.
    inside = os.path.ismount(dest)
    with (
        tarfile.open(path, "r:*", **ENCODING) as tar,
        files.held_temp_dir(dest if inside else dest.parent, restore_prefix(dest.name)) as held,
    ):
        try:
            members = plan_members(tar, path, skip_git)
        except tarfile.TarError as e:
            raise _refuse(path, " ".join(str(e).split())) from None
        tmp = str(held)
        tree = _Tree(held)
        try:
            for m in members:
                if not m.issym():
                    _write(tar, tree, m)
            for m in members:
                if m.issym():
                    fd, last = tree.parent(m.name)
                    try:
                        os.symlink(m.linkname, last, dir_fd=fd)
                    finally:
                        os.close(fd)
            for m in sorted((m for m in members if m.isdir()), key=lambda m: -m.name.count("/")):
                _finish_dir(tree, m)
        except (OSError, tarfile.TarError) as e:
            raise _refuse(path, f"{getattr(e, 'strerror', None) or e}") from None
        finally:
            tree.close()
        src = Path(tmp) / ROOT
        if skip_git or inside:
            # DEST is a fresh worktree at the snapshot's commit (or the empty root of a --disk
            # file system): replace its files wholesale so that deletions the agent had not
            # committed are restored too.
            for child in list(dest.iterdir()):
                if child.name == ".git" and skip_git or str(child) == tmp:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            for child in src.iterdir() if src.exists() else []:
                os.replace(child, dest / child.name)
        else:
            os.replace(src, dest)

"""Workspace operations, the part that runs next to the workspace.

``am.workspace`` starts this file as ``python3 -I -c SOURCE OP WORKSPACE ...``: inside a sandbox
container for container agents (the agent's own container, or a throwaway one), on the host for
tmux agents. It imports nothing of am (it runs in the agent's image too), only the standard
library.

Git never works in the workspace's own git folder. It gets a private one, made here in a
temporary folder: am's minimal ``config``, ``HEAD`` as a commit id that this program read and
checked, an index built from that commit's tree (never the agent's index), no hooks, and the
workspace's objects borrowed read-only as an alternate. So no repository configuration, hook,
filter, crafted index entry or ``commondir`` takes effect, and nothing is written into the
agent's ``.git``. Files are opened relative to folders already open, never through a symbolic
link. What goes to stdout is data for am to check:

    head     WS [--common DIR]        {"head": commit|null, "branch": name|null}
    base     WS                       {"base": where HEAD meets the remote-tracking refs}
    unsaved  WS [--common DIR]        {"changed": n, "submodules": n, "ahead": n}
    diff     WS BASE [--stat]         one patch (or its summary): commits, edits and new files
                                      against BASE (new files are intent-to-add: no blob is
                                      written)
    log      WS BASE [--oneline|--json]  the commits since BASE: git log's text, or JSON of
                                      each commit object's fields
    bundle   WS                       one line of JSON (HEAD, its branch, the unsaved counts,
                                      "commits": how many the trusted side lacks), then, if it
                                      lacks any, a git bundle of HEAD as the one ref
                                      refs/am/head, without what --exclude names
    tar      WS [--common DIR]        a tar stream: am-head.json, then the workspace as
                                      "workspace/...": folders, files and links only
    pack     WS [--common DIR]        a pack of every object HEAD, the refs and reflogs reach
                                      (a worktree: HEAD's history only)

``--common DIR`` marks a worktree of the repository whose git folder is DIR. ``--exclude OID``
(repeatable; unsaved, bundle) names a commit the trusted side already has: it and its history
are not the agent's unsaved work, and the bundle leaves them out (ids the workspace does not
have are ignored). Exit status: 0, 1 on failure, 3 when the layout is refused; messages on
stderr start with ``wsops:``.
"""

import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile

OID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
SMALL = 1 << 20  # HEAD, a ref, the .git file
REFS_MAX = 256 << 20  # packed-refs, a reflog: a million refs are about 100 MiB
# A second layer over am's own config; the workspace's commit-graph and multi-pack index are
# its data too, so reachability is worked out from the objects themselves.
HARDENING = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "core.untrackedCache=false",
    "core.splitIndex=false",
    "diff.external=",
    "protocol.allow=never",
    "submodule.recurse=false",
    "safe.directory=*",
    "core.commitGraph=false",
    "core.multiPackIndex=false",
)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_child = None


class Refused(Exception):
    """The workspace's layout is not what am made: git is not run."""


class Failed(Exception):
    """End with a message on stderr and exit status CODE."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1):
    raise Failed(message, code)


def on_alarm(signum, frame):
    if _child is not None:
        _child.kill()
    fail("timed out")


def open_dir(name: str, dir_fd=None) -> int:
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


class TooLarge(OSError):
    """A file larger than what am reads of it."""


def read_small(name: str, dir_fd=None, limit: int = SMALL) -> bytes:
    """A regular file's bytes (never through a link, never a FIFO or device); TooLarge past
    LIMIT bytes."""
    fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{name} is not a regular file")
        chunks, size = [], 0  # joined once: adding each chunk to the rest is quadratic
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        raise TooLarge(f"{name} is larger than {limit} bytes")
    finally:
        os.close(fd)


def walk_files(top_fd: int, prefix: str = ""):
    """(relative name, dir fd, name) of every regular file under TOP_FD, following no link."""
    for root, _dirs, files, root_fd in os.fwalk(".", dir_fd=top_fd, follow_symlinks=False):
        rel = os.path.normpath(os.path.join(prefix, root))
        for name in files:
            yield os.path.join(rel, name), root_fd, name


class Layout:
    """The workspace's git folders, opened and checked: HEAD and every ref as data."""

    def __init__(self, ws: str, common: str | None):
        self.ws = os.path.abspath(ws)
        try:
            self.ws_fd = open_dir(self.ws)
        except OSError:
            raise Refused(f"{self.ws} is not a folder") from None
        if common is None:
            try:
                self.git_fd = open_dir(".git", self.ws_fd)
            except OSError:
                raise Refused(
                    "its .git is not the folder am cloned (a link, a file or missing)"
                ) from None
            self.common_fd = self.git_fd
            self.objects = os.path.join(self.ws, ".git", "objects")
        else:
            common = os.path.normpath(common)
            try:
                text = read_small(".git", self.ws_fd).decode()
            except (OSError, UnicodeDecodeError):
                raise Refused("its .git is not the file that names its worktree folder") from None
            if not text.startswith("gitdir: ") or text.count("\n") > 1:
                raise Refused(".git is not a plain 'gitdir:' line")
            gitdir = os.path.normpath(text[len("gitdir: ") :].strip())
            if os.path.realpath(os.path.dirname(gitdir)) != os.path.join(
                os.path.realpath(common), "worktrees"
            ):
                raise Refused(f".git points to {gitdir!r}, not to a worktree of {common}")
            try:
                self.common_fd = open_dir(common)
                self.git_fd = open_dir(gitdir)
            except OSError as e:
                raise Refused(f"cannot open its git folders: {e.strerror}") from None
            self.objects = os.path.join(common, "objects")
        self.refs = self._refs()
        self.head, self.branch = self._head()

    def _refs(self) -> dict:
        """Every ref of the (common) git folder: name -> commit, loose ones over packed ones."""
        refs, symbolic = {}, {}
        try:
            packed = read_small("packed-refs", self.common_fd, REFS_MAX).decode("utf-8", "replace")
        except FileNotFoundError:
            packed = ""
        except TooLarge:
            raise Refused(f"its packed-refs is larger than {REFS_MAX >> 20} MiB") from None
        except OSError:  # a link, a FIFO, a folder: its refs cannot be told
            raise Refused("its packed-refs is not a regular file") from None
        for line in packed.splitlines():
            oid, _, name = line.partition(" ")
            if OID.match(oid) and name.startswith("refs/"):
                refs[name] = oid
        try:
            refs_fd = open_dir("refs", self.common_fd)
        except OSError:
            return refs
        try:
            for rel, dir_fd, name in walk_files(refs_fd, "refs"):
                try:
                    value = read_small(name, dir_fd).decode().strip()
                except (OSError, UnicodeDecodeError):
                    continue
                if OID.match(value):
                    refs[rel] = value
                elif value.startswith("ref: "):
                    symbolic[rel] = value[5:].strip()
        finally:
            os.close(refs_fd)
        for name, target in symbolic.items():
            for _ in range(5):
                if target in refs or target not in symbolic:
                    break
                target = symbolic[target]
            if target in refs:
                refs[name] = refs[target]
        return refs

    def _head(self):
        try:
            value = read_small("HEAD", self.git_fd).decode().strip()
        except (OSError, UnicodeDecodeError):
            raise Refused("its HEAD is not a regular file") from None
        if OID.match(value):
            return value, None
        if value.startswith("ref: refs/"):
            branch = value[5:].strip()
            return self.refs.get(branch), branch.removeprefix("refs/heads/")
        raise Refused("its HEAD is neither a commit nor a branch")

    def reflog_oids(self) -> set:
        """Commits the reflogs name (a snapshot's pack must hold them for git fsck)."""
        found = set()
        for fd in {self.git_fd, self.common_fd}:
            try:
                logs_fd = open_dir("logs", fd)
            except OSError:
                continue
            try:
                for _rel, dir_fd, name in walk_files(logs_fd):
                    try:
                        text = read_small(name, dir_fd, REFS_MAX).decode("utf-8", "replace")
                    except OSError:
                        continue
                    for line in text.splitlines():
                        found.update(f for f in line.split(" ", 2)[:2] if OID.match(f))
            finally:
                os.close(logs_fd)
        return {oid for oid in found if set(oid) != {"0"}}


class Git:
    """git with a private git folder of am's own over the workspace's work tree and objects."""

    def __init__(self, lay: Layout, tmp: str):
        self.lay = lay
        gd = self.gd = os.path.join(tmp, "git")
        os.makedirs(os.path.join(gd, "objects"))
        os.makedirs(os.path.join(gd, "refs"))
        sha256 = bool(lay.head and len(lay.head) == 64)
        with open(os.path.join(gd, "config"), "w") as f:
            f.write(f"[core]\n\trepositoryformatversion = {int(sha256)}\n\tbare = false\n")
            if sha256:
                f.write("[extensions]\n\tobjectformat = sha256\n")
        with open(os.path.join(gd, "HEAD"), "w") as f:
            f.write((lay.head or "ref: refs/heads/unborn") + "\n")
        self.env = {
            "PATH": os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin",
            "HOME": tmp,
            "XDG_CONFIG_HOME": tmp,
            "LC_ALL": "C",
            "GIT_DIR": gd,
            "GIT_WORK_TREE": lay.ws,
            "GIT_INDEX_FILE": os.path.join(gd, "index"),
            "GIT_OBJECT_DIRECTORY": os.path.join(gd, "objects"),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": lay.objects,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_OPTIONAL_LOCKS": "0",
            "GIT_NO_REPLACE_OBJECTS": "1",
        }

    def argv(self, *args: str) -> list:
        argv = ["git", "--no-pager"]
        for kv in HARDENING:
            argv += ["-c", kv]
        return argv + list(args)

    def run(
        self, *args: str, stdin: bytes | None = None, stdout=subprocess.PIPE, check: bool = True
    ) -> bytes:
        global _child
        _child = subprocess.Popen(
            self.argv(*args),
            env=self.env,
            cwd="/",
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
        out, err = _child.communicate(stdin)
        code, _child = _child.returncode, None
        if code != 0 and not check:
            return b""
        if code != 0:
            text = err.decode("utf-8", "replace").strip().splitlines()
            fail(f"git {args[0]} failed: {text[-1] if text else code}")
        return out or b""

    def index_from_head(self) -> list:
        """The index of HEAD's tree (or an empty one); returns the paths of its gitlinks."""
        if self.lay.head:
            self.run("read-tree", self.lay.head)
        else:
            self.run("read-tree", "--empty")
        staged = self.run("ls-files", "--stage", "-z").split(b"\0")
        return [
            e.split(b"\t", 1)[1].decode("utf-8", "surrogateescape")
            for e in staged
            if e.startswith(b"160000 ") and b"\t" in e
        ]


def op_head(lay: Layout) -> None:
    json.dump({"head": lay.head, "branch": lay.branch}, sys.stdout)


def op_base(lay: Layout, git: Git) -> None:
    remotes = sorted({o for n, o in lay.refs.items() if n.startswith("refs/remotes/")})
    base = None
    if lay.head and remotes:
        base = git.run("merge-base", lay.head, *remotes, check=False).decode().strip() or None
    json.dump({"base": base}, sys.stdout)


def changed_files(git: Git) -> tuple[int, int]:
    """How many files differ from HEAD or are untracked, and how many submodules (not entered)."""
    gitlinks = git.index_from_head()
    status = git.run(
        "status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignore-submodules=all"
    )
    return len([p for p in status.split(b"\0") if p.strip()]), len(gitlinks)


def present(git: Git, oids) -> list:
    """Those of OIDS the workspace has (git rev-list refuses a name it cannot find)."""
    oids = sorted({o for o in oids if o and OID.match(o)})
    if not oids:
        return []
    check = git.run(
        "cat-file", "--batch-check=%(objectname)", stdin="".join(o + "\n" for o in oids).encode()
    )
    return [line for line in check.decode().splitlines() if OID.match(line)]


def count(git: Git, tips, exclude) -> int:
    """Commits reachable from TIPS and from none of EXCLUDE."""
    tips = [t for t in tips if t]
    if not tips:
        return 0
    lines = tips + ["^" + o for o in present(git, exclude)]
    out = git.run("rev-list", "--count", "--stdin", stdin="\n".join(lines).encode() + b"\n")
    return int(out.strip() or 0)


def op_unsaved(lay: Layout, git: Git, worktree: bool, saved: list) -> None:
    """Counts only: what changed, submodules that were not entered, commits nowhere else."""
    changed, submodules = changed_files(git)
    # A worktree's branches live in the user's repository, so only commits on no branch are at
    # risk; a clone's local commits are at risk unless a remote-tracking ref, or a commit the
    # trusted side says it has (SAVED: pulled or pushed), has them.
    heads = {o for n, o in lay.refs.items() if n.startswith("refs/heads/")}
    remotes = {o for n, o in lay.refs.items() if n.startswith("refs/remotes/")}
    tips, exclude = ({lay.head}, heads) if worktree else ({lay.head} | heads, remotes)
    ahead = count(git, tips, exclude | set(saved)) if lay.head else 0
    json.dump({"changed": changed, "submodules": submodules, "ahead": ahead}, sys.stdout)


def op_bundle(lay: Layout, git: Git, exclude: list) -> None:
    """HEAD's commits that the trusted side lacks, as a bundle of one ref, after a line of JSON
    saying what HEAD is and what stays behind (uncommitted files, submodules)."""
    changed, submodules = changed_files(git)
    commits = count(git, [lay.head], exclude)
    line = {
        "head": lay.head,
        "branch": lay.branch,
        "changed": changed,
        "submodules": submodules,
        "commits": commits,
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    if not commits:
        return
    os.makedirs(os.path.join(git.gd, "refs", "am"), exist_ok=True)
    with open(os.path.join(git.gd, "refs", "am", "head"), "w") as f:
        f.write(lay.head + "\n")
    revs = ["refs/am/head"] + ["^" + o for o in present(git, exclude)]
    git.run(
        "bundle",
        "create",
        "--quiet",
        "-",
        "--stdin",
        stdin="\n".join(revs).encode() + b"\n",
        stdout=sys.stdout.fileno(),
    )


def op_diff(lay: Layout, git: Git, base: str, stat: bool = False) -> None:
    """Untracked files join the private index as intent-to-add entries, so git reads every
    file where it lies and writes no blob; submodules are not staged, and show as the commit
    checked out in them (never entered: no status runs inside one)."""
    if not OID.match(base):
        fail(f"base {base!r} is not a commit id")
    gitlinks = git.index_from_head()
    git.run(
        "add", "--all", "--intent-to-add", "--", ".", *[f":(exclude,literal){p}" for p in gitlinks]
    )
    sys.stdout.flush()
    git.run(
        "diff",
        "--no-ext-diff",
        "--no-textconv",
        "--no-color",
        "--stat" if stat else "--binary",
        "--ignore-submodules=dirty",
        "--end-of-options",
        base,
        "--",
        stdout=sys.stdout.fileno(),
    )


LOG_FLAGS = (
    "--no-color",
    "--no-decorate",
    "--no-mailmap",
    "--no-show-signature",
    "--no-notes",
    "--no-ext-diff",
    "--no-textconv",
)


def op_log(lay: Layout, git: Git, base: str, style: str) -> None:
    """The commits HEAD has and BASE has not, newest first: git log's own text (STYLE medium
    or oneline), or (json) each commit object's fields, parsed here from the object itself."""
    if not OID.match(base):
        fail(f"base {base!r} is not a commit id")
    if not lay.head:
        if style == "json":
            json.dump({"commits": []}, sys.stdout)
        return
    if base not in present(git, [base]):
        fail(f"the workspace does not have its base commit {base}")
    revs = f"^{base}\n{lay.head}\n".encode()
    if style != "json":
        sys.stdout.flush()
        git.run(
            "log",
            *LOG_FLAGS,
            *(["--oneline"] if style == "oneline" else []),
            "--stdin",
            stdin=revs,
            stdout=sys.stdout.fileno(),
        )
        return
    oids = git.run("rev-list", "--stdin", stdin=revs).decode().split()
    raw = git.run("cat-file", "--batch", stdin="".join(o + "\n" for o in oids).encode())
    commits, at = [], 0
    for oid in oids:
        header, _, rest = raw[at:].partition(b"\n")
        size = int(header.split()[2])
        commits.append(parse_commit(oid, rest[:size]))
        at += len(header) + 1 + size + 1
    json.dump({"commits": commits}, sys.stdout)


def parse_commit(oid: str, data: bytes) -> dict:
    """A commit object's fields: parents, author and committer (name, email, ISO date), and
    its message, as text (bytes that are not UTF-8 replaced)."""
    head, _, message = data.partition(b"\n\n")
    out = {"commit": oid, "parents": [], "author": None, "committer": None}
    for line in head.split(b"\n"):
        key, _, value = line.partition(b" ")
        if key == b"parent":
            out["parents"].append(value.decode("ascii", "replace"))
        elif key in (b"author", b"committer"):
            out[key.decode()] = person(value)
    out["message"] = message.decode("utf-8", "replace")
    return out


def person(value: bytes) -> dict:
    """'Name <email> seconds +hhmm' as name, email and an ISO 8601 date."""
    import datetime

    name, _, rest = value.partition(b" <")
    email, _, when = rest.partition(b"> ")
    date = None
    try:
        seconds, tz = when.split()
        sign = -1 if tz.startswith(b"-") else 1
        offset = datetime.timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5])) * sign
        date = datetime.datetime.fromtimestamp(int(seconds), datetime.timezone(offset)).isoformat()
    except (ValueError, OverflowError, OSError):
        pass
    return {
        "name": name.decode("utf-8", "replace"),
        "email": email.decode("utf-8", "replace"),
        "date": date,
    }


def op_pack(lay: Layout, git: Git, worktree: bool) -> None:
    """A clone's every object (HEAD, refs, reflogs); a worktree's HEAD and its history (the
    refs are the user's repository's, not the agent's)."""
    tips = {lay.head} if worktree else {lay.head} | set(lay.refs.values()) | lay.reflog_oids()
    have = present(git, tips)
    sys.stdout.flush()
    git.run(
        "pack-objects",
        "--revs",
        "--stdout",
        "-q",
        stdin="".join(t + "\n" for t in have).encode(),
        stdout=sys.stdout.fileno(),
    )


class Padded(io.RawIOBase):
    """Exactly SIZE bytes of an open file: what shrank or failed while read is zeros, so the
    stream stays whole whatever the agent does to the file meanwhile."""

    def __init__(self, fd: int, size: int):
        self.fd, self.left, self.failed = fd, size, False

    def readable(self):
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self.left)
        if n <= 0:
            return 0
        try:
            data = os.read(self.fd, n)
        except OSError:
            data, self.failed = b"", True
        data = data or b"\0" * n
        buf[: len(data)] = data
        self.left -= len(data)
        return len(data)


def op_tar(ws: str, head: dict) -> int:
    """The workspace as a tar stream, walked by folder descriptors: a folder swapped for a link
    while the walk is in it is skipped, never followed; an entry that vanishes or changes kind
    is skipped. FIFOs, sockets and devices are left out. Returns the number skipped."""
    out = tarfile.open(
        fileobj=sys.stdout.buffer,
        mode="w|",
        format=tarfile.PAX_FORMAT,
        encoding="utf-8",
        errors="surrogateescape",
    )
    data = json.dumps(head).encode()
    info = tarfile.TarInfo("am-head.json")
    info.size = len(data)
    out.addfile(info, io.BytesIO(data))
    skipped = 0
    seen = {}  # (dev, inode) -> first name, for hard links
    top = open_dir(ws)
    root = os.fstat(top)
    out.addfile(member("workspace", root, tarfile.DIRTYPE))
    for rel, dirs, files, dir_fd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
        for name in sorted(dirs) + sorted(files):
            arc = os.path.normpath(os.path.join("workspace", rel, name))
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    if name in dirs:
                        out.addfile(member(arc, st, tarfile.DIRTYPE))
                elif stat.S_ISLNK(st.st_mode):
                    m = member(arc, st, tarfile.SYMTYPE)
                    m.linkname = os.readlink(name, dir_fd=dir_fd)
                    out.addfile(m)
                elif stat.S_ISREG(st.st_mode):
                    skipped += add_file(out, arc, name, dir_fd, seen)
                else:
                    skipped += 1
            except OSError:
                skipped += 1
    os.close(top)
    out.close()
    return skipped


def member(name: str, st, kind) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.mode, m.mtime = kind, stat.S_IMODE(st.st_mode), int(st.st_mtime)
    m.uid, m.gid = st.st_uid, st.st_gid
    return m


def add_file(out, arc: str, name: str, dir_fd: int, seen: dict) -> int:
    fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return 1
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in seen:
            m = member(arc, st, tarfile.LNKTYPE)
            m.linkname = seen[key]
            out.addfile(m)
            return 0
        seen[key] = arc
        m = member(arc, st, tarfile.REGTYPE)
        m.size = st.st_size
        data = Padded(fd, st.st_size)
        out.addfile(m, io.BufferedReader(data, 1 << 16))
        return int(data.failed)
    finally:
        os.close(fd)


def main(argv: list) -> int:
    try:
        return run(argv)
    except Failed as e:
        sys.stderr.write(f"wsops: {e}\n")
        return e.code


OPS = ("head", "base", "unsaved", "diff", "log", "bundle", "tar", "pack")
FLAGS = ("--stat", "--oneline", "--json")


def run(argv: list) -> int:
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args, opts, exclude, flags = [], {}, [], set()
    it = iter(argv)
    for a in it:
        if a in ("--common", "--timeout"):
            opts[a] = next(it, None)
        elif a == "--exclude":
            exclude.append(next(it, ""))
        elif a in FLAGS:
            flags.add(a)
        else:
            args.append(a)
    signal.alarm(int(opts.get("--timeout") or 3600))
    if len(args) < 2 or args[0] not in OPS:
        fail(f"usage: {'|'.join(OPS)} WORKSPACE [BASE] [--common DIR] [--exclude OID]...")
    op, ws, common = args[0], args[1], opts.get("--common")
    if op == "tar":
        try:
            lay = Layout(ws, common)
            head = {"head": lay.head, "branch": lay.branch}
        except Refused as e:
            head = {"head": None, "branch": None, "refused": str(e)}
        try:
            skipped = op_tar(ws, head)
        except OSError as e:
            fail(f"cannot read the workspace: {e.strerror}")
        if skipped:
            sys.stderr.write(
                f"wsops: skipped {skipped} entries that changed or could not be read\n"
            )
        return 0
    try:
        lay = Layout(ws, common)
    except Refused as e:
        fail(f"refusing to read the workspace: {e}", 3)
    if op == "head":
        op_head(lay)
        return 0
    tmp = tempfile.mkdtemp(prefix="am-wsops-")
    base = args[2] if len(args) > 2 else ""
    try:
        git = Git(lay, tmp)
        if op == "base":
            op_base(lay, git)
        elif op == "unsaved":
            op_unsaved(lay, git, common is not None, exclude)
        elif op == "diff":
            op_diff(lay, git, base, "--stat" in flags)
        elif op == "log":
            op_log(
                lay,
                git,
                base,
                "json" if "--json" in flags else "oneline" if "--oneline" in flags else "medium",
            )
        elif op == "bundle":
            op_bundle(lay, git, exclude)
        else:
            op_pack(lay, git, common is not None)
        sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

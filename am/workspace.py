"""Workspace operations: everything am reads from an agent's workspace, read where the agent
cannot turn it against the host.

One program, ``am/wsops.py``, does the reading (HEAD, the unsaved-work check, the diff, a
snapshot's files and borrowed objects) with a git folder of its own that no repository
configuration, hook, filter or index of the agent's reaches. This module chooses where that
program runs (``Where``) and checks what comes back:

- a **container agent**'s workspace is read inside a sandbox: ``exec`` in the agent's own
  container, as its user, while it runs; otherwise a throwaway container with the agent's policy
  and image (no network, read-only root, no capabilities, no new privileges, its user and
  limits) and the workspace mounted read-only. Whatever runs there runs with what the agent
  already has;
- a **tmux agent**'s workspace (it runs as the user anyway), and a restored or orphaned one, by
  a host process;
- a **Kubernetes agent**'s workspace, which is in its cluster and never on this host, through
  ``kubectl exec``: in the agent's container while it runs (an emptyDir workspace: in the pod's
  ``am-keep`` container), else in a pod made for the one operation over the workspace's claim,
  read-only, with the agent's policy, image, user and limits and no network.

Only data crosses back, and it is treated as untrusted: its size is capped, its time limited,
commit ids and counts are checked, tar members are re-checked by ``am.snapshot``, and a bundle
of the agent's commits is verified by ``am.bundle`` before a trusted repository takes one ref
from it; no path in it is ever resolved on the host.

Later operations add an op to wsops and a method here, or a ``Where``. On a remote engine the
workspace is an engine volume (``record["volume"]``): the running container's ``exec``, or a
throwaway container with that volume mounted read-only; never a host path.
"""

import io
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from am import proc, validate
from am.errors import AmError
from am.record import Mode
from am.valueclass import value_class

ANSWER_LIMIT = 1 << 16  # head, unsaved: a little JSON
DIFF_LIMIT = 1 << 28  # 256 MiB of patch (or log)
STREAM_LIMIT = 1 << 36  # a snapshot's tar stream or pack: 64 GiB
TIMEOUT = 600  # seconds for head, unsaved and diff
IDLE = 300  # seconds a tar stream or pack may go without a byte
STREAM_TIMEOUT = 6 * 3600  # wsops's own alarm for streams
OID = validate.OID_RE
SANDBOX_WORKSPACE = "/workspace"
MARK = "wsops: "
MAX_EXCLUDE = 256  # commits the trusted side has, named to the workspace op


class Refused(AmError):
    """The workspace's layout is not what am made, so git was not run there."""


class Unavailable(AmError):
    """The sandbox could not run at all (engine down, image missing)."""


class Gone(Unavailable):
    """The workspace no longer exists anywhere (an emptyDir whose pod was deleted)."""


@value_class
class Head:
    """A workspace's HEAD: its commit and branch, each None when it has none."""

    commit: str | None
    branch: str | None


@value_class
class Bundled:
    """What the bundle op said about the workspace (checked); the bundle holds COMMITS
    commits when that is not 0."""

    head: Head
    changed: int
    submodules: int
    commits: int


def source() -> str:
    """The program that runs next to the workspace (python3 -I -c SOURCE)."""
    return Path(__file__).with_name("wsops.py").read_text(encoding="utf-8")


def printable(text: str, width: int = 300) -> str:
    """Untrusted text for a one-line message: no control characters, bounded length."""
    text = "".join(c if c.isprintable() else "?" for c in " ".join(text.split()))
    return text if len(text) <= width else text[: width - 3] + "..."


class Where:
    """How the program is started, and what to undo when it must be stopped."""

    title = "on the host"
    workspace = ""
    common: str | None = None

    def argv(self, args: list[str]) -> list[str]:
        raise NotImplementedError

    def on_timeout(self) -> None:
        """Stop what runs when the reader gives up (a container outlives its client)."""

    def fallback(self) -> "Where | None":
        """Where to try again when this one could not start at all."""
        return None

    def data(self) -> bytes | None:
        """What the program gets on its standard input (None: nothing)."""
        return None

    def done(self) -> None:
        """Remove what was made for the operation, once it ended (either way)."""


class Host(Where):
    """A host process: for tmux agents (they run as the user anyway) and for workspaces no
    agent runs in (restored, orphaned)."""

    def __init__(self, workspace: Path, common: str | None = None):
        self.workspace, self.common = str(workspace), common

    def argv(self, args):
        return [sys.executable, "-I", "-c", source(), *args]


class Exec(Where):
    """The running agent's own container, as the agent's user."""

    def __init__(self, eng, name: str, common: str | None, then: "Where"):
        self.eng, self.name, self.common, self.then = eng, name, common, then
        self.workspace = SANDBOX_WORKSPACE
        self.title = f"in the container {name}"

    def argv(self, args):
        return self.eng.exec_argv(
            self.name, os.getuid(), os.getgid(), ["python3", "-I", "-c", source(), *args]
        )

    def fallback(self):
        return self.then  # it stopped in between: a throwaway container instead


class Throwaway(Where):
    """A container with the agent's policy and image, made for one operation and removed."""

    def __init__(self, eng, record: dict, home: str, common: str | None):
        from am.backends.engine import DEFAULT_IMAGE, SANDBOX_PREFIX

        self.eng, self.record, self.home, self.common = eng, record, home, common
        self.image = record.get("image") or DEFAULT_IMAGE
        self.prefix = f"{SANDBOX_PREFIX}{record['id']}-"
        self.name = ""
        self.workspace = SANDBOX_WORKSPACE
        self.title = f"in a throwaway {eng.runtime} container"

    def mounts(self) -> list[tuple[Path, str, bool]]:
        if self.record.get("volume"):
            # A remote engine's volume: the whole workspace, its objects included.
            from am.backends.engine import workspace_volume

            return [(workspace_volume(self.record["id"]), SANDBOX_WORKSPACE, True)]
        mounts = [(Path(self.record["workspace"]), SANDBOX_WORKSPACE, True)]
        if self.record.get("mirror"):
            # a URL clone's alternates name the mirror's objects by their host path
            objects = Path(self.record["mirror"]) / "objects"
            mounts.append((objects, str(objects), True))
        if self.common:
            mounts.append((Path(self.common), self.common, True))
        return mounts

    def argv(self, args):

        self.name = self.prefix + uuid.uuid4().hex[:8]
        try:
            self.eng.ensure_security()
        except AmError as e:
            raise Unavailable(f"cannot read the workspace {self.title}: {e.message}") from None
        limits = self.record.get("limits") or validate.DEFAULT_LIMITS
        if os.getuid() == 0 and held_on_host(self.record):
            # The sandbox reads as the agents' uid, as the agent would: a workspace am made
            # and no start has handed over yet (a restore; am's files are 0600) goes to it now.
            from am.backends.engine import agent_uid, grant

            grant(Path(self.record["workspace"]), agent_uid())
        from am import isolation

        return self.eng.sandbox_argv(
            self.name,
            self.image,
            self.home,
            self.record["id"],
            limits,
            self.mounts(),
            os.getuid(),
            os.getgid(),
            ["python3", "-I", "-c", source(), *args],
            self.record.get("isolation") or isolation.DEFAULT,
        )

    def on_timeout(self):
        if self.name:
            self.eng.call("rm", "--force", self.name, timeout=60)


class KubeExec(Where):
    """A container of the agent's pod, through ``kubectl exec``, as the agent's user: the
    program comes on stdin (``kube.wsops_command``)."""

    def __init__(self, target, pod: str, container: str, then: "Where | None"):
        self.target, self.pod, self.container, self.then = target, pod, container, then
        self.workspace = SANDBOX_WORKSPACE
        self.title = f"in the pod {pod}"

    def argv(self, args):
        from am import kube

        return kube.exec_argv(self.target, self.pod, self.container, kube.wsops_command(args))

    def data(self):
        return source().encode()

    def fallback(self):
        return self.then  # it stopped in between: a pod of its own over the claim


class KubeOp(Where):
    """A pod made for one operation on a stopped agent's workspace claim (``kube.op_manifests``),
    deleted when it ends."""

    def __init__(self, record: dict, home: str):
        from am.backends import kubernetes

        self.record, self.home = record, home
        self.target = kubernetes.target_of(record)
        self.workspace = SANDBOX_WORKSPACE
        self.token = ""
        self.title = f"in a pod over the claim of {record['id']}"

    def argv(self, args):
        from am import kube
        from am.backends import kubernetes

        self.token = uuid.uuid4().hex[:8]
        name = kube.op_name(self.record["id"], self.token)
        try:
            spec = kubernetes.recorded_spec(self.record, self.home)
            res = kubernetes.call(
                kube.create_argv(self.target),
                stdin=kube.as_list(kube.op_manifests(spec, self.token)),
            )
            if not res.ok:
                raise kubernetes.explain(res.err or res.out, self.target)
            kubernetes.wait_for(self.target, name, "op", timeout=kubernetes.OP_TIMEOUT, quiet=True)
        except AmError as e:
            self.done()
            raise Unavailable(f"cannot read the workspace {self.title}: {e.message}") from None
        return kube.exec_argv(self.target, name, "op", kube.wsops_command(args))

    def data(self):
        return source().encode()

    def done(self):
        if self.token:
            from am import kube
            from am.backends import kubernetes

            sel = f"{kube.selector(self.record['id'], self.home, 'op')},am.op={self.token}"
            kubernetes.call(
                kube.delete_argv(self.target, "pods,networkpolicies", sel, wait=False), timeout=60
            )
            self.token = ""

    on_timeout = done


class Workspace:
    """The operations on one workspace, run WHERE."""

    def __init__(self, where: Where):
        self.where = where
        self.warnings: list[str] = []  # what the last stream's reader skipped

    def _args(self, op: str, *extra: str, timeout: int = TIMEOUT) -> list[str]:
        args = [op, self.where.workspace, *extra, "--timeout", str(timeout)]
        return args + (["--common", self.where.common] if self.where.common else [])

    def _failure(self, code: int, err: str) -> AmError:
        mine = [ln[len(MARK) :] for ln in err.splitlines() if ln.startswith(MARK)]
        if mine and code == 3:
            return Refused(
                printable(mine[-1]),
                "am reads a workspace only in the layout it made; 'am rm --force' "
                "still snapshots it (without git) and deletes it",
            )
        if mine:
            return AmError(printable(mine[-1]))
        lines = [ln for ln in err.splitlines() if ln.strip()]
        return Unavailable(
            f"cannot read the workspace {self.where.title}: "
            f"{printable(lines[-1]) if lines else f'exit status {code}'}",
            None
            if isinstance(self.where, Host)
            else "a container agent's workspace is read in a container of its image, "
            "which needs python3 and git; 'am rm --force' still removes it",
        )

    def _run(self, op: str, *extra: str, limit: int) -> bytes:
        while True:
            try:
                code, out, err = proc.run_bytes(
                    self.where.argv(self._args(op, *extra)),
                    limit=limit,
                    timeout=TIMEOUT,
                    on_timeout=self.where.on_timeout,
                    data=self.where.data(),
                )
            except proc.NotFound as e:
                raise Unavailable(
                    f"cannot read the workspace {self.where.title}: {e.message}"
                ) from None
            except proc.TooLarge:
                raise AmError(
                    f"the {op} of the workspace is larger than {limit >> 20} MiB "
                    "(read " + self.where.title + ")"
                ) from None
            except proc.TimedOut:
                raise AmError(
                    f"reading the workspace {self.where.title} took more than {TIMEOUT}s"
                ) from None
            finally:
                self.where.done()
            if code == 0:
                return out
            error = self._failure(code, err)
            nxt = self.where.fallback()
            if isinstance(error, Unavailable) and nxt is not None:
                self.where = nxt
                continue
            raise error

    def _json(self, op: str, *extra: str) -> dict:
        try:
            data = json.loads(self._run(op, *extra, limit=ANSWER_LIMIT))
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise AmError(f"the {op} answer read {self.where.title} is not valid")
        return data

    def head(self) -> Head:
        """The workspace's HEAD commit (None if it has none) and branch (None if detached)."""
        return parse_head(self._json("head"))

    def base(self) -> str | None:
        """Where HEAD meets the remote-tracking refs (an adopted workspace's base)."""
        value = self._json("base").get("base")
        return value if isinstance(value, str) and OID.match(value) else None

    def unsaved(self, saved: tuple[str, ...] = ()) -> list[str]:
        """Why deleting the workspace would lose work (empty if it would not); SAVED: commits
        a trusted repository has (pulled or pushed), with their history."""
        data = self._json("unsaved", *excludes(saved))
        counts = {k: data.get(k) for k in ("changed", "submodules", "ahead")}
        if not all(counted(v) for v in counts.values()):
            raise AmError(f"the unsaved-work answer read {self.where.title} is not valid")
        reasons = []
        if counts["changed"]:
            reasons.append(f"{counts['changed']} uncommitted or untracked file(s)")
        if counts["submodules"]:
            reasons.append(f"{counts['submodules']} submodule(s), not inspected")
        if counts["ahead"]:
            reasons.append(f"{counts['ahead']} commit(s) the source does not have")
        return reasons

    def diff(self, base: str, stat: bool = False) -> bytes:
        """Commits, uncommitted edits and untracked files against commit BASE, one patch (or
        with STAT, git's summary of it)."""
        return self._run(
            "diff", checked_base(base), *(["--stat"] if stat else []), limit=DIFF_LIMIT
        )

    def log(self, base: str, oneline: bool = False) -> bytes:
        """git log's text of the commits since BASE (HEAD's, newest first)."""
        return self._run(
            "log", checked_base(base), *(["--oneline"] if oneline else []), limit=DIFF_LIMIT
        )

    def commits(self, base: str) -> list[dict]:
        """The commits since BASE as checked fields: commit, parents, author, committer
        (name, email, date), message."""
        try:
            data = json.loads(self._run("log", checked_base(base), "--json", limit=DIFF_LIMIT))
            found = data["commits"]
            if not isinstance(found, list):
                raise TypeError
            return [checked_commit(c) for c in found]
        except (ValueError, TypeError, KeyError, AttributeError):
            raise AmError(f"the log read {self.where.title} is not valid") from None

    def bundle(self, exclude: tuple[str, ...], dest: Path) -> Bundled:
        """Write to DEST (a private file the caller made) a bundle of HEAD's commits, without
        EXCLUDE's (commits the trusted repository has) and their history; returns what the op
        said. Nothing is written when the trusted side lacks no commit."""
        with self.stream("bundle", *excludes(exclude)) as pipe:
            reader = io.BufferedReader(pipe, 1 << 16)
            line = reader.readline(ANSWER_LIMIT)
            try:
                data = json.loads(line)
            except ValueError:
                data = None
            if (
                not isinstance(data, dict)
                or not line.endswith(b"\n")
                or not all(counted(data.get(k)) for k in ("changed", "submodules", "commits"))
            ):
                raise AmError(f"the bundle answer read {self.where.title} is not valid")
            try:
                with open(dest, "wb") as f:
                    shutil.copyfileobj(reader, f, 1 << 20)
            except OSError as e:  # a full disk, say: said as am's error, not a traceback
                raise AmError(
                    f"cannot write the agent's bundle to {dest}: {e.strerror}",
                    f"make room in {dest.parent.parent}",
                ) from None
        return Bundled(parse_head(data), data["changed"], data["submodules"], data["commits"])

    @contextmanager
    def stream(self, op: str, *extra: str) -> Iterator[proc.Pipe]:
        """The ``tar``, ``pack`` or ``bundle`` stream of the workspace, as a pipe to read."""
        argv = self.where.argv(self._args(op, *extra, timeout=STREAM_TIMEOUT))
        try:
            with proc.reading(
                argv,
                limit=STREAM_LIMIT,
                idle=IDLE,
                on_timeout=self.where.on_timeout,
                data=self.where.data(),
            ) as pipe:
                try:
                    yield pipe
                except Exception:
                    # A stream cut short by the command's own failure: say that, not what
                    # the reader made of the stump.
                    code = pipe.exited(2)
                    if code not in (None, 0):
                        raise self._failure(code, pipe.err) from None
                    raise
        except proc.NotFound as e:
            raise Unavailable(
                f"cannot read the workspace {self.where.title}: {e.message}"
            ) from None
        except proc.TooLarge:
            raise AmError(
                f"the {op} stream of the workspace is larger than {STREAM_LIMIT >> 30} GiB"
            ) from None
        except proc.TimedOut:
            raise AmError(
                f"reading the workspace {self.where.title} gave nothing for {IDLE}s"
            ) from None
        finally:
            self.where.done()
        if pipe.code != 0:
            raise self._failure(pipe.code, pipe.err)
        self.warnings = [
            printable(ln[len(MARK) :]) for ln in pipe.err.splitlines() if ln.startswith(MARK)
        ]


def counted(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 40


def checked_base(base: str) -> str:
    if not OID.match(base or ""):
        raise AmError(f"base {base!r} is not a commit id")
    return base


def excludes(oids) -> list[str]:
    """The op's arguments naming commits the trusted side has (ids only, at most
    MAX_EXCLUDE)."""
    args = []
    for oid in list(dict.fromkeys(o for o in oids if isinstance(o, str) and OID.match(o)))[
        :MAX_EXCLUDE
    ]:
        args += ["--exclude", oid]
    return args


def checked_commit(c: dict) -> dict:
    """One commit of the log op's JSON, with exactly the fields and types am expects."""

    def text(v, limit=1 << 20):
        if not isinstance(v, str) or len(v) > limit:
            raise TypeError
        return v

    def person(p):
        if p is None:
            return None
        date = p.get("date")
        return {
            "name": text(p["name"], 4096),
            "email": text(p["email"], 4096),
            "date": None if date is None else text(date, 64),
        }

    if (
        not OID.match(text(c["commit"], 64))
        or not isinstance(c["parents"], list)
        or not all(isinstance(o, str) and OID.match(o) for o in c["parents"])
    ):
        raise TypeError
    return {
        "commit": c["commit"],
        "parents": list(c["parents"]),
        "author": person(c["author"]),
        "committer": person(c["committer"]),
        "message": text(c["message"], DIFF_LIMIT),
    }


def parse_head(data: dict) -> Head:
    commit, branch = data.get("head"), data.get("branch")
    commit = commit if isinstance(commit, str) and OID.match(commit) else None
    ok = (
        isinstance(branch, str)
        and 0 < len(branch) < 256
        and branch.isprintable()
        and not branch.startswith("-")
    )
    return Head(commit, branch if ok else None)


def common_of(record: dict) -> str | None:
    """A worktree agent's shared git folder, found by git in the user's (trusted) source."""
    if not record.get("worktree"):
        return None
    from am import git

    return os.path.realpath(git.common_dir(Path(record["source"])))


def for_record(record: dict, layout, *, on_host: bool = False) -> Workspace:
    """The operations on RECORD's workspace (a checked record: ``am.records.check``), run in a
    sandbox for a container agent, or on the host (tmux agents; ON_HOST: a stopped container
    agent whose engine cannot run anything, for removal only)."""
    if in_cluster(record):
        return Workspace(kube_where(record, layout))
    from am import disk

    # A --disk workspace is read on its own file system (mounted again after a reboot).
    disk.ensure(layout.disk_image(record["id"]), Path(record["workspace"]), record["id"])
    common = common_of(record)
    if record.get("mode") != Mode.CONTAINER or on_host:
        return Workspace(Host(Path(record["workspace"]), common))
    from am.backends import for_runtime as engine

    eng = engine(record.get("runtime") or "auto")
    home = str(layout.root)
    throwaway = Throwaway(eng, record, home, common)
    try:
        state = eng.state(record["container"]) if record.get("container") else None
    except AmError:
        state = None  # no engine: the throwaway container will say so (Unavailable)
    if state is not None and state == (True, home):
        return Workspace(Exec(eng, record["container"], common, throwaway))
    return Workspace(throwaway)


def in_cluster(record: dict) -> bool:
    """Whether RECORD's workspace is in a Kubernetes cluster (read through kubectl)."""
    return record.get("runtime") == "kubernetes"


def held_on_host(record: dict) -> bool:
    """Whether RECORD's workspace is the host folder its record names (a Kubernetes agent's
    is in its cluster, a remote engine's agent's in an engine volume there)."""
    return not in_cluster(record) and not record.get("volume")


def check_present(record: dict) -> None:
    """Refuse an agent whose workspace folder on this host is missing (or a link); a
    workspace elsewhere is found, or not, by the operation itself."""
    ws = Path(record["workspace"])
    if held_on_host(record) and (not ws.is_dir() or ws.is_symlink()):
        raise AmError(f"workspace {ws} of agent {record['id']} is missing")


def kube_where(record: dict, layout) -> Where:
    """Where a Kubernetes agent's workspace is read: its pod, if it runs and carries this
    AM_HOME's label, else a pod over its claim; an emptyDir workspace only in its pod."""
    from am import kube
    from am.backends import kubernetes

    home = str(layout.root)
    target = kubernetes.target_of(record)
    name = kube.pod_name(record["id"])
    emptydir = (record.get("kubernetes") or {}).get("storage") == "emptydir"
    op = None if emptydir else KubeOp(record, home)
    try:
        pod = kubernetes.get_pod(target, name)
    except AmError as e:
        if emptydir:
            raise Unavailable(f"cannot read the workspace of {record['id']}: {e.message}") from None
        return op  # which says what is wrong, if the cluster still does not answer
    owned = pod is not None and (pod.get("metadata") or {}).get("labels", {}).get(
        "am.home"
    ) == kube.home_label(home)
    container = kube.KEEPER if emptydir else kube.AGENT
    if owned and kube.container_state(pod, container).phase == "running":
        return KubeExec(target, name, container, op)
    if emptydir:
        if pod is None:
            raise Gone(
                f"the pod {name} that held agent {record['id']}'s workspace (an "
                "emptyDir) is gone, and the workspace with it"
            )
        raise Unavailable(
            f"the pod {name} that holds agent {record['id']}'s workspace is "
            + ("not this AM_HOME's" if not owned else "not running")
        )
    return op


def at_path(path: Path) -> Workspace:
    """The operations on a workspace folder with no record (doctor's orphans), on the host."""
    return Workspace(Host(path))

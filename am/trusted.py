"""The trusted repository an agent's commits go to, what it already has, and its branches.

- A clone of a local repository: that repository, the user's source.
- A clone of a URL: am's **outbox** for that URL, a bare repository in am's cache that borrows
  the URL's cache mirror's objects (``objects/info/alternates``). ``am pull`` puts the agent's
  branch there, ``am push`` sends it from there: never from the workspace.

No agent ever writes to either (a container agent's mounts hold neither; the cache mirror is
mounted read-only), so git runs there with the user's own configuration and credentials
(``git.source_env``), as in any of their repositories. Only data from the workspace reaches
them: commit ids, checked, and a bundle that ``am.bundle`` verifies.
"""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from am import git, proc
from am.errors import AmError
from am.valueclass import value_class

MAX_TIPS = 256  # branch tips named to the workspace op as commits the repository has


@value_class
class Target:
    """A repository am may write into, with the URL of an outbox's agents."""

    path: Path
    url: str | None = None  # an outbox's: the URL its agents were spawned from

    @property
    def outbox(self) -> bool:
        return self.url is not None

    def __str__(self) -> str:
        return f"am's copy of {self.url} ({self.path})" if self.outbox else str(self.path)


def run(target: Target, *args: str, stdin: str | None = None) -> proc.Result:
    return proc.run(
        ["git", "-C", str(target.path), *args], env=git.source_env(), stdin=stdin, cwd="/"
    )


def outbox_path(cache: Path, mirror: Path) -> Path:
    return cache / "outbox" / mirror.name


def agent_branch(record: dict) -> str:
    """RECORD's own branch (``am/<id>`` unless spawned with --branch), checked as a branch
    name: a hand-edited record names no option and no other ref."""
    branch = record.get("branch") or f"am/{record['id']}"
    try:
        return git.check_branch(branch) if isinstance(branch, str) else git.check_branch("")
    except AmError:
        raise AmError(
            f"the record of agent {record['id']} names the branch {branch!r}, which "
            "is not a valid branch name",
            f"name the branch yourself: am pull {record['id']} --branch NAME",
        ) from None


@contextmanager
def opened(record: dict, layout) -> Iterator[Target]:
    """``for_record`` for a pull: an outbox made here is removed again if the block fails, so
    a refused pull leaves nothing behind."""
    made = False
    if git.is_url(record.get("source") or "") and record.get("mirror"):
        made = not (outbox_path(layout.cache, Path(record["mirror"])) / "HEAD").is_file()
    target = for_record(record, layout)
    try:
        yield target
    except BaseException:
        if made and target.outbox and not tip_any(target):
            shutil.rmtree(target.path, ignore_errors=True)
        raise


def tip_any(target: Target) -> bool:
    """Whether TARGET has any branch."""
    return bool(run(target, "for-each-ref", "--count=1", "--format=x", "refs/heads/").out.strip())


def for_record(record: dict, layout) -> Target:
    """Where RECORD's (a checked clone's) commits go; an outbox is made if there is none."""
    source = record.get("source")
    if not source:
        raise AmError(
            f"agent {record['id']} has no source repository (it was restored from "
            "a snapshot without one)",
            f"'am diff {record['id']}' shows its work; a restore with --source REPO "
            "names a repository to pull into",
        )
    if git.is_url(source):
        if not record.get("mirror"):
            raise AmError(
                f"agent {record['id']} was spawned from {source} before am kept a cache of it",
                "spawn a new agent to pull or push through am",
            )
        path = outbox_path(layout.cache, Path(record["mirror"]))
        make_outbox(path, Path(record["mirror"]))
        return Target(path, source)
    path = Path(source)
    if not yours(path, layout):
        raise AmError(
            f"the source {source} of agent {record['id']} is not a repository of "
            "yours: am runs no git in an agent's workspace",
            f"'am diff {record['id']}' shows its work",
        )
    res = proc.run(
        ["git", "-C", str(path), "rev-parse", "--git-dir"], env=git.source_env(), cwd="/"
    )
    if not path.is_dir() or not res.ok:
        raise AmError(
            f"the source repository {path} of agent {record['id']} is gone",
            f"'am diff {record['id']}' still shows its work; 'am rm --force "
            f"{record['id']}' snapshots it",
        )
    return Target(path)


def yours(path: Path, layout) -> bool:
    """Whether PATH may be a repository of the user's: absolute, and no agent's workspace."""
    real, agents = os.path.realpath(path), os.path.realpath(layout.workspaces)
    return path.is_absolute() and real != agents and not real.startswith(agents + os.sep)


def make_outbox(path: Path, mirror: Path) -> None:
    """A bare repository of am's own that borrows MIRROR's objects (made once, atomically)."""
    if (path / "HEAD").is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = (
        proc.run(
            ["git", "-C", str(mirror), "rev-parse", "--show-object-format"],
            env=git.source_env(),
            cwd="/",
        ).out.strip()
        or "sha1"
    )
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    res = proc.run(
        [
            "git",
            "init",
            "--quiet",
            "--bare",
            "--template=",
            f"--object-format={fmt}",
            "--",
            str(partial),
        ],
        env=git.source_env(),
        cwd="/",
    )
    if not res.ok:
        raise AmError(f"cannot make {path}: {res.brief(2)}", f"am needs to write in {path.parent}")
    info = partial / "objects" / "info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "alternates").write_text(f"{mirror / 'objects'}\n")
    try:
        os.rename(partial, path)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)  # another pull made it meanwhile
        if not (path / "HEAD").is_file():
            raise


def tips(target: Target, base: str | None = None) -> tuple[str, ...]:
    """Commits TARGET has, for the workspace op to leave out: its newest branch tips, and BASE
    if it has that commit."""
    found = run(
        target,
        "for-each-ref",
        "--sort=-committerdate",
        f"--count={MAX_TIPS}",
        "--format=%(objectname)",
        "refs/heads/",
    ).out.split()
    if base and has_commit(target, base):
        found.append(base)
    return tuple(dict.fromkeys(found))


def has_commit(target: Target, oid: str) -> bool:
    """Whether TARGET has OID as a commit object (not a tag that peels to one)."""
    return run(target, "cat-file", "-t", oid).out.strip() == "commit"


def saved(record: dict, layout) -> tuple[str, ...]:
    """Commits of RECORD's (checked) agent that are saved elsewhere, for the unsaved-work check:
    a local source's branch tips (so a pulled branch, or one merged into another, counts), or
    what ``am push`` sent to the agent's URL. A worktree's commits are the source's already."""
    source = record.get("source")
    if record.get("worktree") or not isinstance(source, str) or not source:
        return ()
    if git.is_url(source):
        return tuple(o for o in record.get("pushed") or () if isinstance(o, str))
    if not Path(source).is_dir() or not yours(Path(source), layout):
        return ()
    target = Target(Path(source))
    # the agent's own branch first: its commit dates are the agent's, so it may be older
    # than the MAX_TIPS newest
    own = record.get("branch") or f"am/{record.get('id')}"
    mine = tip(target, own) if isinstance(own, str) else None
    return tuple(dict.fromkeys(([mine] if mine else []) + list(tips(target))))


def tip(target: Target, branch: str) -> str | None:
    res = run(
        target,
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"refs/heads/{branch}^{{commit}}",
    )
    return res.out.strip() if res.ok else None


def checked_out(target: Target, branch: str) -> str | None:
    """The worktree of TARGET that has BRANCH checked out, if one has."""
    res = run(target, "worktree", "list", "--porcelain", "-z")
    return next((p for p, b in git.parse_worktrees(res.out) if b == branch), None)


def is_ancestor(target: Target, old: str, new: str) -> bool:
    return run(target, "merge-base", "--is-ancestor", old, new).ok


def count(target: Target, new: str, *exclude: str) -> int:
    args = ["rev-list", "--count", new] + [f"^{o}" for o in exclude if o]
    res = run(target, *args)
    return int(res.out.strip()) if res.ok and res.out.strip().isdigit() else 0


def move(
    target: Target, branch: str, new: str, old: str | None, message: str, agent_id: str
) -> None:
    """Point BRANCH of TARGET at NEW, only if it is still at OLD (None: does not exist)."""
    zero = "0" * len(new)
    res = run(target, "update-ref", "-m", message, f"refs/heads/{branch}", new, old or zero)
    if not res.ok:
        raise AmError(
            f"cannot move {branch} in {target}: {res.brief(2)}",
            f"run am pull {agent_id} again"
            if tip(target, branch) != old
            else f"pull into another branch: am pull {agent_id} --branch NAME",
        )

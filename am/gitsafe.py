"""Opening a fresh clone for host-side git: refuse anything git could be made to run.

Used on a workspace am has just cloned, before any agent had it (the spawn's branch switch, the
cache clone's remote URL); once an agent has had a workspace, am reads it only through
``am.workspace``. Before ``am`` runs any git there it checks, without running git in it:

- the layout: a clone's ``.git`` is a real folder (no ``commondir``, no object alternates but
  its own cache mirror's), with no symbolic link, FIFO, socket or device in it. Git is then
  given ``--git-dir`` and ``--work-tree`` explicitly, so it never discovers another repository;
- the configuration: every file git would read as repository configuration (``config``,
  ``config.worktree``) is parsed by ``git config --file`` outside any repository, and a key
  outside ``ALLOWED`` (programs, includes, ``core.worktree``, drivers, ...) is refused by name.

``am.git.ws_git`` keeps its ``-c`` overrides and clean environment as a second layer.
"""

import os
import shlex
import stat
from pathlib import Path

from am import proc
from am.errors import AmError
from am.valueclass import value_class

# Repository configuration keys that make git run nothing and read nothing outside the
# repository (lowercase; '*' stands for a subsection). Everything else is refused.
ALLOWED = (
    "core.repositoryformatversion",
    "core.filemode",
    "core.bare",
    "core.logallrefupdates",
    "core.ignorecase",
    "core.precomposeunicode",
    "core.symlinks",
    "core.autocrlf",
    "core.eol",
    "core.safecrlf",
    "core.quotepath",
    "core.abbrev",
    "core.sparsecheckout",
    "core.sparsecheckoutcone",
    "index.sparse",
    "remote.*.url",
    "remote.*.pushurl",
    "remote.*.fetch",
    "remote.*.tagopt",
    "remote.*.prune",
    "branch.*.remote",
    "branch.*.merge",
    "branch.*.rebase",
    "branch.*.description",
    "submodule.*.url",
    "submodule.*.active",
    "user.name",
    "user.email",
    "gc.auto",
    "pull.rebase",
    "pull.ff",
    "push.default",
    "fetch.prune",
    "init.defaultbranch",
    "extensions.objectformat",
    "extensions.worktreeconfig",
)
# Keys git takes from the command line over the repository, where ws_git pins a harmless value.
# core.hooksPath is common legitimate configuration (husky and similar tools set it).
NEUTRALISED = ("core.hookspath",)

# Files of a git folder that git reads directly; they must be regular files when present.
READ_FILES = ("HEAD", "config", "config.worktree", "index", "packed-refs", "commondir", "gitdir")


class Refused(AmError):
    """A workspace am will not run git in."""


@value_class
class Repo:
    """A checked workspace: git is pointed at exactly these folders."""

    work_tree: Path
    git_dir: Path
    common_dir: Path


def refuse(ws: Path, why: str, hint: str | None = None) -> Refused:
    return Refused(
        f"refusing to run git in workspace {ws}: {why}",
        hint
        or "am runs no git where the repository could make it run a program or reach "
        "outside the workspace; 'am rm --force' still snapshots (without git) and deletes it",
    )


def config_entries(path: Path) -> list[tuple[str, str | None]]:
    """The (key, value) pairs of config file PATH, parsed by git outside any repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_DIR=os.devnull, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    res = proc.run(
        ["git", "--no-pager", "config", "--file", str(path), "--no-includes", "--list", "-z"],
        cwd="/",
        env=env,
    )
    if not res.ok:
        raise AmError(f"cannot parse {path}: {res.brief()}")
    entries = []
    for item in res.out.split("\0"):
        if item:
            key, nl, value = item.partition("\n")
            entries.append((key, value if nl else None))
    return entries


def allowed(key: str) -> bool:
    section, _, rest = key.partition(".")
    sub, dot, name = rest.rpartition(".")
    return f"{section.lower()}.{'*.' if dot else ''}{name.lower()}" in ALLOWED + NEUTRALISED


def check_config(path: Path, ws: Path, hint: str | None = None) -> None:
    """Refuse when config file PATH holds a key outside the allowlist."""
    try:
        entries = config_entries(path)
    except AmError as e:
        raise refuse(ws, e.message) from None
    for key, _ in entries:
        if not allowed(key):
            raise refuse(
                ws,
                f"{path} sets {key!r}, which am does not allow",
                hint
                or f"if the agent's work is wanted, remove the key first: "
                f"git config --file {shlex.quote(str(path))} --unset-all {shlex.quote(key)} "
                "(or 'am rm --force' snapshots and deletes without running git)",
            )


def _check_tree(top: Path, ws: Path) -> None:
    """No symbolic link or special file anywhere under TOP (a git folder), and no folder
    that cannot be read. Each entry's type comes with its folder's listing (an ``lstat`` only
    where the file system does not give it): a clone with thousands of loose objects took
    one ``lstat`` and one ``Path`` per object."""
    folders = [os.fspath(top)]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as entries:
                for e in entries:
                    if e.is_dir(follow_symlinks=False):
                        folders.append(e.path)
                    elif not e.is_file(follow_symlinks=False):
                        kind = "symbolic link" if e.is_symlink() else "special file"
                        raise refuse(ws, f"its git folder holds a {kind}: {e.path}")
        except OSError as err:
            raise refuse(ws, f"cannot read {folder}: {err.strerror}") from None


def _check_files(git_dir: Path, ws: Path) -> None:
    for name in READ_FILES:
        p = git_dir / name
        if os.path.lexists(p) and not stat.S_ISREG(os.lstat(p).st_mode):
            raise refuse(ws, f"{p} is not a regular file")


def _real_dir(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink()


def mirror_objects(mirror) -> tuple[Path, ...]:
    """The object folder a clone through the cache mirror MIRROR may borrow from."""
    return (Path(mirror) / "objects",) if mirror else ()


def _check_alternates(path: Path, allowed: tuple[Path, ...], ws: Path) -> None:
    """Borrowed objects only from am's own cache mirror (``clone --shared``), nowhere else."""
    if not os.path.lexists(path):
        return
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise refuse(ws, f"{path} is not a regular file")
    real = {os.path.realpath(p) for p in allowed}
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if (
            line
            and not line.startswith("#")
            and (not os.path.isabs(line) or os.path.realpath(line) not in real)
        ):
            raise refuse(ws, f"{path} borrows objects from {line}, which is not am's cache")


def open_clone(ws: Path, alternates: tuple[Path, ...] = ()) -> Repo:
    """Check a cloned workspace (its own ``.git`` folder) and return where git should look;
    ALTERNATES are the object folders it may borrow from (its cache mirror's)."""
    ws = Path(os.path.abspath(ws))
    if not _real_dir(ws):
        raise refuse(ws, "it is not a folder")
    gd = ws / ".git"
    if not _real_dir(gd):
        what = "a symbolic link" if gd.is_symlink() else "a file" if gd.exists() else "missing"
        raise refuse(ws, f"its .git is {what}, not the folder am cloned")
    for redirect in ("commondir", "objects/info/http-alternates"):
        if os.path.lexists(gd / redirect):
            raise refuse(ws, f"{gd / redirect} would make git read another repository")
    _check_alternates(gd / "objects" / "info" / "alternates", alternates, ws)
    _check_files(gd, ws)
    _check_tree(gd, ws)
    for name in ("config", "config.worktree"):
        if (gd / name).exists():
            check_config(gd / name, ws)
    return Repo(ws, gd, gd)

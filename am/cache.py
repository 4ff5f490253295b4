"""The repository cache: one bare mirror per URL, whose objects every clone of it borrows.

The first spawn from a URL makes a mirror under the cache folder; each later one fetches only
what changed into it, then clones the workspace from it with ``--shared`` (objects borrowed
through ``objects/info/alternates``), so an extra agent costs about its checkout, not its
history. Mirrors never prune or garbage-collect: a workspace may still need any object they
ever held. Agents never write to a mirror — in container mode it is mounted read-only.
"""

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from am import files, git, proc
from am.errors import AmError


def mirror_path(cache: Path, url: str) -> Path:
    """A stable, readable folder name for URL's mirror."""
    tail = re.sub(r"[^A-Za-z0-9._-]+", "-", url.rstrip("/").rsplit("/", 1)[-1])[:40] or "repo"
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache / "mirrors" / f"{tail.strip('.-') or 'repo'}-{digest}.git"


@contextlib.contextmanager
def locked(mirror: Path) -> Iterator[None]:
    from am import paths

    paths.private_dir(mirror.parent)
    with files.locked(mirror.with_suffix(".lock")):
        yield


# am's umask makes what git writes 0600, but container agents of a root am run as their own uid
# and borrow the mirror's objects (mounted read-only): these stay readable inside the mirror,
# whose cache folder is the user's alone (0700).
READABLE = ["-c", "core.sharedRepository=0644"]


def mirror_argv(url: str, mirror: Path) -> list[str]:
    return ["git", *READABLE, "clone", "--quiet", "--mirror", "--", url, str(mirror)]


def fetch_argv(mirror: Path) -> list[str]:
    # No --prune: objects of deleted or rewritten branches stay reachable for old workspaces.
    return ["git", *READABLE, "-C", str(mirror), "fetch", "--quiet", "--no-prune", "origin"]


def update(url: str, mirror: Path) -> None:
    """Make MIRROR hold everything URL has now (the only network traffic of a spawn)."""
    if (mirror / "HEAD").is_file():
        res = proc.run(fetch_argv(mirror), env=git.source_env())
        if not res.ok:
            raise AmError(f"cannot fetch {url}: {res.brief()}")
        return
    partial = mirror.with_name(mirror.name + ".partial")
    import shutil

    shutil.rmtree(partial, ignore_errors=True)
    res = proc.run(mirror_argv(url, partial), env=git.source_env())
    if not res.ok:
        shutil.rmtree(partial, ignore_errors=True)
        raise AmError(f"cannot clone {url}: {res.brief()}")
    proc.run(["git", "-C", str(partial), "config", "gc.auto", "0"])
    os.replace(partial, mirror)


def clone(url: str, dest: Path, cache: Path) -> Path:
    """Clone URL into DEST through its mirror; returns the mirror's path."""
    mirror = mirror_path(cache, url)
    with locked(mirror):
        update(url, mirror)
        res = proc.run(
            ["git", "clone", "--quiet", "--shared", "--no-checkout", "--", str(mirror), str(dest)],
            env=git.source_env(),
        )
    if not res.ok:
        raise AmError(f"cannot clone {url} from its cache: {res.brief()}")
    # The agent's remote is the real URL, as with a plain clone.
    from am import gitsafe

    repo = gitsafe.open_clone(dest, gitsafe.mirror_objects(mirror))
    git.ws_git(repo, "remote", "set-url", "origin", url)
    return mirror

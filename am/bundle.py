"""An agent's commits, received as a git bundle: untrusted bytes, checked before a trusted
repository takes one commit from them.

The bundle is made where the workspace is read (``am.workspace``: in the agent's sandbox for a
container agent, by the hardened host git of ``am/wsops.py`` for a tmux agent) and lands in a
private file in am's cache. The trusted repository (the user's source, or am's outbox for a URL
agent: ``am.trusted``) then, with the user's own git configuration:

1. the header is parsed here: a v2 or v3 bundle (no capability but its object format) whose
   ref ``refs/am/head`` appears once and names the commit the workspace op reported; any other
   ref it carries is reported and never taken;
2. ``git bundle verify``: its prerequisites are there;
3. ``git index-pack --strict --fix-thin`` of its pack, into a scratch file beside the bundle:
   every object is checked as ``fetch.fsckObjects`` would (git before 2.46 does not apply
   that setting to a fetch from a bundle), so a malformed object stops the pull here;
4. ``git fetch --no-tags`` of exactly ``refs/am/head``, with no destination: the objects arrive,
   no ref of the repository changes, no tag is followed, no submodule is entered; what arrived
   must be a commit object. The caller then moves one branch (``am.trusted.move``).

No hook, filter or configuration of the workspace takes part: nothing of it is read on the host,
and a fetch from a bundle runs nothing of the bundle's.
"""

import os
import re
from pathlib import Path

from am import git, proc
from am.errors import AmError
from am.valueclass import value_class
from am.workspace import printable

REF = "refs/am/head"
SIGNATURES = {b"# v2 git bundle\n": 2, b"# v3 git bundle\n": 3}
HEADER_LIMIT = 1 << 20
OID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
CAPABILITY = re.compile(r"^@object-format=(?:sha1|sha256)$")
# Object checks on, whatever git's version: the settings a fetch honours where it can.
FSCK = ("fetch.fsckObjects=true", "transfer.fsckObjects=true")


class Bad(AmError):
    """A bundle am will not take anything from."""


@value_class
class Header:
    """What a bundle file's header says: its refs, the commits it needs, where its pack starts."""

    refs: tuple[tuple[str, str], ...]  # (name, commit) in the bundle's order
    prerequisites: tuple[str, ...]
    pack_offset: int  # where the pack starts in the file


def bad(why: str) -> Bad:
    return Bad(
        f"the agent's bundle was refused: {why}",
        "nothing was taken from it; 'am diff ID' still shows the agent's work",
    )


def read_header(path: Path) -> Header:
    """The header of bundle PATH, parsed as untrusted bytes."""
    with open(path, "rb") as f:
        head = f.read(HEADER_LIMIT)
    end = head.find(b"\n\n")
    first = head[: head.find(b"\n") + 1]
    if first not in SIGNATURES or end < 0:
        raise bad("it is not a git bundle (v2 or v3) with a header am can read")
    refs, prerequisites = [], []
    for line in head[len(first) : end].split(b"\n"):
        text = line.decode("utf-8", "replace")
        if text.startswith("@"):
            # object-format only: a @filter (a partial bundle) would leave the commits'
            # trees and blobs missing from the repository, a promisor pack it cannot fill
            if SIGNATURES[first] == 2 or not CAPABILITY.match(text):
                raise bad(f"a capability line am does not take ({printable(text[:80])})")
            continue
        if text.startswith("-"):
            oid = text[1:].split(" ", 1)[0]
            if not OID.match(oid):
                raise bad("a prerequisite that is not a commit id")
            prerequisites.append(oid)
            continue
        oid, _, name = text.partition(" ")
        if not OID.match(oid) or not name:
            raise bad("a ref line that is not 'commit name'")
        refs.append((name, oid))
    return Header(tuple(refs), tuple(prerequisites), end + 2)


def verify_argv(repo: Path, path: Path) -> list[str]:
    return ["git", "-C", str(repo), "bundle", "verify", "--quiet", str(path)]


def index_pack_argv(repo: Path, out: Path) -> list[str]:
    # --stdin with a file name writes the checked pack there, not into the repository.
    return ["git", "-C", str(repo), "index-pack", "--stdin", "--fix-thin", "--strict", str(out)]


def fetch_argv(repo: Path, path: Path) -> list[str]:
    argv = ["git", "-C", str(repo)]
    for kv in FSCK:
        argv += ["-c", kv]
    return argv + [
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-recurse-submodules",
        "--no-write-fetch-head",
        "--no-auto-gc",
        "--",
        str(path),
        REF,
    ]


def _git(argv: list[str], what: str, stdin=None) -> proc.Result:
    res = proc.run(argv, env=git.source_env(), stdin=stdin, cwd="/")
    if not res.ok:  # git's words may quote the bundle's: one printable line
        raise bad(f"{what}: {printable(res.brief(3)) or res.code}")
    return res


def receive(repo: Path, path: Path, expected: str) -> list[str]:
    """Take the commit EXPECTED (and what it needs) from bundle PATH into REPO, changing no
    ref; returns warnings to show (refs the bundle carried besides am's)."""
    header = read_header(path)
    mine = [oid for name, oid in header.refs if name == REF]
    if mine != [expected]:
        raise bad(f"it does not carry {REF} once, at the commit the workspace reported")
    others = sorted({name for name, _ in header.refs if name != REF})
    warnings = []
    if others:
        shown = printable(", ".join(others[:5]) + (", ..." if len(others) > 5 else ""))
        warnings.append(
            f"the agent's bundle also carried {len(others)} other ref(s) ({shown}); none was taken"
        )
    _git(verify_argv(repo, path), "git bundle verify failed")
    scratch = path.with_name(path.name + ".check.pack")
    try:
        with open(path, "rb") as f:
            f.seek(header.pack_offset)
            _git(index_pack_argv(repo, scratch), "its objects failed git's checks", stdin=f)
    finally:
        for p in (scratch, scratch.with_suffix(".idx")):
            if os.path.lexists(p):
                p.unlink()
    _git(fetch_argv(repo, path), "git fetch from it failed")
    # exactly a commit: a tag object peels to one, but a branch cannot point at it
    res = proc.run(
        ["git", "-C", str(repo), "cat-file", "-t", expected], env=git.source_env(), cwd="/"
    )
    if res.out.strip() != "commit":
        raise bad(f"the workspace's HEAD {expected} is not a commit in {repo} after the fetch")
    return warnings

"""Drift between the state file and reality, found without trusting either alone."""

import os
from enum import StrEnum
from pathlib import Path

from am import git, paths, proc, session
from am.record import Status
from am.status import spawn_alive  # noqa: F401 (am clean asks drift)
from am.store import open_store
from am.valueclass import value_class


class Kind(StrEnum):
    ORPHAN_SESSION = "orphan-session"  # a tmux session of this AM_HOME with no record
    ORPHAN_CONTAINER = "orphan-container"  # a labelled container with no record
    LOST_CONTAINER = "lost-container"  # a container of an agent am no longer runs
    ORPHAN_PROXY = "orphan-proxy"  # a network proxy whose agent is gone or not running
    ORPHAN_NETWORK = "orphan-network"  # am's outside network that no proxy uses
    STALE_SPAWN = "stale-spawn"  # the record of a spawn that died before it finished
    STALE_WORKTREE = "stale-worktree"  # a worktree entry in a source whose folder is gone
    ORPHAN_WORKSPACE = "orphan-workspace"  # a workspace folder with no record
    INVALID_RECORD = "invalid-record"  # a record naming what am did not make for its id
    ORPHAN_DISK = "orphan-disk"  # a workspace file system (--disk) with no record
    LOOSE_LOOP = "loose-loop"  # a loop device of one, mounted nowhere
    LEFTOVER_RESTORE = "leftover-restore"  # what a restore that died had unpacked
    LEFTOVER_SNAPSHOT = "leftover-snapshot"  # what a snapshot that died had written
    LEFTOVER_PULL = "leftover-pull"  # the bundle a pull that died had written
    LEFTOVER_SPAWN = "leftover-spawn"  # the clone a spawn that died had begun early


@value_class(frozen=False)
class Drift:
    """One difference between the state file and what runs."""

    kind: Kind
    subject: str
    detail: str
    runtime: str | None = None


def network_drift(engine, records: dict, home: str) -> list[Drift]:
    """Proxies whose agent has no record or no longer runs, and am's outside networks that
    no proxy uses."""
    from am.backends import network

    proxies = network.proxies(engine, home)
    running = (engine.running() or set()) if proxies else set()
    found = []
    for name in proxies:
        r = records.get(name[len(network.PROXY_PREFIX) :])
        if r is None or r.get("runtime") != engine.runtime:
            why = "with no agent record"
        elif r.get("status") != Status.STARTING and r.get("container") not in running:
            why = f"of agent {r['id']}, which is not running"
        else:
            continue
        found.append(
            Drift(Kind.ORPHAN_PROXY, name, f"{engine.runtime} network proxy {why}", engine.runtime)
        )
    if not proxies:
        for name in network.networks(engine, home):
            found.append(
                Drift(
                    Kind.ORPHAN_NETWORK,
                    name,
                    f"{engine.runtime} outside network of this AM_HOME that no proxy uses",
                    engine.runtime,
                )
            )
    return found


def find(layout=None, engines: list | None = None) -> list[Drift]:
    """Every drift of LAYOUT's state file against tmux, the ENGINES given, and the disk."""
    layout = layout or paths.layout()
    records = open_store(layout).agents()
    home = str(layout.root)
    live = session.sessions()
    found = [
        Drift(Kind.ORPHAN_SESSION, name, "tmux session with no agent record")
        for name in session.orphans(live, records, home)
    ]
    for engine in engines or []:
        found += container_drift(engine, records, home)
        found += network_drift(engine, records, home)
    invalid, valid = record_drift(records, layout)
    return (
        found
        + invalid
        + spawn_drift(valid, live)
        + worktree_drift(valid)
        + workspace_drift(records, layout)
        + restore_drift(records, layout)
        + snapshot_drift(layout)
        + pull_drift(layout)
        + headstart_drift(layout)
        + disk_drift(records, valid, layout)
    )


# What a spawn makes after it has reserved its record (which the look may predate).
SPAWN_MAY_OWN = (
    Kind.ORPHAN_SESSION,
    Kind.ORPHAN_CONTAINER,
    Kind.ORPHAN_WORKSPACE,
    Kind.LEFTOVER_RESTORE,
    Kind.ORPHAN_DISK,
    Kind.ORPHAN_PROXY,
    Kind.ORPHAN_NETWORK,
)


def claimed(d: Drift, records: dict) -> bool:
    """Whether RECORDS, read again, show an agent that owns the subject of D, or may be
    about to (pure). A spawn reserves its record before it makes its workspace, session,
    container, file system, proxy or outside network, so a spawn begun after ``find`` read
    the records shows here; so does an agent started since."""
    if d.kind == Kind.ORPHAN_SESSION:
        return d.subject in {r.get("session") for r in records.values()}
    if d.kind == Kind.ORPHAN_CONTAINER:
        return d.subject in {r.get("container") for r in records.values()}
    if d.kind == Kind.ORPHAN_WORKSPACE:
        return Path(d.subject).name in workspace_names(records)
    if d.kind == Kind.LEFTOVER_RESTORE:
        return restoring(Path(d.subject).name, records, Path(d.subject).parent)
    if d.kind == Kind.ORPHAN_DISK:
        from am import disk

        return Path(d.subject).name.removesuffix(disk.PARTIAL).removesuffix(disk.SUFFIX) in records
    if d.kind == Kind.ORPHAN_PROXY:
        from am.backends import network

        r = records.get(d.subject.removeprefix(network.PROXY_PREFIX))
        return isinstance(r, dict) and r.get("status") in (Status.STARTING, Status.RUNNING)
    if d.kind == Kind.ORPHAN_NETWORK:  # a spawn's proxy may be about to join it
        return any(r.get("status") == Status.STARTING for r in records.values())
    return False


def workspace_names(records: dict) -> set[str]:
    return {
        Path(r["workspace"]).name for r in records.values() if isinstance(r.get("workspace"), str)
    }


def container_drift(engine, records: dict, home: str) -> list[Drift]:
    """ENGINE's containers labelled for HOME of agents am no longer runs, or with no record."""
    mine = {r.get("container"): r for r in records.values() if r.get("runtime") == engine.runtime}
    found = []
    for name in engine.labelled(home):
        r = mine.get(name)
        if r is not None and r.get("status") not in (Status.STARTING, Status.RUNNING):
            found.append(
                Drift(
                    Kind.LOST_CONTAINER,
                    name,
                    f"{engine.runtime} container of "
                    f"agent {r['id']}, which am no longer runs ({r.get('status')})",
                    engine.runtime,
                )
            )
        elif r is None:
            found.append(
                Drift(
                    Kind.ORPHAN_CONTAINER,
                    name,
                    f"{engine.runtime} container labelled for this AM_HOME with no agent record",
                    engine.runtime,
                )
            )
    return found


def record_drift(records: dict, layout) -> tuple[list[Drift], list[dict]]:
    """Records that name something other than what am made for their id; and the others."""
    from am import records as checks

    invalid, valid = [], []
    for key, r in records.items():
        wrong = checks.problems(r, layout, key)
        if wrong:
            invalid.append(Drift(Kind.INVALID_RECORD, key, "; ".join(wrong)))
        else:
            valid.append(r)
    return invalid, valid


def spawn_drift(valid: list[dict], live: dict) -> list[Drift]:
    """Records of spawns that were interrupted before they finished."""
    return [
        Drift(
            Kind.STALE_SPAWN,
            r["id"],
            "record of a spawn that was interrupted"
            + (" (its session still runs)" if r.get("session") in live else ""),
        )
        for r in valid
        if r.get("status") == Status.STARTING and not spawn_alive(r)
    ]


def worktree_drift(valid: list[dict]) -> list[Drift]:
    """What ``git worktree prune`` would remove in the sources of worktree agents."""
    found = []
    for source in sorted({r["source"] for r in valid if r.get("worktree")}):
        res = proc.run(
            ["git", "-C", source, "worktree", "prune", "--dry-run", "--verbose"],
            env=git.source_env(),
        )
        found += [
            Drift(Kind.STALE_WORKTREE, source, line.strip())
            for line in (res.out + res.err).splitlines()
            if line.strip()
        ]
    return found


def workspace_drift(records: dict, layout) -> list[Drift]:
    """Folders among the workspaces that no record names (am's own temporaries start with
    a dot; one with a file system of its own is an orphan-disk, in disk_drift)."""
    from am import disk

    if not layout.workspaces.is_dir():
        return []
    known = workspace_names(records)
    return [
        Drift(
            Kind.ORPHAN_WORKSPACE,
            str(layout.workspaces / entry),
            "workspace folder with no agent record",
        )
        for entry in sorted(os.listdir(layout.workspaces))
        if entry not in known
        and not entry.startswith(".")
        and not disk.made(layout.disk_image(entry))
    ]


def restoring(entry: str, records: dict, folder: "str | os.PathLike[str]") -> bool:
    """Whether the restore that unpacks into folder ENTRY (in FOLDER, the workspaces) is
    still at work: it holds the folder's lock file. A folder without one is an older am's,
    or one made a moment ago: at work while its agent's record names a live restore (any
    live restore, for a folder of an older am that named no agent)."""
    from am import files, snapshot

    if os.path.lexists(os.path.join(folder, entry, files.HELD)):
        return not files.held_left_by_a_kill(os.path.join(folder, entry))
    agent_id = snapshot.agent_of_restore(entry)
    candidates = [records.get(agent_id)] if agent_id is not None else list(records.values())
    return any(
        isinstance(r, dict) and r.get("status") == Status.STARTING and spawn_alive(r)
        for r in candidates
    )


def restore_drift(records: dict, layout) -> list[Drift]:
    """The folders restores that died left among the workspaces."""
    from am import snapshot

    return _leftovers(
        layout.workspaces,
        Kind.LEFTOVER_RESTORE,
        "folder of a restore that ended before it finished",
        lambda e: (
            e.startswith(snapshot.RESTORE_TEMP) and not restoring(e, records, layout.workspaces)
        ),
    )


def snapshot_drift(layout) -> list[Drift]:
    """What snapshots that died left among the snapshots: a partial archive its writer no
    longer holds, and the folder of a pack being indexed for one."""
    from am import snapshot

    return _leftovers(
        layout.snapshots,
        Kind.LEFTOVER_SNAPSHOT,
        "part of a snapshot that ended before it finished",
        lambda e: snapshot.left_by_a_kill(layout.snapshots, e),
    )


def pull_drift(layout) -> list[Drift]:
    """The bundle folders pulls that died left in the cache."""
    from am import files
    from am.commands.pull import BUNDLE_TEMP

    return _leftovers(
        layout.cache,
        Kind.LEFTOVER_PULL,
        "bundle of a pull that ended before it finished",
        lambda e: e.startswith(BUNDLE_TEMP) and files.held_left_by_a_kill(layout.cache / e),
    )


def headstart_drift(layout) -> list[Drift]:
    """The folders of spawns' head starts (``am/headstart.py``) whose spawn died."""
    from am import files, headstart

    return _leftovers(
        layout.workspaces,
        Kind.LEFTOVER_SPAWN,
        "clone of a spawn that ended before it finished",
        lambda e: e.startswith(headstart.TEMP) and files.held_left_by_a_kill(layout.workspaces / e),
    )


def _leftovers(folder, kind: Kind, detail: str, left) -> list[Drift]:
    """A drift of KIND for each entry of FOLDER that LEFT(entry) says a dead process left."""
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    return [Drift(kind, str(folder / e), detail) for e in entries if left(e)]


def disk_drift(records: dict, valid: list[dict], layout) -> list[Drift]:
    """Workspace file systems (--disk) with no record, and their loop devices left attached."""
    from am import disk

    busy = {r["id"] for r in valid if r.get("status") == Status.STARTING and spawn_alive(r)}
    found = []
    for left in disk.leftovers(layout.disks, set(records), busy):
        if left.what == "orphan":
            found.append(
                Drift(
                    Kind.ORPHAN_DISK,
                    str(left.image),
                    "workspace file system (--disk) with no agent record",
                )
            )
        else:
            found.append(
                Drift(
                    Kind.LOOSE_LOOP,
                    left.device,
                    f"loop device reading {left.image}, mounted nowhere",
                )
            )
    return found

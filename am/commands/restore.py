"""``am restore``: a new, stopped agent from a snapshot; prints its id.

The archive is untrusted (``am.snapshot``): its manifest's ``source`` is never used. A clone's
snapshot carries its whole repository and restores as a standalone agent. A worktree's commits
live in the repository it was a worktree of: with ``--source REPO`` (named by the user) it
becomes a worktree there again; without, a standalone agent made from the history the snapshot
carries.
"""

import os
import shutil
import sys
from pathlib import Path

from am import git, ids, paths, snapshot
from am.errors import AmError
from am.record import Record, Status
from am.rollback import Rollback
from am.store import open_store
from am.valueclass import value_class


@value_class(frozen=False)
class Restore:
    """What a restore makes, decided and checked before anything is made."""

    agent_id: str
    source: str | None  # the repository named by --source (never the archive's word)
    worktree: bool  # a worktree of SOURCE again
    standalone: bool  # a worktree's snapshot, made a repository of its own
    branch: str | None
    cap: str | None  # --disk: the size of the workspace's own file system


def run(args) -> int:
    layout = paths.layout()
    store = open_store(layout)
    path = Path(args.snapshot).expanduser().absolute()
    if not path.is_file():
        raise AmError(f"no snapshot at {path}")
    manifest = snapshot.read_manifest(path)
    r = decide(args, layout, path, manifest)
    ws = layout.workspace(r.agent_id)
    with store.transaction() as agents:
        if r.agent_id in agents:
            raise AmError(f"an agent named {r.agent_id!r} already exists", "choose another --name")
        if ws.exists() or ws.is_symlink():
            raise AmError(f"workspace {ws} already exists")
        agents[r.agent_id] = new_record(r, path, manifest, layout)
    undo = rollback(r, store, layout)
    try:
        unpack(r, path, manifest, layout)
        store.update(r.agent_id, status=Status.STOPPED, spawn_pid=None)
    except BaseException as e:
        undo.run()
        if r.cap and isinstance(e, AmError) and "No space left" in e.message:
            raise AmError(
                f"the snapshot's workspace does not fit in --disk {r.cap}", "give a larger --disk"
            ) from None
        raise
    print(f"Restored {path.name} as stopped agent {r.agent_id} in {ws}", file=sys.stderr)
    print(r.agent_id)
    return 0


def decide(args, layout, path: Path, manifest: dict) -> Restore:
    """The restore ARGS ask for, checked against the snapshot at PATH; AmError otherwise."""
    from am import disk

    agent_id = ids.validate_name(args.name) if args.name else ids.new_id()
    source = getattr(args, "source", None)
    worktree = manifest["worktree"]
    standalone = worktree and not source  # a worktree's snapshot, made a repository of its own
    if standalone and not (manifest["commit"] and snapshot.history_pack(path)):
        raise AmError(
            f"{path} is a snapshot of a worktree agent without its history: its "
            "commits live in the repository it was a worktree of "
            f"({manifest['source']!r}, says the archive, which am does not take on "
            "trust)",
            f"name that repository: am restore {path} --source REPO",
        )
    if source:
        source = git.check_source(source)
        if worktree and git.is_url(source):
            raise AmError("--source of a worktree snapshot must be a local repository")
        if worktree and not manifest["commit"]:
            raise AmError(f"{path} names no commit to restore the worktree at")
    if worktree:
        snapshot.check(path, skip_git=True)  # before git touches the named repository
        worktree = not standalone
    cap = disk.check_size(getattr(args, "disk", None))
    if cap:
        if worktree:
            raise AmError(
                "--disk cannot cap a worktree agent: it runs in tmux, as you, and "
                "its commits go into your repository's objects",
                "leave out --source: the snapshot then restores as a standalone agent",
            )
        disk.check(layout.disks, cap)
    elif manifest["disk"] and getattr(args, "disk", None) is None:
        print(
            f"am: warning: the snapshot's agent had its workspace capped at {manifest['disk']}"
            f"; this one is not: 'am restore ... --disk {manifest['disk']}' caps it",
            file=sys.stderr,
        )
    # Every restore works on a branch of its own, as a spawn does: the snapshot's agent, or
    # another restore of the same snapshot, has the snapshot's branch where am pull would go.
    return Restore(agent_id, source, worktree, standalone, f"am/{agent_id}", cap)


def new_record(r: Restore, path: Path, manifest: dict, layout) -> dict:
    """The restored agent's record, ``starting`` until its workspace is complete."""
    return Record(
        r.agent_id,
        str(layout.workspace(r.agent_id)),
        str(layout.log_file(r.agent_id)),
        str(layout.root),
        source=r.source,
        worktree=r.worktree,
        branch=r.branch,
        base_commit=manifest["base_commit"],
        agent=manifest["agent"],
        limits={"disk": r.cap} if r.cap else None,  # its first start runs it in a container
        extra={
            "restored_from": str(path),
            "snapshot_source": manifest["source"],
            "snapshot_mode": manifest["mode"],  # am start keeps a container agent in one
            # As a spawn's: while it lives, doctor, rm, clean and start leave the record be.
            "spawn_pid": os.getpid(),
        },
    ).as_dict()


def rollback(r: Restore, store, layout) -> Rollback:
    """What undoes a failed restore, newest first: each step runs even if another fails."""
    from am import disk

    ws = layout.workspace(r.agent_id)
    undo = Rollback("the restore")
    undo.push(store.remove, r.agent_id)
    undo.push(shutil.rmtree, ws, True)
    if r.cap:
        undo.push(disk.remove, layout.disk_image(r.agent_id), ws)
    if r.worktree:  # a failing worktree removal still deletes the branch
        undo.push(git.delete_branch, Path(r.source), r.branch)
        undo.push(git.worktree_remove, Path(r.source), ws)
    return undo


def unpack(r: Restore, path: Path, manifest: dict, layout) -> None:
    """Make the workspace from the snapshot at PATH, and the agent's (empty) log."""
    from am import disk

    ws = layout.workspace(r.agent_id)
    paths.private_dir(ws.parent)
    if r.cap:
        disk.create(layout.disk_image(r.agent_id), ws, r.cap)
    if r.worktree:
        # The commits live in the named repository; bring back a worktree at the snapshot's
        # commit on a branch of its own, then the files as they were.
        git.worktree_add(Path(r.source), ws, r.branch, manifest["commit"])
        snapshot.extract(path, ws, skip_git=True)
    elif r.standalone:
        if not r.cap:
            ws.mkdir()
        snapshot.restore_history(path, ws, manifest["commit"], r.branch)
        snapshot.extract(path, ws, skip_git=True)
    else:
        snapshot.extract(path, ws)
        if not snapshot.own_branch(ws, r.branch):
            print(
                f"am: warning: the restored workspace's HEAD stays as the snapshot had it "
                f"(on no branch, or one am could not move to {r.branch}); am pull takes "
                f"HEAD into {r.branch}",
                file=sys.stderr,
            )
    paths.private_dir(layout.logs)
    layout.log_file(r.agent_id).touch()

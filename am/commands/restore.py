"""``am restore``: a new, stopped agent from a snapshot; prints its id.

The archive is untrusted (``am.snapshot``): its manifest's ``source`` is never used. A clone's
snapshot carries its whole repository and restores as a standalone agent. A worktree's commits
live in the repository it was a worktree of: with ``--source REPO`` (named by the user) it
becomes a worktree there again; without, a standalone agent made from the history the snapshot
carries.
"""

import contextlib
import shutil
import sys
import time
from pathlib import Path

from am import git, ids, paths, snapshot
from am.errors import AmError
from am.store import open_store


def run(args) -> int:
    layout = paths.layout()
    store = open_store(layout)
    path = Path(args.snapshot).expanduser().absolute()
    if not path.is_file():
        raise AmError(f"no snapshot at {path}")
    manifest = snapshot.read_manifest(path)
    agent_id = ids.validate_name(args.name) if args.name else ids.new_id()
    source = getattr(args, "source", None)
    worktree = manifest["worktree"]
    standalone = worktree and not source  # a worktree's snapshot, made a repository of its own
    if standalone and not (manifest["commit"] and snapshot.history_pack(path)):
        raise AmError(f"{path} is a snapshot of a worktree agent without its history: its "
                      "commits live in the repository it was a worktree of "
                      f"({manifest['source']!r}, says the archive, which am does not take on "
                      "trust)", f"name that repository: am restore {path} --source REPO")
    if source:
        source = git.check_source(source)
        if worktree and git.is_url(source):
            raise AmError("--source of a worktree snapshot must be a local repository")
        if worktree and not manifest["commit"]:
            raise AmError(f"{path} names no commit to restore the worktree at")
    if worktree:
        snapshot.check(path, skip_git=True)  # before git touches the named repository
        worktree = not standalone
    from am import disk

    cap = disk.check_size(getattr(args, "disk", None))
    if cap:
        if worktree:
            raise AmError("--disk cannot cap a worktree agent: it runs in tmux, as you, and "
                          "its commits go into your repository's objects",
                          "leave out --source: the snapshot then restores as a standalone agent")
        disk.check(layout.disks, cap)
    elif manifest["disk"] and getattr(args, "disk", None) is None:
        print(f"am: warning: the snapshot's agent had its workspace capped at {manifest['disk']}"
              f"; this one is not: 'am restore ... --disk {manifest['disk']}' caps it",
              file=sys.stderr)
    ws = layout.workspace(agent_id)
    branch = f"am/{agent_id}" if worktree else manifest["branch"]
    if standalone and branch:
        try:
            git.check_branch(branch)
        except AmError:
            branch = None  # HEAD at the commit, detached
    record = {
        "id": agent_id,
        "name": agent_id,
        "mode": "tmux",
        "runtime": None,
        "status": "starting",
        "source": source,
        "worktree": worktree,
        "branch": branch,
        "base_commit": manifest["base_commit"],
        "workspace": str(ws),
        "container": None,
        "session": ids.session_name(agent_id),
        "agent": manifest["agent"],
        "command": [],
        "exit_code": None,
        "oom_killed": False,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "network": None,
        "allow_domains": [],
        "limits": {"disk": cap} if cap else None,  # its first start runs it in a container
        "log": str(layout.log_file(agent_id)),
        "restored_from": str(path),
        "snapshot_source": manifest["source"],
        "snapshot_mode": manifest["mode"],  # am start keeps a container agent in one
        "home": str(layout.root),
    }
    with store.transaction() as agents:
        if agent_id in agents:
            raise AmError(f"an agent named {agent_id!r} already exists", "choose another --name")
        if ws.exists() or ws.is_symlink():
            raise AmError(f"workspace {ws} already exists")
        agents[agent_id] = record
    image = layout.disk_image(agent_id)
    try:
        paths.private_dir(ws.parent)
        if cap:
            disk.create(image, ws, cap)
        if worktree:
            # The commits live in the named repository; bring back a worktree at the snapshot's
            # commit on a branch of its own, then the files as they were.
            git.worktree_add(Path(source), ws, branch, manifest["commit"])
            snapshot.extract(path, ws, skip_git=True)
        elif standalone:
            if not cap:
                ws.mkdir()
            snapshot.restore_history(path, ws, manifest["commit"], branch)
            snapshot.extract(path, ws, skip_git=True)
        else:
            snapshot.extract(path, ws)
        paths.private_dir(layout.logs)
        layout.log_file(agent_id).touch()
        store.update(agent_id, status="stopped")
    except BaseException as e:
        if worktree:
            with contextlib.suppress(Exception):
                git.worktree_remove(Path(source), ws)
                git.delete_branch(Path(source), branch)
        if cap:
            with contextlib.suppress(Exception):
                disk.remove(image, ws)
        shutil.rmtree(ws, ignore_errors=True)
        store.remove(agent_id)
        if cap and isinstance(e, AmError) and "No space left" in e.message:
            raise AmError(f"the snapshot's workspace does not fit in --disk {cap}",
                          "give a larger --disk") from None
        raise
    print(f"Restored {path.name} as stopped agent {agent_id} in {ws}", file=sys.stderr)
    print(agent_id)
    return 0

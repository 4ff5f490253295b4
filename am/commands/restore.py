"""``am restore``: a new, stopped agent from a snapshot; prints its id."""

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
    ws = layout.workspace(agent_id)
    record = {
        "id": agent_id,
        "name": agent_id,
        "mode": "tmux",
        "runtime": None,
        "status": "starting",
        "source": manifest.get("source"),
        "worktree": bool(manifest.get("worktree")),
        "branch": manifest.get("branch"),
        "base_commit": manifest.get("base_commit"),
        "workspace": str(ws),
        "container": None,
        "session": ids.session_name(agent_id),
        "agent": manifest.get("agent"),
        "command": [],
        "exit_code": None,
        "oom_killed": False,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "network": None,
        "allow_domains": [],
        "limits": None,
        "log": str(layout.log_file(agent_id)),
        "restored_from": str(path),
        "snapshot_mode": manifest.get("mode"),  # am start keeps a container agent in one
        "home": str(layout.root),
    }
    with store.transaction() as agents:
        if agent_id in agents:
            raise AmError(f"an agent named {agent_id!r} already exists", "choose another --name")
        if ws.exists() or ws.is_symlink():
            raise AmError(f"workspace {ws} already exists")
        agents[agent_id] = record
    try:
        ws.parent.mkdir(parents=True, exist_ok=True)
        if record["worktree"]:
            # The commits live in the user's repository; bring back a worktree at the snapshot's
            # commit on a branch of its own, then the files as they were.
            branch = f"am/{agent_id}"
            git.worktree_add(Path(record["source"]), ws, branch, manifest.get("commit"))
            record["branch"] = branch
            snapshot.extract(path, ws, skip_git=True)
        else:
            snapshot.extract(path, ws)
        layout.log_file(agent_id).parent.mkdir(parents=True, exist_ok=True)
        layout.log_file(agent_id).touch()
        store.update(agent_id, status="stopped", branch=record["branch"])
    except BaseException:
        if record["worktree"]:
            with contextlib.suppress(Exception):
                git.worktree_remove(Path(record["source"]), ws)
                git.delete_branch(Path(record["source"]), f"am/{agent_id}")
        shutil.rmtree(ws, ignore_errors=True)
        store.remove(agent_id)
        raise
    print(f"Restored {path.name} as stopped agent {agent_id} in {ws}", file=sys.stderr)
    print(agent_id)
    return 0

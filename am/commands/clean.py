"""``am clean``: remove stopped agents that hold no unsaved work, and orphaned sessions."""

import sys

from am import drift, lifecycle, paths, session, status
from am.store import open_store


def run(args) -> int:
    layout = paths.layout()
    store = open_store(layout)
    removed = kept = 0
    for view in status.views(layout=layout):
        if view["status"] == "running":
            continue
        if view["status"] == "error" and drift.spawn_alive(view):
            continue  # a spawn still in progress
        record = store.agents().get(view["id"])
        if record is None:
            continue
        reasons = lifecycle.unsaved(record)
        if reasons and not args.all:
            print(f"Kept {view['id']}: unsaved work ({'; '.join(reasons)})", file=sys.stderr)
            kept += 1
            continue
        lifecycle.stop(record, store)
        lifecycle.snapshot_then_delete(store.agents()[view["id"]], store, layout)
        print(f"Removed {view['id']}", file=sys.stderr)
        removed += 1
    for d in drift.find(layout):
        if d.kind == "orphan-session":
            session.kill(d.subject)
            print(f"Removed orphaned session {d.subject}", file=sys.stderr)
    print(f"{removed} removed, {kept} kept", file=sys.stderr)
    return 0

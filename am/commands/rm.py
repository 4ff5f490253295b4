"""``am rm``: delete an agent and its workspace, refusing while it holds unsaved work."""

import sys

from am import lifecycle, paths, records, status
from am.errors import AmError
from am.record import Status
from am.store import open_store


def run(args) -> int:
    layout = paths.layout()
    store = open_store(layout)
    record = store.get(args.id)
    try:
        records.check(record, layout, args.id)
    except records.Invalid:
        if not args.force:
            raise
        # What an invalid record names is not am's to delete: only the record goes.
        store.remove(args.id)
        print(
            f"Removed the invalid record of {args.id}; nothing it names was touched",
            file=sys.stderr,
        )
        return 0
    status.refuse_while_spawning(record)  # even --force: it would delete what git writes
    view = status.view(args.id, layout)
    if not args.force:
        if view["status"] == Status.RUNNING:
            raise AmError(f"agent {args.id} is running", "stop it first, or use 'am rm --force'")
        reasons = lifecycle.unsaved(record)
        if reasons:
            raise AmError(
                f"agent {args.id} has unsaved work: {'; '.join(reasons)}",
                f"commit it and bring it home with 'am pull {args.id}' (or 'am push "
                f"{args.id}'), or 'am rm --force' (which snapshots it first)",
            )
    lifecycle.stop(record, store)
    lifecycle.snapshot_then_delete(records.check(store.get(args.id), layout), store, layout)
    print(f"Removed {args.id}", file=sys.stderr)
    return 0

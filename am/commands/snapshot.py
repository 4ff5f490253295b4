"""``am snapshot``: archive an agent's whole workspace; prints the archive's path."""

import sys

from am import paths, records, snapshot
from am.store import open_store


def run(args) -> int:
    layout = paths.layout()
    record = records.check(open_store(layout).get(args.id), layout, args.id)
    path = snapshot.create(record, layout)
    print(f"Snapshot of {args.id} written ({path.stat().st_size} bytes)", file=sys.stderr)
    print(path)
    return 0

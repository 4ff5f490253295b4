"""``am stop``: stop an agent and remove its container; the workspace is never touched."""

import sys

from am import lifecycle, paths, records
from am.store import open_store


def run(args) -> int:
    layout = paths.layout()
    store = open_store(layout)
    record = records.check(store.get(args.id), layout, args.id)
    lifecycle.stop(record, store)
    print(f"Stopped {args.id}; workspace kept at {record['workspace']}", file=sys.stderr)
    return 0

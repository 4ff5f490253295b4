"""``am stop``: stop an agent and remove its container; the workspace is never touched."""

import sys

from am import lifecycle, paths
from am.store import open_store


def run(args) -> int:
    store = open_store(paths.layout())
    record = store.get(args.id)
    lifecycle.stop(record, store)
    print(f"Stopped {args.id}; workspace kept at {record['workspace']}", file=sys.stderr)
    return 0

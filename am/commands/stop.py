"""``am stop``: stop agents and remove their containers; a workspace is never touched."""

import sys

from am import lifecycle, paths, records
from am.errors import AmError
from am.store import open_store


def run(args) -> int:
    layout = paths.layout()
    store = open_store(layout)
    ids = list(dict.fromkeys(args.id))
    # Every id is known before any agent stops: a mistyped one stops nothing.
    found = [records.check(store.get(agent_id), layout, agent_id) for agent_id in ids]
    failed = 0
    for agent_id, record in zip(ids, found, strict=True):
        try:
            lifecycle.stop(record, store)
        except AmError as e:  # the others still stop; this one says why it did not
            print(e.render(), file=sys.stderr)
            failed += 1
            continue
        print(f"Stopped {agent_id}; workspace kept at {record['workspace']}", file=sys.stderr)
    return 1 if failed else 0

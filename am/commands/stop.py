"""``am stop``: stop agents and remove their containers; a workspace is never touched."""

import sys

from am import lifecycle, paths, records
from am.errors import each
from am.store import open_store


def run(args) -> int:
    layout = paths.layout()
    store = open_store(layout)
    ids = list(dict.fromkeys(args.id))
    agents = store.agents()
    # Every id names a valid record before any agent stops: a mistyped one stops nothing.
    checked: dict[str, dict] = {}
    each(ids, lambda i: checked.update({i: records.check(store.get(i, agents), layout, i)}))

    def stop(agent_id: str) -> None:
        record = checked[agent_id]
        if len(ids) > 1:  # read again: an 'am rm' may have come while others stopped
            record = records.check(store.get(agent_id), layout, agent_id)
        lifecycle.stop(record, store)
        print(f"Stopped {agent_id}; workspace kept at {record['workspace']}", file=sys.stderr)

    each(ids, stop, unfinished="stopped")  # a failure is said after the others stopped
    return 0

"""``am stop``: stop agents and remove their containers; a workspace is never touched."""

import sys

from am import lifecycle, paths, records
from am.errors import AmError, each, raise_all
from am.store import open_store


def run(args) -> int:
    layout = paths.layout()
    store = open_store(layout)
    ids = list(dict.fromkeys(args.id))
    agents = store.agents()
    # Every id names a valid record before any agent stops: a mistyped one stops nothing.
    checked: dict[str, dict] = {}
    each(ids, lambda i: checked.update({i: records.check(store.get(i, agents), layout, i)}))
    failed = []  # said after the others stopped, each on its own line
    for agent_id in ids:
        try:
            record = checked[agent_id]
            if len(ids) > 1:  # read again: an 'am rm' may have come while others stopped
                record = records.check(store.get(agent_id), layout, agent_id)
            lifecycle.stop(record, store)
        except AmError as e:
            failed.append(e)
            continue
        except OSError as e:
            failed.append(AmError(f"agent {agent_id} was not fully stopped: {e}"))
            continue
        print(f"Stopped {agent_id}; workspace kept at {record['workspace']}", file=sys.stderr)
    raise_all(failed)
    return 0

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
    each(ids, lambda agent_id: records.check(store.get(agent_id, agents), layout, agent_id))
    failed = []  # said after the others stopped, each on its own line
    for agent_id in ids:
        try:
            # Read again: an 'am rm' may have taken it while the ones before were stopped.
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

"""``am diff``: the agent's commits, edits and new files against the commit it started from.

Read in the agent's sandbox for a container agent (``am.workspace``); the patch is written as
the exact bytes git produced.
"""

from am import paths, records, termsafe, workspace
from am.errors import AmError
from am.store import open_store


def patch(layout, agent_id: str) -> bytes:
    """The agent's changes as one patch, the exact bytes git produced (also what ``am ui``
    shows)."""
    record = records.check(open_store(layout).get(agent_id), layout, agent_id)
    workspace.check_present(record)
    if not record.get("base_commit"):
        raise AmError(f"agent {agent_id} has no base commit (its spawn did not finish)")
    return workspace.for_record(record, layout).diff(record["base_commit"])


def run(args) -> int:
    termsafe.write_untrusted(patch(paths.layout(), args.id))
    return 0

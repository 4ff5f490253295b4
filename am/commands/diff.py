"""``am diff``: the agent's commits, edits and new files against the commit it started from.

Read in the agent's sandbox for a container agent (``am.workspace``); the patch (or with
``--stat`` its summary) is written as the exact bytes git produced into a pipe, escaped on a
terminal (``am.termsafe``).
"""

from am import paths, records, termsafe, workspace
from am.errors import AmError
from am.store import open_store


def reading(layout, agent_id: str) -> tuple[dict, "workspace.Workspace"]:
    """AGENT_ID's checked record, which has a workspace and a base, and the operations on it."""
    record = records.check(open_store(layout).get(agent_id), layout, agent_id)
    workspace.check_present(record)
    if not record.get("base_commit"):
        raise AmError(f"agent {agent_id} has no base commit (its spawn did not finish)")
    return record, workspace.for_record(record, layout)


def patch(layout, agent_id: str, stat: bool = False) -> bytes:
    """The agent's changes as one patch (or its summary), the exact bytes git produced (also
    what ``am ui`` shows)."""
    record, ops = reading(layout, agent_id)
    return ops.diff(record["base_commit"], stat=stat)


def run(args) -> int:
    termsafe.write_untrusted(patch(paths.layout(), args.id, getattr(args, "stat", False)))
    return 0

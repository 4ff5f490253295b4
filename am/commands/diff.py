"""``am diff``: the agent's commits, edits and new files against the commit it started from.

Read in the agent's sandbox for a container agent (``am.workspace``); the patch is written as
the exact bytes git produced.
"""

import sys
from pathlib import Path

from am import paths, records, workspace
from am.errors import AmError
from am.store import open_store


def run(args) -> int:
    layout = paths.layout()
    record = records.check(open_store(layout).get(args.id), layout, args.id)
    ws = Path(record["workspace"])
    if workspace.missing(record):
        raise AmError(f"workspace {ws} of agent {args.id} is missing")
    if not record.get("base_commit"):
        raise AmError(f"agent {args.id} has no base commit (its spawn did not finish)")
    patch = workspace.for_record(record, layout).diff(record["base_commit"])
    sys.stdout.buffer.write(patch)
    sys.stdout.buffer.flush()
    return 0

"""``am diff``: the agent's commits, edits and new files against the commit it started from.

Read in the agent's sandbox for a container agent (``am.workspace``); the patch is written as
the exact bytes git produced.
"""

from pathlib import Path

from am import paths, records, termsafe, workspace
from am.errors import AmError
from am.store import open_store


def run(args) -> int:
    layout = paths.layout()
    record = records.check(open_store(layout).get(args.id), layout, args.id)
    ws = Path(record["workspace"])
    if not ws.is_dir() or ws.is_symlink():
        raise AmError(f"workspace {ws} of agent {args.id} is missing")
    if not record.get("base_commit"):
        raise AmError(f"agent {args.id} has no base commit (its spawn did not finish)")
    patch = workspace.for_record(record, layout).diff(record["base_commit"])
    termsafe.write_untrusted(patch)
    return 0

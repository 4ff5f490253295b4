"""``am diff``: the agent's commits, edits and new files against the commit it started from."""

import sys
from pathlib import Path

from am import git, gitsafe, paths
from am.errors import AmError
from am.store import open_store


def patch(record: dict) -> str:
    """The agent's changes as one patch (also what ``am ui`` shows)."""
    ws = Path(record["workspace"])
    if not ws.is_dir():
        raise AmError(f"workspace {ws} of agent {record['id']} is missing")
    if not record.get("base_commit"):
        raise AmError(f"agent {record['id']} has no base commit (its spawn did not finish)")
    repo = gitsafe.open_record(record)
    return git.diff(repo, record["base_commit"])


def run(args) -> int:
    sys.stdout.write(patch(open_store(paths.layout()).get(args.id)))
    return 0

"""``am diff``: the agent's commits, edits and new files against the commit it started from."""

from pathlib import Path

from am import git, gitsafe, paths, termsafe
from am.errors import AmError
from am.store import open_store


def run(args) -> int:
    record = open_store(paths.layout()).get(args.id)
    ws = Path(record["workspace"])
    if not ws.is_dir():
        raise AmError(f"workspace {ws} of agent {args.id} is missing")
    if not record.get("base_commit"):
        raise AmError(f"agent {args.id} has no base commit (its spawn did not finish)")
    repo = gitsafe.open_record(record)
    termsafe.write_untrusted(git.diff(repo, record["base_commit"]))
    return 0

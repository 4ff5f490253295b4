"""``am attach``: the agent's own terminal, through its tmux session."""

from am import paths, records, session, status
from am.errors import AmError


def run(args) -> int:
    view = records.check(status.view(args.id), paths.layout(), args.id)
    if view["status"] != "running":
        raise AmError(
            f"agent {args.id} is not running (status: {view['status']})",
            f"see its output with 'am logs {args.id}'",
        )
    return session.attach(view["session"])

"""``am rm``: delete agents and their workspaces, refusing while one holds unsaved work."""

import sys

from am import lifecycle, paths, records, status
from am.errors import AmError, each
from am.record import Status
from am.store import open_store


def run(args) -> int:
    layout = paths.layout()
    store = open_store(layout)
    ids = list(dict.fromkeys(args.id))
    agents = store.agents()
    each(ids, lambda agent_id: store.get(agent_id, agents))  # every id known, from one read
    # Every agent is checked before any is deleted: one refusal deletes none.
    invalid = set()

    def check(agent_id: str) -> None:
        if not _check(agent_id, store, layout, args.force, agents):
            invalid.add(agent_id)

    each(ids, check)

    def remove(agent_id: str) -> None:
        # Checked again where an earlier removal took time to change it (an 'am start').
        if len(ids) > 1 and agent_id not in invalid:
            _check(agent_id, store, layout, args.force)
        _remove(agent_id, store, layout, agent_id in invalid)

    each(ids, remove, unfinished="removed")  # a failure is said after the others went
    return 0


def _check(agent_id: str, store, layout, force: bool, agents: dict | None = None) -> bool:
    """Refuse AGENT_ID's removal as 'am rm' would (its record from AGENTS, if read already);
    False for an invalid record that --force removes alone."""
    record = store.get(agent_id, agents)
    try:
        records.check(record, layout, agent_id)
    except records.Invalid:
        if not force:
            raise
        return False
    status.refuse_while_spawning(record)  # even --force: it would delete what git writes
    if force:
        return True
    view = status.view(agent_id, layout)
    if view["status"] == Status.RUNNING:
        raise AmError(f"agent {agent_id} is running", "stop it first, or use 'am rm --force'")
    reasons = lifecycle.unsaved(record)
    if reasons:
        raise AmError(
            f"agent {agent_id} has unsaved work: {'; '.join(reasons)}",
            f"commit it and bring it home with 'am pull {agent_id}' (or 'am push "
            f"{agent_id}'), or 'am rm --force' (which snapshots it first)",
        )
    return True


def _remove(agent_id: str, store, layout, invalid: bool) -> None:
    if invalid:
        # What an invalid record names is not am's to delete: only the record goes, and only
        # while it is still the invalid one (another 'am rm' or a spawn may have been since).
        with store.transaction() as agents:
            now = store.get(agent_id, agents)
            if not records.problems(now, layout, agent_id):
                raise AmError(
                    f"the record of agent {agent_id} is valid now: it was not removed",
                    f"run 'am rm {agent_id}' again",
                )
            del agents[agent_id]
        print(
            f"Removed the invalid record of {agent_id}; nothing it names was touched",
            file=sys.stderr,
        )
        return
    record = records.check(store.get(agent_id), layout, agent_id)
    lifecycle.stop(record, store)
    lifecycle.snapshot_then_delete(records.check(store.get(agent_id), layout), store, layout)
    print(f"Removed {agent_id}", file=sys.stderr)

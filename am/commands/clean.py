"""``am clean``: remove stopped agents that hold no unsaved work, and orphaned sessions."""

import sys

from am import drift, lifecycle, paths, records, session, status
from am.record import Status
from am.store import open_store


def remove_labelled_containers(layout, store) -> None:
    """Remove every container labelled for this AM_HOME on each engine that answers."""
    from am import proc
    from am.backends import for_runtime as engine
    from am.errors import AmError

    by_container = {r.get("container"): r for r in store.agents().values()}
    for name in ("docker", "podman"):
        if not proc.which(name):
            continue
        eng = engine(name)
        try:
            eng.check()
        except AmError as e:
            print(f"am: warning: skipped {name}: {e.message}", file=sys.stderr)
            continue
        for container in eng.labelled(str(layout.root)):
            record = by_container.get(container)
            if record and record.get("runtime") == name and not records.problems(record, layout):
                lifecycle.stop(record, store)
            else:
                eng.remove_agent(container)  # labelled for this AM_HOME, with no record
            print(f"Removed container {container} ({name})", file=sys.stderr)
        from am.backends import network

        for proxy in network.proxies(eng, str(layout.root)):
            eng.remove(proxy)
            print(f"Removed network proxy {proxy} ({name})", file=sys.stderr)
        for net in network.networks(eng, str(layout.root)):
            network.remove_network(eng, net)
            print(f"Removed network {net} ({name})", file=sys.stderr)


def confirm(views: list[dict], assume_yes: bool) -> None:
    """Before --containers stops running agents: say so, and ask on a terminal; elsewhere
    only --yes goes ahead."""
    from am.errors import AmError

    live = [
        v["id"]
        for v in views
        if v.get("mode") == "container" and v["status"] in ("running", "starting", "error")
    ]
    if not live or assume_yes:
        return
    what = (
        f"am clean --containers stops {len(live)} running container agent(s) "
        f"({', '.join(live)}), then removes every stopped agent without unsaved work "
        "(record and workspace)"
    )
    if not sys.stdin.isatty():
        raise AmError(what, "add --yes to go ahead; 'am stop ID' stops one agent")
    print(f"{what}.\nGo ahead? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if answer.strip().lower() not in ("y", "yes"):
        raise AmError("nothing done", "'am stop ID' stops one agent")


def run(args) -> int:
    layout = paths.layout()
    store = open_store(layout)
    removed = kept = 0
    if args.containers:
        confirm(status.views(layout=layout), args.yes)
        remove_labelled_containers(layout, store)
    for view in status.views(layout=layout):
        if view["status"] == Status.RUNNING:
            continue
        if drift.spawn_alive(view):  # stopped meanwhile or not: git still writes its tree
            print(f"Kept {view['id']}: its {status.maker(view)} is still at work", file=sys.stderr)
            kept += 1
            continue
        record = store.agents().get(view["id"])
        if record is None:
            continue
        wrong = records.problems(record, layout, view["id"])
        if wrong:
            print(
                f"Skipped {view['id']}: its record is invalid ({'; '.join(wrong)})", file=sys.stderr
            )
            kept += 1
            continue
        reasons = lifecycle.unsaved(record, layout)
        if reasons and not args.all:
            print(f"Kept {view['id']}: unsaved work ({'; '.join(reasons)})", file=sys.stderr)
            kept += 1
            continue
        lifecycle.stop(record, store)
        lifecycle.snapshot_then_delete(store.agents()[view["id"]], store, layout)
        print(f"Removed {view['id']}", file=sys.stderr)
        removed += 1
    for name in session.orphans(session.sessions(), store.agents(), str(layout.root)):
        session.kill(name)
        print(f"Removed orphaned session {name}", file=sys.stderr)
    print(f"{removed} removed, {kept} kept", file=sys.stderr)
    return 0

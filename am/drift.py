"""Drift between the state file and reality, found without trusting either alone."""

import os
from dataclasses import dataclass
from pathlib import Path

from am import git, paths, proc, session
from am.store import open_store


@dataclass
class Drift:
    # orphan-session | orphan-container | lost-container | orphan-proxy |
    # orphan-network | stale-spawn | stale-worktree | orphan-workspace | invalid-record |
    # orphan-disk | loose-loop
    kind: str
    subject: str
    detail: str
    runtime: str | None = None


def spawn_alive(record: dict) -> bool:
    pid = record.get("spawn_pid")
    if not pid:
        return False
    try:
        import psutil

        p = psutil.Process(pid)
        return "am" in " ".join(p.cmdline()) and p.create_time() <= _created_epoch(record) + 5
    except Exception:
        return False


def _created_epoch(record: dict) -> float:
    import calendar
    import time

    try:
        return calendar.timegm(time.strptime(record["created"], "%Y-%m-%dT%H:%M:%SZ"))
    except (KeyError, ValueError):
        return 0.0


def network_drift(engine, records: dict, home: str) -> list[Drift]:
    """Proxies whose agent has no record or no longer runs, and am's outside networks that
    no proxy uses."""
    from am import network

    proxies = network.proxies(engine, home)
    running = (engine.running(list(records.values())) or set()) if proxies else set()
    found = []
    for name in proxies:
        r = records.get(name[len(network.PROXY_PREFIX):])
        if r is None or r.get("runtime") != engine.runtime:
            why = "with no agent record"
        elif r.get("status") != "starting" and r.get("container") not in running:
            why = f"of agent {r['id']}, which is not running"
        else:
            continue
        found.append(Drift("orphan-proxy", name, f"{engine.runtime} network proxy {why}",
                           engine.runtime))
    if not proxies:
        for name in network.networks(engine, home):
            found.append(Drift("orphan-network", name, f"{engine.runtime} outside network of "
                               "this AM_HOME that no proxy uses", engine.runtime))
    return found


def find(layout=None, engines: list | None = None) -> list[Drift]:
    layout = layout or paths.layout()
    records = open_store(layout).agents()
    home = str(layout.root)
    sessions_by_name = {r.get("session") for r in records.values()}
    found: list[Drift] = []
    live = session.sessions()
    for name, owner in live.items():
        if owner == home and name.startswith("am-") and name not in sessions_by_name:
            found.append(Drift("orphan-session", name, "tmux session with no agent record"))
    for engine in engines or []:
        containers = {
            r.get("container") for r in records.values() if r.get("runtime") == engine.runtime
        }
        by_container = {r.get("container"): r for r in records.values()
                        if r.get("runtime") == engine.runtime}
        for name in engine.labelled(home):
            r = by_container.get(name)
            if r is not None and r.get("status") not in ("starting", "running"):
                found.append(Drift("lost-container", name, f"{engine.runtime} container of "
                                   f"agent {r['id']}, which am no longer runs "
                                   f"({r.get('status')})", engine.runtime))
                continue
            if name not in containers:
                found.append(
                    Drift(
                        "orphan-container",
                        name,
                        f"{engine.runtime} container "
                        "labelled for this AM_HOME with no agent record",
                        engine.runtime,
                    )
                )
        found += network_drift(engine, records, home)
    from am import records as checks

    invalid = set()
    for key, r in records.items():
        wrong = checks.problems(r, layout, key)
        if wrong:
            invalid.add(key)
            found.append(Drift("invalid-record", key, "; ".join(wrong)))
    valid = [r for key, r in records.items() if key not in invalid]
    for r in valid:
        if r.get("status") == "starting" and not spawn_alive(r):
            running = " (its session still runs)" if r.get("session") in live else ""
            found.append(Drift("stale-spawn", r["id"],
                               f"record of a spawn that was interrupted{running}"))
    for source in sorted({r["source"] for r in valid if r.get("worktree")}):
        res = proc.run(["git", "-C", source, "worktree", "prune", "--dry-run", "--verbose"],
                       env=git.source_env())
        for line in (res.out + res.err).splitlines():
            if line.strip():
                found.append(Drift("stale-worktree", source, line.strip()))
    from am import disk

    known = {Path(r["workspace"]).name for r in records.values()}
    if layout.workspaces.is_dir():
        for entry in sorted(os.listdir(layout.workspaces)):
            # one with a file system of its own is an orphan-disk, below
            if entry not in known and not entry.startswith(".") and \
                    not disk.made(layout.disk_image(entry)):
                found.append(
                    Drift(
                        "orphan-workspace",
                        str(layout.workspaces / entry),
                        "workspace folder with no agent record",
                    )
                )
    busy = {r["id"] for r in valid if r.get("status") == "starting" and spawn_alive(r)}
    for left in disk.leftovers(layout.disks, set(records), busy):
        if left.what == "orphan":
            found.append(Drift("orphan-disk", str(left.image), "workspace file system (--disk) "
                               "with no agent record"))
        else:
            found.append(Drift("loose-loop", left.device, f"loop device reading {left.image}, "
                               "mounted nowhere"))
    return found

"""Health of agents: live CPU, memory and process figures, idleness, OOM and pids-limit state.

Figures come from each backend of the running agents, asked once for all of its agents, each
in a thread: one ``stats`` call per engine, naming the running agents' containers (one call
per name only if that call fails), and one ``tmux list-panes`` call plus psutil for tmux
agents, however many agents there are; so a status costs about one engine call's time.
``brief`` is the cheap one-word health ``am list`` shows: it reads only files (the log's mtime
and what the supervisor recorded) and makes no call at all.
"""

import os
import time

from am import clock, files
from am.defaults import DEFAULT_IDLE_AFTER

NOT_SETTINGS = ("AM_HOME", "AM_PORTABLE")  # AM_* variables that are no config key


def idle_after(layout) -> float:
    """The idle_after setting. Read (and so check) the config on every list and status where
    there is one, so a broken file or variable is reported at once; where there is none, the
    default without importing the config module (and the plan checks behind it)."""
    if not os.path.exists(layout.config_file_text) and not any(
        k.startswith("AM_") and k not in NOT_SETTINGS for k in os.environ
    ):
        return DEFAULT_IDLE_AFTER
    from am import config

    return config.load(layout).resolve()["idle_after"].value


def read_json(path) -> dict:
    return files.read_json_dict(path) or {}


epoch = clock.epoch


def iso(ts: float | None) -> str | None:
    return None if ts is None else clock.iso(ts)


def last_output(view: dict) -> float | None:
    """When the agent last printed: the mtime of its log, which tmux appends to."""
    try:
        return os.stat(view["log"]).st_mtime
    except (KeyError, TypeError, OSError):
        return None


def word(
    view: dict,
    events: dict,
    idle_for: float | None,
    idle_after: float,
    pids_now: int | None = None,
    disk_full: bool = False,
) -> str:
    """The one-word health (pure): oom, pids, disk (its --disk file system is full), idle,
    ok; '-' for an agent that is not running and ended normally. What the supervisor saw (an
    OOM kill, a refused fork) is kept after the agent ends."""
    if view["status"] != "running":
        if view.get("oom_killed") or events.get("oom"):
            return "oom"
        return "pids" if events.get("pids_limit") else "-"
    if events.get("oom"):
        return "oom"
    limit = (view.get("limits") or {}).get("pids")
    if events.get("pids_limit") or (pids_now is not None and limit and pids_now >= limit):
        return "pids"
    if disk_full:
        return "disk"
    if idle_for is not None and idle_for >= idle_after:
        return "idle"
    return "ok"


def brief(
    view: dict,
    layout,
    idle_after: float,
    now: float | None = None,
    run_files: set[str] | None = None,
    disk=None,
) -> str:
    """The health word from files alone (for ``am list``); RUN_FILES: the names in the run
    folder, when the caller listed it once for many agents; DISK: the usage of its --disk file
    system, for ``am info``."""
    now = time.time() if now is None else now
    # Idleness matters only while it runs: no stat of an ended agent's log (most of a list).
    out = last_output(view) if view["status"] == "running" else None
    name = f"{view['id']}.health.json"
    events = (
        {}
        if run_files is not None and name not in run_files
        else read_json(f"{layout.run_text}/{name}")
    )
    return word(
        view,
        events,
        None if out is None else now - out,
        idle_after,
        disk_full=disk is not None and disk.full,
    )


# --- live figures -----------------------------------------------------------------------------


def live_figures(running: list[dict], run: str) -> tuple[dict, list]:
    """Agent id -> (figures, or None and why there are none) of the RUNNING agents: those of
    container agents am's keeper (of the run folder RUN) reads from their cgroups, at once;
    for the rest, one thread per backend starts, asking its backend for the figures of all of
    its agents at once, which fill the same dict: join the threads. An engine's stats call that
    ``am status`` began early is read without its backend, which is then never imported
    (``enginestats.early``)."""
    import threading

    from am import enginestats

    kept = enginestats.take_kept()  # what earlystats asked the keeper for, this round
    if kept is None:
        from am.record import detached

        ids = [v["id"] for v in running if detached(v)]
        kept = enginestats.ask_keeper(run, ids) if ids else {}
    out: dict[str, tuple] = {i: (kept[i], None) for i in kept}
    groups: dict[tuple, list[dict]] = {}
    for v in running:
        if v["id"] in out:
            continue
        # A hand-edited record may hold a list here; of_record then knows no backend for it.
        key = tuple(
            x if x is None or isinstance(x, str) else repr(x)
            for x in (v.get("mode"), v.get("runtime"))
        )
        groups.setdefault(key, []).append(v)
    lock, threads = threading.Lock(), []

    def one(backend, views):
        got = backend.figures(views)
        with lock:
            out.update(got)

    def early(runtime, views):
        got = enginestats.early(runtime, views)
        if got is None:
            from am import backends

            got = backends.of_record(views[0]).figures(views)
        with lock:
            out.update(got)

    need_calls = False
    for (mode, runtime), views in groups.items():
        if mode == "container" and enginestats.began(runtime):
            threads.append(threading.Thread(target=early, args=(runtime, views), daemon=True))
            continue
        from am import backends

        backend = backends.of_record(views[0])
        if backend is None:
            why = f"its record names no backend am knows (mode {mode!r}, runtime {runtime!r})"
            out.update({v["id"]: (None, why) for v in views})
            continue
        need_calls = True
        threads.append(threading.Thread(target=one, args=(backend, views), daemon=True))
    if need_calls:
        # What reads the backends' calls, imported here: a thread that had to import it
        # would share the interpreter with the caller's own work and start its call later
        # (the backends themselves were made above).
        import select  # noqa: F401
    for t in threads:
        t.start()
    return out, threads


def collect(views: list[dict], layout, idle_after: float) -> tuple[list[dict], list[str]]:
    """The full status row of each agent, and warnings that say why a running agent has no
    figures (its engine's stats call failed, it was not listed, no pane was found)."""
    figures, threads = live_figures([v for v in views if v["status"] == "running"], layout.run_text)
    disks = disk_figures(views, layout)
    # While the engines answer: the files, and every row that needs no live figure.
    from am.status import run_files

    run = layout.run_text
    present = run_files(run)

    def events(v: dict) -> dict:
        name = f"{v['id']}.health.json"  # most agents have none: no open for those
        return read_json(f"{run}/{name}") if name in present else {}

    def one(v: dict, live: dict | None, why: str | None, now: float) -> dict:
        r = row(v, live or {}, events(v), now, idle_after, disks.get(v["id"]))
        r["figures_missing"] = why
        return r

    now = time.time()
    rows = [None if v["status"] == "running" else one(v, None, None, now) for v in views]
    for t in threads:
        t.join()
    now, missing = time.time(), {}
    for i, v in enumerate(views):
        if rows[i] is not None:
            continue
        live, why = figures.get(v["id"], (None, "its backend gave no figures"))
        if v.get("isolation") == "gvisor":
            # The engine counts the sandbox's host tasks (gVisor's own threads included);
            # the agent's processes are those inside, which the supervisor counts.
            guest = read_json(layout.guest_file(v["id"])).get("pids")
            live = {**(live or {}), "pids": guest if isinstance(guest, int) else None}
        rows[i] = one(v, live, why, now)
        if why:
            missing.setdefault(why, []).append(v["id"])
    return rows, [f"no figures for {', '.join(ids)}: {why}" for why, ids in missing.items()]


def disk_figures(views: list[dict], layout) -> dict:
    """Agent id -> how full its --disk file system is: one statvfs each, no walk of the
    workspace (agents without --disk have no figure)."""
    capped = [v for v in views if (v.get("limits") or {}).get("disk")]
    if not capped:
        return {}
    from am import disk

    loops = disk.loops()
    return {
        v["id"]: disk.usage(layout.disk_image(v["id"]), layout.workspace(v["id"]), loops)
        for v in capped
    }


def record_figures(view: dict) -> tuple:
    """What ``row`` takes from the record alone (pure): when the agent started and ended,
    and its memory limit as it was asked for (the engine's may round it; None if the record
    has none or a hand-edited one that does not parse)."""
    started = epoch(view.get("started")) or epoch(view.get("created"))
    ended = epoch(view.get("finished")) if view["status"] != "running" else None
    memory = (view.get("limits") or {}).get("memory")
    asked = None
    if view.get("mode") == "container" and memory:
        from am import validate

        try:
            asked = validate.memory_bytes(str(memory))
        except validate.Invalid:
            pass  # a hand-edited record: the engine's figure
    return started, ended, asked


def row(
    view: dict,
    live: dict,
    events: dict,
    now: float,
    idle_after: float,
    disk=None,
) -> dict:
    """One agent's status (pure, given the live figures, the supervisor's events, DISK, the
    usage of its --disk file system)."""
    started, ended, asked = record_figures(view)
    out = last_output(view)
    idle_for = None if out is None else max(0.0, now - out)
    limits = view.get("limits") or {}
    memory_limit = live.get("memory_limit") if asked is None else asked
    pids_now = live.get("pids")
    return {
        "id": view["id"],
        "mode": view.get("mode"),
        "runtime": view.get("runtime"),
        "status": view["status"],
        "health": word(
            view, events, idle_for, idle_after, pids_now, disk is not None and disk.full
        ),
        "cpu_percent": None if live.get("cpu_percent") is None else round(live["cpu_percent"], 1),
        "memory_bytes": live.get("memory"),
        "memory_limit_bytes": memory_limit,
        "pids": pids_now,
        "pids_limit": limits.get("pids"),
        "disk_bytes": None if disk is None else disk.used,
        "disk_limit_bytes": None if disk is None else disk.size,
        "uptime_seconds": None
        if started is None or (view["status"] != "running" and ended is None)
        else round((ended or now) - started, 1),
        "last_output": iso(out),
        "idle_seconds": None if idle_for is None else round(idle_for, 1),
        "exit_code": view.get("exit_code"),
        "oom_killed": bool(view.get("oom_killed") or events.get("oom")),
        "pids_limit_hit": bool(
            events.get("pids_limit")
            or (pids_now is not None and limits.get("pids") and pids_now >= limits["pids"])
        ),
    }

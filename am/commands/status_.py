"""``am status``: live CPU, memory, processes, uptime, last output and health of agents."""

import json
import sys
import time

from am import earlystats, health, output, paths, prefetch, status, termsafe
from am.store import open_store

WATCH_EVERY = 2.0


def run(args) -> int:
    layout = paths.layout()
    idle_after = health.idle_after(layout)
    store = open_store(layout)
    first = True
    try:
        while True:
            began = time.monotonic()
            # main began the first round's calls, before its imports, from a read of its own
            read = earlystats.records_read() if first else None
            if read is None:
                read = store.agents()
            records = {args.id: store.get(args.id, read)} if args.id else read
            if not first:
                earlystats.start(args.id, records)
            first = False
            views = status.views(records, layout, everyone=not args.id)
            rows, warnings = health.collect(views, layout, idle_after)
            # A call begun for an agent that ended meanwhile was not taken: no zombie of it
            # stays for the rest of a --watch.
            prefetch.discard()
            for w in warnings:
                print(f"am: warning: {w}", file=sys.stderr)
            if args.json:
                data = rows[0] if args.id else rows
                if args.watch:
                    print(json.dumps(data), flush=True)  # one document a line
                else:
                    output.print_json(data)
            else:
                if args.watch and sys.stdout.isatty():
                    termsafe.control("\033[H\033[J")  # clear, like watch(1)
                if rows:
                    print(table(rows), flush=True)
            if not args.watch:
                return 0
            # Every 2 s from the start of the last refresh (docker's stats alone takes ~1-3 s).
            time.sleep(max(0.0, WATCH_EVERY - (time.monotonic() - began)))
    except KeyboardInterrupt:
        return 0


def table(rows: list[dict]) -> str:
    from tabulate import tabulate

    return tabulate(
        [
            [
                r["id"],
                r["status"],
                r["health"],
                _cpu(r["cpu_percent"]),
                _pair(r["memory_bytes"], r["memory_limit_bytes"], size),
                _pair(r["pids"], r["pids_limit"], str),
                _pair(r.get("disk_bytes"), r.get("disk_limit_bytes"), size),
                duration(r["uptime_seconds"]),
                "-" if r["idle_seconds"] is None else duration(r["idle_seconds"]) + " ago",
                "-" if r["exit_code"] is None else r["exit_code"],
            ]
            for r in rows
        ],
        headers=[
            "ID",
            "STATUS",
            "HEALTH",
            "CPU",
            "MEMORY",
            "PIDS",
            "DISK",
            "UPTIME",
            "LAST OUTPUT",
            "EXIT",
        ],
        tablefmt="plain",
        disable_numparse=True,  # an id like 497491e8 is text, not 4.97491e+13
    )


def _cpu(value) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _pair(used, limit, fmt) -> str:
    if used is None:
        return "-"
    return fmt(used) + ("" if limit is None else f" / {fmt(limit)}")


def size(n: int) -> str:
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= factor:
            return f"{n / factor:.1f}{unit}"
    return f"{n}B"


def duration(seconds) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"

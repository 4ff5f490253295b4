"""``am list``: every agent with its live status and a one-word health."""

from am import health, output, paths, status


def run(args) -> int:
    layout = paths.layout()
    views = status.views(layout=layout)
    if args.status:
        views = [v for v in views if v["status"] == args.status]
    # The config (and what it imports) only matters for running agents' idle time.
    from am import config

    running = any(v["status"] == "running" for v in views)
    idle_after = config.load(layout).resolve()["idle_after"].value if running else None
    for v in views:
        v["health"] = health.brief(v, layout, idle_after)
    if args.json:
        output.print_json([output.public(v) for v in views])
    elif views:
        print(output.table(views))
    return 0

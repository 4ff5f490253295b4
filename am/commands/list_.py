"""``am list``: every agent with its live status and a one-word health."""

from am import config, health, output, paths, status


def run(args) -> int:
    layout = paths.layout()
    # Read (and so check) the config on every list: a broken file is reported at once.
    idle_after = config.load(layout).resolve()["idle_after"].value
    views = status.views(layout=layout)
    if args.status:
        views = [v for v in views if v["status"] == args.status]
    for v in views:
        v["health"] = health.brief(v, layout, idle_after)
    if args.json:
        output.print_json([output.public(v) for v in views])
    elif views:
        print(output.table(views))
    return 0

"""``am list``: every agent with its live status and a one-word health.

It is what scripts and dashboards call in loops, so it imports as little as it can: the
config module (and the plan checks behind it) only when there is a config file or an
``AM_*`` setting to read and check (``health.idle_after``); ``am.main`` parses its arguments
without argparse.
"""

from am import earlystats, health, output, paths, status


def run(args) -> int:
    layout = paths.layout()
    after = health.idle_after(layout)
    # The records main read before it asked tmux (None: read here, then ask)
    views = status.views(earlystats.records_read(), layout=layout, everyone=True)
    if args.status:
        views = [v for v in views if v["status"] == args.status]
    present = status.run_files(layout.run_text)
    for v in views:
        v["health"] = health.brief(v, layout, after, run_files=present)
    if args.json:
        output.print_json([output.public(v) for v in views])
    elif views:
        print(output.table(views))
    return 0

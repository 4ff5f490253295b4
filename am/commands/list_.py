"""``am list``: every agent with its live status and a one-word health.

It is what scripts and dashboards call in loops, so it imports as little as it can: the
config module (and the plan checks behind it) only when there is a config file or an
``AM_*`` setting to read and check; ``am.main`` parses its arguments without argparse.
"""

import os

from am import health, output, paths, status

NOT_SETTINGS = ("AM_HOME", "AM_PORTABLE")  # AM_* variables that are no config key


def idle_after(layout) -> float:
    """The idle_after setting. Read (and so check) the config on every list where there is
    one, so a broken file or variable is reported at once."""
    if not layout.config_file.exists() and not any(
        k.startswith("AM_") and k not in NOT_SETTINGS for k in os.environ
    ):
        return health.DEFAULT_IDLE_AFTER
    from am import config

    return config.load(layout).resolve()["idle_after"].value


def run(args) -> int:
    layout = paths.layout()
    after = idle_after(layout)
    views = status.views(layout=layout)
    if args.status:
        views = [v for v in views if v["status"] == args.status]
    present = status.run_files(str(layout.run))
    for v in views:
        v["health"] = health.brief(v, layout, after, run_files=present)
    if args.json:
        output.print_json([output.public(v) for v in views])
    elif views:
        print(output.table(views))
    return 0

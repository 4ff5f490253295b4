"""``am list``: every agent with its live status."""

from am import output, status


def run(args) -> int:
    views = status.views()
    if args.status:
        views = [v for v in views if v["status"] == args.status]
    if args.json:
        output.print_json([output.public(v) for v in views])
    elif views:
        print(output.table(views))
    return 0

"""``am info``: everything known about one agent."""

from am import config, health, output, paths, status


def location(view: dict, layout) -> str:
    """Where the workspace lives: on this host, in a remote engine's volume, or in a
    Kubernetes cluster."""
    if view.get("runtime") == "kubernetes":
        k = view.get("kubernetes") or {}
        return (
            f"kubernetes {k.get('storage') or 'pvc'} in namespace {k.get('namespace') or 'default'}"
        )
    if not view.get("volume"):
        return f"this host: {view['workspace']}"
    from am.launchspec import InvalidSpec, LaunchSpec

    try:
        c = LaunchSpec.read(layout.run / f"{view['id']}.spec.json").container
        where = c.api.get("url") if c and c.api else None
    except InvalidSpec:
        where = None
    return f"{view.get('runtime')} volume {view['volume']}" + (f" at {where}" if where else "")


def run(args) -> int:
    from am import records

    layout = paths.layout()
    record = status.open_store(layout).get(args.id)
    invalid = records.problems(record, layout, args.id)
    if invalid:
        # Shown, for the user to see what is wrong, as recorded: nothing it names is read,
        # no process it names asked, no keeper started for it.
        view = {**status.as_recorded(record), "health": "-", "workspace_location": None}
    else:
        view = status.views({args.id: record}, layout)[0]
        use = health.disk_figures([view], layout).get(view["id"])  # --disk agents: one statvfs
        view["health"] = health.brief(
            view, layout, config.load(layout).resolve()["idle_after"].value, disk=use
        )
        if use is not None:
            view["disk_bytes"], view["disk_limit_bytes"] = use.used, use.size
        view["workspace_location"] = location(view, layout)
    view = output.public(view)
    if args.json:  # the text has the error line below
        view["invalid"] = invalid or None
    shown = show(view, args.json)
    if invalid:
        records.check(record, layout, args.id)  # raises: the error line, with its hint
    return shown


def show(view: dict, as_json: bool) -> int:
    if as_json:
        output.print_json(view)
        return 0
    for key, value in view.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = " ".join(map(str, value)) if key == "command" else ", ".join(map(str, value))
        elif isinstance(value, str) and "\n" in value:  # a prompt's later lines, indented
            value = value.replace("\n", "\n" + " " * 15)
        print(f"{key + ':':<14} {'' if value is None else value}")
    return 0

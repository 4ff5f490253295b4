"""``am config show``: every setting's effective value and where it came from."""

from am import config, output, plan, profiles


def run(args) -> int:
    cfg = config.load()
    settings = cfg.resolve(args)
    for key in ("allow_domains", "allow_private_domains"):  # as a spawn checks them
        for entry in settings[key].value:
            plan.check_domain(entry, settings[key].label(key))
    agents = {
        name: {
            "command": list(p.command),
            "skip_permissions_flag": p.skip_permissions_flag,
            "api_domains": list(p.api_domains),
            "env_names": list(p.env_names),
            "config_paths": list(p.config_paths),
            "prompt_args": list(p.prompt_args),
            "continue_args": list(p.continue_args),
            "source": "file" if name in cfg.agents else "default",
        }
        for name, p in sorted({**profiles.BUILTIN, **cfg.agents}.items())
    }
    if args.json:
        output.print_json(
            {
                "file": str(cfg.path),
                "file_exists": cfg.exists,
                "settings": {
                    k: {"value": s.value, "source": s.source, "origin": s.origin}
                    for k, s in settings.items()
                },
                "agents": agents,
            }
        )
        return 0
    from tabulate import tabulate

    print(f"config file: {cfg.path}" + ("" if cfg.exists else " (none)"))
    rows = [
        [k, _show(s.value), s.source + ("" if s.source == "default" else f" ({s.origin})")]
        for k, s in settings.items()
    ]
    print(
        tabulate(rows, headers=["KEY", "VALUE", "SOURCE"], tablefmt="plain", disable_numparse=True)
    )
    print(
        "agents: "
        + ", ".join(
            name + (" (file)" if a["source"] == "file" else "") for name, a in agents.items()
        )
    )
    return 0


def _show(value) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return str(value)

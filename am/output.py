"""Printing records: JSON for scripts, tables for people."""

import json
import sys

PUBLIC = (
    "id",
    "name",
    "mode",
    "runtime",
    "status",
    "source",
    "branch",
    "base_commit",
    "workspace",
    "container",
    "session",
    "agent",
    "command",
    "created",
    "exit_code",
    "oom_killed",
    "network",
    "allow_domains",
    "limits",
    "log",
)
EXTRA = ("worktree", "image", "gpus", "env_names", "started", "finished", "health", "orphan",
         "proxy", "egress_network", "network_log")


def public(view: dict) -> dict:
    """The documented JSON shape of an agent (spec: ``am info --json``)."""
    out = {k: view.get(k) for k in PUBLIC}
    out.update({k: view[k] for k in EXTRA if k in view})
    return out


def print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def text(value) -> str:
    """A table cell: '-' for a missing or null value."""
    return "-" if value is None or value == "" else str(value)


def status_text(view: dict) -> str:
    s = text(view.get("status"))
    if s == "exited":
        code = view.get("exit_code")
        s += f" ({'?' if code is None else code})"
        if view.get("oom_killed"):
            s += " oom"
    return s


def table(views: list[dict]) -> str:
    from tabulate import tabulate

    # Any field but the id may be null or missing (an adopted workspace has no source, a
    # restored or hand-edited record may lack more): every cell shows such a value as '-'.
    rows = [
        [
            v["id"],
            text(v.get("mode")) + (f"/{v['runtime']}" if v.get("runtime") else ""),
            status_text(v),
            text(v.get("health")),
            text(v.get("agent")),
            text(v.get("branch")),
            text(v.get("created")).replace("T", " ").rstrip("Z"),
            _short_source(text(v.get("source"))),
        ]
        for v in views
    ]
    return tabulate(
        rows,
        headers=["ID", "MODE", "STATUS", "HEALTH", "AGENT", "BRANCH", "CREATED", "SOURCE"],
        tablefmt="plain",
    )


def _short_source(source: str, width: int = 48) -> str:
    return source if len(source) <= width else "..." + source[-(width - 3) :]

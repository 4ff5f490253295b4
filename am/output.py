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
    "prompt",
)
EXTRA = ("worktree", "image", "gpus", "env_names", "started", "finished", "health", "orphan",
         "proxy", "egress_network", "network_log", "publish")


def public(view: dict) -> dict:
    """The documented JSON shape of an agent (spec: ``am info --json``)."""
    out = {k: view.get(k) for k in PUBLIC}
    out.update({k: view[k] for k in EXTRA if k in view})
    return out


def print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def status_text(view: dict) -> str:
    s = view["status"]
    if s == "exited":
        code = view.get("exit_code")
        s += f" ({'?' if code is None else code})"
        if view.get("oom_killed"):
            s += " oom"
    return s


def table(views: list[dict], width: int | None = None) -> str:
    """The agents as a table; the TASK column (each prompt's start) is cut to fit WIDTH (the
    terminal's columns by default)."""
    from tabulate import tabulate

    rows = [
        [
            v["id"],
            v["mode"] + (f"/{v['runtime']}" if v.get("runtime") else ""),
            status_text(v),
            v.get("health", "-"),
            v.get("agent"),
            v.get("branch"),
            v.get("created", "").replace("T", " ").rstrip("Z"),
            _short_source(v.get("source", "")),
        ]
        for v in views
    ]
    headers = ["ID", "MODE", "STATUS", "HEALTH", "AGENT", "BRANCH", "CREATED", "SOURCE"]
    tasks = [task_text(v.get("prompt")) for v in views]
    if not any(tasks):
        return tabulate(rows, headers=headers, tablefmt="plain")
    if width is None:
        import shutil

        width = shutil.get_terminal_size((120, 24)).columns
    # The other columns, as tabulate lays them out, leave the rest of the line to TASK.
    probe = tabulate([[*r, ""] for r in rows], headers=[*headers, "TASK"], tablefmt="plain")
    room = max(width - probe.splitlines()[0].rindex("TASK"), 12)
    for row, text in zip(rows, tasks, strict=True):
        row.append(text if len(text) <= room else text[: room - 3] + "...")
    return tabulate(rows, headers=[*headers, "TASK"], tablefmt="plain")


def task_text(prompt) -> str:
    """A prompt on one line: whitespace runs as one space, other control characters as '?'."""
    if not prompt:
        return ""
    text = " ".join(str(prompt).split())
    return "".join("?" if ord(c) < 32 or 0x7f <= ord(c) < 0xa0 else c for c in text)


def _short_source(source: str, width: int = 48) -> str:
    return source if len(source) <= width else "..." + source[-(width - 3) :]

"""Printing records: JSON for scripts, tables for people."""

import sys

from am.record import Mode, detached

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
EXTRA = (
    "worktree",
    "image",
    "gpus",
    "env_names",
    "started",
    "finished",
    "health",
    "orphan",
    "proxy",
    "egress_network",
    "network_log",
    "allow_private_domains",
    "publish",
    "isolation",
    "volume",
    "workspace_location",
    "disk_bytes",
    "disk_limit_bytes",
    "kubernetes",
    "pushed",
)


def public(view: dict) -> dict:
    """The documented JSON shape of an agent (spec: ``am info --json``)."""
    out = {k: view.get(k) for k in PUBLIC}
    out.update({k: view[k] for k in EXTRA if k in view})
    if detached(view):
        out["session"] = None  # none: am's keeper holds its terminal
    return out


def print_json(data) -> None:
    # One write: json.dump's thousands of small ones each went through the escaping stream.
    sys.stdout.write(dumps(data) + "\n")


def dumps(data) -> str:
    """``json.dumps(DATA, indent=2)``, the same text; for a list of flat objects (``am status``
    of hundreds of agents) in a fraction of its time: the indenting encoder is pure Python,
    so each object goes through the C one, its separators carrying the indent."""
    import json  # here: am list's table needs none

    nested = (dict, list, tuple)
    if not isinstance(data, list) or not all(
        isinstance(r, dict) and r and not any(isinstance(v, nested) for v in r.values())
        for r in data
    ):
        return json.dumps(data, indent=2)
    if not data:
        return "[]"
    encode = json.JSONEncoder(separators=(",\n    ", ": ")).encode
    rows = [encode(r)[1:-1] for r in data]
    return "[\n  {\n    " + "\n  },\n  {\n    ".join(rows) + "\n  }\n]"


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


def mode_text(view: dict) -> str:
    """``tmux``, or ``container/<engine>/<isolation>`` (``container/podman/gvisor``); a
    container agent's restored snapshot, which has not run yet, is ``container`` already: its
    first start runs it in one, never on the host."""
    if view.get("snapshot_mode") == Mode.CONTAINER and view.get("mode") != Mode.CONTAINER:
        return Mode.CONTAINER
    parts = [view.get("mode") or "-", view.get("runtime"), view.get("isolation")]
    return "/".join(str(p) for p in parts if p)  # str: a hand-edited record may hold anything


def table(views: list[dict], width: int | None = None) -> str:
    """The agents as a table; the TASK column (each prompt's start) is cut to fit WIDTH (the
    terminal's columns by default)."""
    # Any field but the id may be null or missing (an adopted workspace has no source, a
    # restored or hand-edited record may lack more): every cell shows such a value as '-'.
    rows = [
        [
            v["id"],
            mode_text(v),
            status_text(v),
            text(v.get("health")),
            text(v.get("agent")),
            text(v.get("branch")),
            text(v.get("created")).replace("T", " ").rstrip("Z"),
            _short_source(text(v.get("source"))),
        ]
        for v in views
    ]
    headers = ["ID", "MODE", "STATUS", "HEALTH", "AGENT", "BRANCH", "CREATED", "SOURCE"]
    if not any(v.get("prompt") for v in views):
        return plain(rows, headers)
    if width is None:
        import shutil

        width = shutil.get_terminal_size((120, 24)).columns
    tasks = [task_text(v.get("prompt"), width) for v in views]
    # TASK is last: the other columns, as they are laid out, leave the rest of the line
    # to it (12 characters at least), so each line is cut there.
    for row, task in zip(rows, tasks, strict=True):
        row.append(task)
    lines = plain(rows, [*headers, "TASK"]).splitlines()
    end = max(width, lines[0].rindex("TASK") + 12)
    return "\n".join(line if len(line) <= end else line[: end - 3] + "..." for line in lines)


def plain(rows: list[list], headers: list[str]) -> str:
    """Columns of text, left-aligned, two spaces apart (tabulate's "plain" layout, with every
    cell taken as text: an id of digits keeps its zeros). ``am list`` of 500 agents spent most
    of its time in tabulate's guessing at each cell's type."""
    cells = [headers, *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(map(len, column)) for column in zip(*cells, strict=True)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def task_text(prompt, width: int = 200) -> str:
    """The start of a prompt (WIDTH characters at most) on one line: whitespace runs as one
    space, other control characters as '?'."""
    if not prompt:
        return ""
    return " ".join(str(prompt)[: 4 * width].split())[:width].translate(_CONTROLS)


_CONTROLS = dict.fromkeys([*range(32), *range(0x7F, 0xA0)], "?")


def _short_source(source: str, width: int = 48) -> str:
    return source if len(source) <= width else "..." + source[-(width - 3) :]

"""What the dashboard shows, made from am's own state: table cells, the filter, and terminal
text made safe to draw (pure, apart from ``snapshot``; no Textual).

Everything an agent can influence (its terminal, its diff, its task and branch) is agent text:
it becomes ``rich.text.Text`` built here, never markup, and keeps no control character but
line breaks (the others are written out by ``termsafe``, as in everything am prints). Of the
escape sequences in a terminal capture only colours and attributes (SGR) are kept, decoded into
styles; the rest (titles, clipboard writes, cursor moves, links) is dropped, so nothing from
the agent reaches the user's terminal as a sequence.
"""

import re
import time

from rich.ansi import AnsiDecoder
from rich.text import Text

from am import health, output, records, status, termsafe
from am.commands.status_ import duration, size

COLUMNS = ("ID", "MODE", "STATUS", "HEALTH", "CPU", "MEM", "AGE", "BRANCH", "TASK")
# The most characters a long value shows; TASK is last, so a narrow terminal cuts only it.
WIDTH = {"ID": 16, "STATUS": 16, "BRANCH": 24, "TASK": 60}

# An escape sequence: CSI, OSC / DCS / SOS / PM / APC strings (to BEL or ST), or a short one.
_ESCAPE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]*[0-~]?)"
)
_SGR = re.compile(r"\x1b\[[0-9;:]*m")


def snapshot(layout, idle_after: float) -> list[dict]:
    """Every agent's live view with the one-word health ``am list`` shows: the state file,
    one tmux call and a few files, however many agents. ``invalid``: what is wrong with a
    record (``records.check``), for which the dashboard reads nothing it names."""
    from am.store import open_store

    # Records given: status.views prints no orphan warning into the dashboard.
    views = status.views(open_store(layout).agents(), layout)
    for v in views:
        v["invalid"] = records.problems(v, layout)
        v["health"] = health.brief(v, layout, idle_after) if not v["invalid"] else "-"
    return views


def one_line(value, width: int) -> str:
    """VALUE as one line of at most WIDTH characters: whitespace runs as one space, other
    control characters written out as everything am prints writes them (``termsafe``)."""
    if value is None or value == "":
        return ""
    text = termsafe.escape(" ".join(str(value)[: 4 * width].split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def cells(view: dict, live: dict | None, now: float | None = None) -> tuple[str, ...]:
    """The table row of one agent; LIVE: its figures from ``health.collect`` (``am status``)."""
    now = time.time() if now is None else now
    live = live if live and view["status"] == "running" else {}
    created = health.epoch(view.get("created"))
    cpu, memory = live.get("cpu_percent"), live.get("memory_bytes")
    return (
        one_line(view["id"], WIDTH["ID"]),
        (view.get("runtime") or view.get("mode") or "-")
        + ("/gvisor" if view.get("isolation") == "gvisor" else ""),
        one_line(output.status_text(view), WIDTH["STATUS"]),
        view.get("health") or "-",
        "-" if cpu is None else f"{cpu:.0f}%",
        "-" if memory is None else size(memory),
        "-" if created is None else age(now - created),
        one_line(view.get("branch") or "-", WIDTH["BRANCH"]),
        one_line(view.get("prompt") or "", WIDTH["TASK"]),
    )


def age(seconds: float) -> str:
    """``am status``'s duration, without seconds from the first minute to the first hour, so
    the table is not redrawn every refresh for it: 42s, 17m, 3h05m, 2d04h."""
    s = int(max(0.0, seconds))
    return f"{s // 60}m" if 60 <= s < 3600 else duration(s)


def matches(view: dict, query: str) -> bool:
    """Whether VIEW has every word of QUERY (any case) in its id, mode, engine, status, health,
    branch, source or task."""
    hay = " ".join(
        str(view.get(k) or "")
        for k in ("id", "mode", "runtime", "status", "health", "branch", "source", "prompt")
    ).lower()
    return all(word in hay for word in query.lower().split())


def visible(text: str) -> str:
    """TEXT with every control character but line breaks written out (``termsafe``: an
    escape sequence's ESC too, as data to see); tabs become spaces."""
    return termsafe.escape(text.expandtabs(8))


def _lines(raw: str) -> list[str]:
    """RAW terminal text as lines keeping only SGR sequences; a carriage return inside a line
    starts it over, as on a terminal."""
    out = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        line = line.rstrip("\r").rsplit("\r", 1)[-1]
        kept, pos = [], 0
        for m in _ESCAPE.finditer(line):
            kept.append(visible(line[pos : m.start()]))
            if _SGR.fullmatch(m.group()):
                kept.append(m.group())
            pos = m.end()
        kept.append(visible(line[pos:]))
        out.append("".join(kept))
    return out


def terminal_text(raw: str, last: int | None = None) -> Text:
    """A terminal capture (``tmux capture-pane -e``, or a log) as styled text: its colours
    kept, trailing blank lines dropped, only the LAST lines if given."""
    lines = _lines(raw)
    while lines and not _SGR.sub("", lines[-1]).strip():
        lines.pop()
    if last is not None:
        lines = lines[-last:] if last > 0 else []
    decoder = AnsiDecoder()  # keeps the style from one line to the next, as a terminal does
    text = Text("\n").join(decoder.decode_line(line) for line in lines)
    text.no_wrap = True
    text.overflow = "crop"
    return text


DIFF_STYLES = (
    ("+++", "bold"),
    ("---", "bold"),
    ("diff ", "bold"),
    ("@@", "cyan"),
    ("+", "green"),
    ("-", "red"),
)


def diff_text(patch: str, max_lines: int) -> Text:
    """A patch as coloured text, its first MAX_LINES lines; the rest is said to be cut."""
    lines = patch.splitlines()
    text = Text(no_wrap=True, overflow="crop")
    for line in lines[:max_lines]:
        style = next((s for prefix, s in DIFF_STYLES if line.startswith(prefix)), "")
        text.append(visible(line) + "\n", style)
    if len(lines) > max_lines:
        text.append(
            f"... {len(lines) - max_lines} more lines: see the whole diff with 'am diff'\n", "bold"
        )
    return text

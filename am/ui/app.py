"""The dashboard: every agent in a table, the selected one's terminal, diff and log, and keys
that run am's own commands (Textual).

Refreshing costs little: the table is the state file, one ``tmux list-sessions`` and a few file
reads every ROWS_EVERY seconds (what ``am list`` does); CPU and memory are ``am status``'s
figures (one stats call per engine with running containers, psutil for tmux agents) every
LIVE_EVERY seconds; the preview is one ``tmux capture-pane`` of the selected agent, only while
it is shown and only when its log grew (a ``stat`` a second otherwise); the log tab reads only
what the log grew by; the diff tab reads the workspace when shown, then only while the agent
runs and prints. Widgets are updated only when their text changed. Slow work runs in
threads, so the keys never wait for an engine. docs/performance.md has the measured cost.
"""

import os
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Footer,
    Input,
    Label,
    RichLog,
    Select,
    Static,
    TabbedContent,
    TabPane,
)

from am import health, session, status
from am.errors import AmError
from am.ui import actions, model

ROWS_EVERY = 2.0
LIVE_EVERY = 10.0
PREVIEW_EVERY = 1.0
LOG_EVERY = 1.0
DIFF_EVERY = 15.0
LOG_TAIL = 256 * 1024  # bytes of the log shown at first; more arrives as it grows
LOG_LINES = 5000
DIFF_LINES = 5000
TABS = ("preview", "diff", "log")


def screen_of(view: dict) -> str | None:
    """A running agent's screen: its tmux session's; a container agent, which runs detached
    with no session, shows the end of its log."""
    if not status.detached(view):
        return session.capture(view["session"])
    from am import paths
    from am.commands.logs import screen

    return screen(view, paths.layout()).decode("utf-8", "replace")


class AgentTable(DataTable):
    """The agents, one row each, keyed by id; Enter attaches."""

    BINDINGS = [Binding("enter", "select_cursor", "attach")]


class SpawnForm(ModalScreen):
    """``n``: the arguments of a new agent; dismissed with ``am spawn``'s arguments or None."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, source: str, agent: str, runtime: str, network: str):
        super().__init__()
        self.defaults = (source, agent, runtime, network)

    def compose(self) -> ComposeResult:
        source, agent, runtime, network = self.defaults
        with Vertical(id="form"):
            yield Label("Spawn an agent (Esc: cancel)", id="form-title")
            with Grid(id="fields"):
                yield Label("Source")
                yield Input(
                    source, placeholder="git URL or local repository", id="source", compact=True
                )
                yield Label("Task")
                yield Input(
                    placeholder="what the agent should do (optional)", id="task", compact=True
                )
                yield Label("Agent")
                yield Input(placeholder=f"profile (default: {agent})", id="agent", compact=True)
                yield Label("Container")
                yield Checkbox("run in an isolated container", id="container", compact=True)
                yield Label("Engine")
                yield Select(
                    [(r, r) for r in ("auto", "podman", "docker")],
                    value=runtime,
                    allow_blank=False,
                    id="runtime",
                    compact=True,
                    disabled=True,
                )
                yield Label("Network")
                yield Select(
                    [(n, n) for n in ("none", "limited", "full")],
                    value=network,
                    allow_blank=False,
                    id="network",
                    compact=True,
                    disabled=True,
                )
            yield Static("", id="form-error")
            with Horizontal(id="buttons"):
                yield Button("Spawn", variant="primary", id="spawn", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    @on(Checkbox.Changed, "#container")
    def _container(self, event: Checkbox.Changed) -> None:
        for name in ("#runtime", "#network"):
            self.query_one(name, Select).disabled = not event.value

    @on(Input.Submitted)
    @on(Button.Pressed, "#spawn")
    def submit(self) -> None:
        source = self.query_one("#source", Input).value
        if not source.strip():
            self.query_one("#form-error", Static).update(
                Text("Source is required", style="bold red")
            )
            self.query_one("#source", Input).focus()
            return
        self.dismiss(
            actions.spawn_argv(
                source,
                self.query_one("#task", Input).value,
                self.query_one("#agent", Input).value,
                self.query_one("#container", Checkbox).value,
                str(self.query_one("#runtime", Select).value),
                str(self.query_one("#network", Select).value),
            )
        )

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class Confirm(ModalScreen):
    """A yes/no question; dismissed with True for yes."""

    BINDINGS = [
        Binding("y", "answer(True)", "yes"),
        Binding("n", "answer(False)", "no"),
        Binding("escape", "answer(False)", "no"),
    ]

    def __init__(self, question: Text):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(self.question)
            with Horizontal(id="buttons"):
                yield Button("Yes (y)", variant="error", id="yes", compact=True)
                yield Button("No (n)", id="no", compact=True)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class Agents(Screen):
    """The dashboard's one screen."""

    BINDINGS = [
        Binding("n", "spawn", "new"),
        Binding("s", "stop", "stop"),
        Binding("p", "pull", "pull"),
        Binding("r", "remove", "remove"),
        Binding("slash", "filter", "filter", key_display="/"),
        Binding("v", "next_tab", "view"),
        Binding("q", "quit", "quit"),
        Binding("escape", "clear_filter", show=False),
    ]

    def __init__(self):
        super().__init__()
        self.views: dict[str, dict] = {}  # id -> live view, from the last refresh
        self.live: dict[str, dict] = {}  # id -> am status's figures
        self.selected: str | None = None
        self.filter = ""
        self.shown: list[tuple[str, tuple[str, ...]]] = []  # the table's (id, cells)
        self.busy: set[str] = set()  # refreshes in flight (one of each kind at a time)
        self.screen_raw: str | None = None  # the preview's last capture
        self.screen_at: int | None = None  # the size of the log when it was captured
        self.diff_at: tuple[str, int | None] | None = None  # (agent, log size) of the diff
        self.log_at: tuple[str, int] | None = None  # (agent, offset) the log tab has read to
        self.select_next: str | None = None  # a just-spawned agent, selected when it shows
        self.live_shown = False
        self.title_text = Text()
        self.detail_text = Text()

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield AgentTable(cursor_type="row", zebra_stripes=True, id="agents")
        yield Static(id="detail")
        yield Input(
            placeholder="filter: words in id, status, branch, task... (Enter: keep, Esc: clear)",
            id="filter",
            compact=True,
        )
        with TabbedContent(id="tabs"):
            with TabPane("Preview", id="preview"):
                yield Static(id="screen")
            with TabPane("Diff", id="diff"):
                yield RichLog(id="diff-text", max_lines=DIFF_LINES + 10)
            with TabPane("Log", id="log"):
                yield RichLog(id="log-text", max_lines=LOG_LINES)
        yield Static(id="message")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(AgentTable)
        for name in model.COLUMNS:
            table.add_column(name, key=name)
        table.focus()
        self.title_line()
        self.refresh_rows()
        self.set_interval(ROWS_EVERY, self.refresh_rows)
        self.set_interval(LIVE_EVERY, self.refresh_live)
        self.set_interval(PREVIEW_EVERY, self.refresh_preview)
        self.set_interval(LOG_EVERY, self.refresh_log)
        self.set_interval(DIFF_EVERY, lambda: self.refresh_diff(only_if_changed=True))

    # --- background work -------------------------------------------------------------------

    def background(self, kind: str, work, *args) -> None:
        """Run WORK(*ARGS) in a thread unless one of KIND is still running; its errors become
        messages, never a crash."""
        if kind in self.busy:
            return
        self.busy.add(kind)

        def run():
            try:
                work(*args)
            except AmError as e:
                self.later(self.say, e.render(), True)
            except Exception as e:  # a bug must not take the dashboard down
                self.later(self.say, f"am: error: {kind}: {type(e).__name__}: {e}", True)
            finally:
                self.later(self.done, kind)

        self.run_worker(run, thread=True, exit_on_error=False, group=kind)

    def done(self, kind: str) -> None:
        self.busy.discard(kind)

    def later(self, fn, *args) -> None:
        """Call FN(*ARGS) on the app's thread (from a worker thread)."""
        try:
            self.app.call_from_thread(fn, *args)
        except RuntimeError:
            pass  # the app is closing

    def refresh_rows(self) -> None:
        app = self.app
        self.background(
            "rows", lambda: self.later(self.show_rows, model.snapshot(app.layout, app.idle_after))
        )

    def refresh_live(self) -> None:
        views = [v for v in self.views.values() if v["status"] == "running"]
        if not views:
            return

        def work():
            rows, warnings = health.collect(views, self.app.layout, self.app.idle_after)
            self.later(self.show_live, {r["id"]: r for r in rows}, warnings)

        self.background("live", work)

    def refresh_preview(self) -> None:
        view = self.views.get(self.selected or "")
        if self.query_one(TabbedContent).active != "preview":
            return
        if view is None or view["status"] != "running" or view["invalid"]:
            self.show_screen(None)
            return
        # The screen changes only with output, which the log gets too: while the log stays
        # the same size, a stat replaces the capture.
        size = log_bytes(view)
        if self.screen_raw is not None and size is not None and self.screen_at == size:
            return
        self.screen_at = size
        self.background(
            "preview", lambda: self.later(self.show_screen, screen_of(view), view["id"])
        )

    def refresh_diff(self, only_if_changed: bool = False) -> None:
        """The diff tab's patch, read as ``am diff`` reads it; ONLY_IF_CHANGED (the timer):
        only for a running agent whose log grew since, as reading a workspace hashes every
        file of it (and a stopped container agent's takes a throwaway container)."""
        view = self.views.get(self.selected or "")
        if self.query_one(TabbedContent).active != "diff" or view is None:
            return
        log_size = log_bytes(view)
        if only_if_changed and (
            view["status"] != "running" or self.diff_at == (view["id"], log_size)
        ):
            return
        self.diff_at = (view["id"], log_size)
        agent_id = view["id"]

        def work():
            from am.commands import diff

            try:
                patch = diff.patch(self.app.layout, agent_id).decode("utf-8", errors="replace")
                text = model.diff_text(patch, DIFF_LINES) if patch else Text("(no changes)")
            except AmError as e:
                text = Text(model.one_line(e.render(), 400), style="red")
            self.later(self.show_diff, agent_id, text)

        self.background("diff", work)

    def refresh_log(self) -> None:
        view = self.views.get(self.selected or "")
        if self.query_one(TabbedContent).active != "log" or view is None or view["invalid"]:
            return
        start = self.log_at[1] if self.log_at and self.log_at[0] == view["id"] else None
        path = Path(view.get("log") or "")
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        if start is not None and size == start:
            return  # nothing new: a stat, no thread

        def work():
            data, end = read_log(path, start)
            self.later(self.show_log, view["id"], start, data, end)

        self.background("log", work)

    # --- showing ---------------------------------------------------------------------------

    def show_rows(self, views: list[dict]) -> None:
        self.views = {v["id"]: v for v in views}
        table = self.query_one(AgentTable)
        rows = [
            (v["id"], model.cells(v, self.live.get(v["id"])))
            for v in views
            if model.matches(v, self.filter)
        ]
        if [k for k, _ in rows] == [k for k, _ in self.shown]:
            for (key, new), (_, old) in zip(rows, self.shown, strict=True):
                for name, a, b in zip(model.COLUMNS, new, old, strict=True):
                    if a != b:
                        table.update_cell(
                            key,
                            name,
                            Text(a),
                            update_width=len(a) > table.columns[name].content_width,
                        )
        else:
            keep = self.select_next if self.select_next in self.views else self.selected
            table.clear()
            for key, cells in rows:
                table.add_row(*(Text(c) for c in cells), key=key)
            ids = [k for k, _ in rows]
            if keep in ids:
                table.move_cursor(row=ids.index(keep))
                if keep == self.select_next:
                    self.select_next = None
            self.selected = ids[table.cursor_row] if ids else None
        self.shown = rows
        self.title_line()
        self.detail_line()
        if not self.live_shown:
            self.refresh_live()  # the figures at once, not a LIVE_EVERY later
        if not rows:
            self.show_screen(None)

    def show_live(self, figures: dict, warnings: list[str]) -> None:
        self.live = figures
        self.live_shown = True
        for w in warnings:
            self.say(f"am: warning: {w}", True)
        self.show_rows(list(self.views.values()))

    def show_screen(self, raw: str | None, agent_id: str | None = None) -> None:
        if agent_id is not None and agent_id != self.selected:
            return  # the selection moved on while it was captured
        if raw is not None and raw == self.screen_raw:
            return
        self.screen_raw = raw
        widget = self.query_one("#screen", Static)
        if raw is not None:
            # Its size is the layout's to set, not the text's: no layout pass a frame.
            widget.update(model.terminal_text(raw, last=max(1, widget.size.height)), layout=False)
            return
        view = self.views.get(self.selected or "")
        if view is None:
            widget.update(
                Text(
                    "No agents yet: press n to spawn one."
                    if not self.views
                    else "No agent matches the filter."
                )
            )
        elif view["invalid"]:
            widget.update(
                Text(
                    model.one_line(
                        f"The record of {view['id']} is invalid: {'; '.join(view['invalid'])}. "
                        "The dashboard reads nothing it names; "
                        f"'am rm --force {view['id']}' removes only the record.",
                        2000,
                    ),
                    style="red",
                )
            )
        else:
            widget.update(
                Text(
                    f"{model.one_line(view['id'], 64)} is "
                    f"{output_status(view)}: its output is in the Log tab (v)."
                )
            )

    def show_diff(self, agent_id: str, text: Text) -> None:
        if agent_id != self.selected:
            return
        log = self.query_one("#diff-text", RichLog)
        log.clear()
        log.write(text, width=fit(text, log), scroll_end=False)

    def show_log(self, agent_id: str, start: int | None, data: str, end: int) -> None:
        if agent_id != self.selected:
            return
        log = self.query_one("#log-text", RichLog)
        if start is None:
            log.clear()
        if data:
            text = model.terminal_text(data)
            log.write(text, width=fit(text, log))
        self.log_at = (agent_id, end)

    def title_line(self) -> None:
        running = sum(v["status"] == "running" for v in self.views.values())
        text = Text(f" am ui · {len(self.views)} agents, {running} running", style="bold")
        if self.filter:
            text.append(f" · filter: {model.one_line(self.filter, 30)} ({len(self.shown)} shown)")
        if text != self.title_text:  # an update lays the screen out again
            self.title_text = text
            self.query_one("#title", Static).update(text)

    def detail_line(self) -> None:
        """The selected agent's whole task and its source: the table cuts them."""
        view = self.views.get(self.selected or "")
        text = Text()
        if view:
            text = Text.assemble(
                " ",
                (model.one_line(view["id"], 64), "bold"),
                "  ",
                model.one_line(view.get("prompt") or "(no task)", 400),
                "  ·  ",
                model.one_line(view.get("source") or "", 200),
            )
        if text != self.detail_text:
            self.detail_text = text
            self.query_one("#detail", Static).update(text, layout=False)

    def say(self, line: str, error: bool = False) -> None:
        """LINE (printed by a command, or an error) on the message line, as plain text."""
        if not line.strip():
            return
        self.query_one("#message", Static).update(
            Text(model.one_line(line, 400), style="bold red" if error else "")
        )

    # --- selection and tabs ----------------------------------------------------------------

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        agent_id = event.row_key.value if event.row_key else None
        if agent_id == self.selected:
            return
        self.selected = agent_id
        self.screen_raw = None
        self.log_at = None
        self.query_one("#log-text", RichLog).clear()
        self.query_one("#diff-text", RichLog).clear()
        self.detail_line()
        self.refresh_views()

    @on(TabbedContent.TabActivated)
    def refresh_views(self) -> None:
        self.screen_raw = None
        self.refresh_preview()
        self.refresh_diff()
        self.refresh_log()

    def on_resize(self) -> None:
        self.screen_raw = None
        self.refresh_preview()

    def action_next_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + 1) % len(TABS)]

    # --- filter ----------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter = event.value
        self.show_rows(list(self.views.values()))

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        box = self.query_one("#filter", Input)
        if not box.value:
            box.remove_class("shown")
        self.query_one(AgentTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("shown")
        self.query_one(AgentTable).focus()

    # --- actions: am's own commands --------------------------------------------------------

    def command(self, name: str, argv: list[str], after=None) -> None:
        """Run ``am NAME ARGV...`` in a thread; what it prints and its errors are shown; AFTER
        gets its standard output lines once it succeeded."""
        out: list[str] = []

        def line(text: str, stderr: bool) -> None:
            if not stderr:
                out.append(text)
            self.later(self.say, text, text.startswith("am: error"))

        def work():
            try:
                actions.run(name, argv, line)
            finally:
                self.later(self.refresh_rows)
            if after:
                self.later(after, out)

        # One of each command line at a time; a stop of one agent never waits for another's.
        self.background(" ".join(["am", name, *argv]), work)

    def agent(self) -> str | None:
        """The selected agent's id, or None with a message."""
        if self.selected not in self.views:
            self.say("no agent selected", True)
            return None
        return self.selected

    @on(DataTable.RowSelected)
    def action_attach(self) -> None:
        agent_id = self.agent()
        if agent_id is None:
            return
        view = self.views[agent_id]
        if view["status"] != "running":
            self.say(
                f"am: error: agent {agent_id} is not running (status: {output_status(view)})", True
            )
            return
        lines: list[str] = []
        try:
            with self.app.suspend():
                code = actions.run("attach", [agent_id], lambda text, _: lines.append(text))
            if code:
                lines.append(
                    f"am: error: attaching to {agent_id} failed: tmux exited with status {code}"
                )
        except AmError as e:
            lines.append(e.render())
        except Exception as e:  # e.g. no terminal to suspend: said, never a crash
            lines.append(f"am: error: attach: {type(e).__name__}: {e}")
        for text in lines:
            self.say(text, text.startswith("am: error"))
        if not lines:
            self.say(f"back from {agent_id}")
        self.screen_raw = None
        self.refresh_rows()

    def action_spawn(self) -> None:
        app = self.app
        source = os.getcwd() if Path(".git").exists() else ""

        def spawn(argv: list[str] | None) -> None:
            if argv:
                self.say("spawning ...")
                self.command("spawn", argv, after=self.spawned)

        app.push_screen(
            SpawnForm(
                source, app.defaults["agent"], app.defaults["runtime"], app.defaults["network"]
            ),
            spawn,
        )

    def spawned(self, out: list[str]) -> None:
        if out and out[-1].strip():
            self.select_next = out[-1].strip()
            self.say(f"spawned {model.one_line(self.select_next, 64)}")

    def action_stop(self) -> None:
        agent_id = self.agent()
        if agent_id:
            self.say(f"stopping {agent_id} ...")
            self.command("stop", [agent_id])

    def action_pull(self) -> None:
        agent_id = self.agent()
        if agent_id:
            self.say(f"pulling {agent_id} ...")
            self.command("pull", [agent_id])

    def action_remove(self) -> None:
        agent_id = self.agent()
        if agent_id is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.command("rm", [agent_id])

        question = Text.assemble(
            "Remove agent ",
            (model.one_line(agent_id, 64), "bold"),
            " and its workspace?\n\nLike 'am rm', this is refused while the agent runs or "
            "holds unsaved work (stop it with s; 'am rm --force' snapshots the work first).",
        )
        self.app.push_screen(Confirm(question), answered)

    def action_quit(self) -> None:
        self.app.exit()


def log_bytes(view: dict) -> int | None:
    """The size of the agent's log: it grows whenever its terminal changes."""
    try:
        return Path(view["log"]).stat().st_size
    except (KeyError, TypeError, OSError):
        return None


def fit(text: Text, log: RichLog) -> int:
    """The width to draw TEXT at in LOG: its widest line (to scroll to), at least LOG's."""
    widest = max((len(line) for line in text.plain.splitlines()), default=0)
    return max(min(widest, 1000), log.scrollable_content_region.width or 80)


def output_status(view: dict) -> str:
    from am import output

    return output.status_text(view)


def read_log(path: Path, start: int | None) -> tuple[str, int]:
    """The log's text from START (None: its last LOG_TAIL bytes, from a line's start) to its
    end, and the offset read to. A log that shrank is read again from its tail."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            if start is None or start > end or end - start > LOG_TAIL:
                begin = max(0, end - LOG_TAIL)
                f.seek(begin)
                data = f.read(end - begin)
                if begin:
                    data = data.partition(b"\n")[2]
            else:
                f.seek(start)
                data = f.read(end - start)
    except OSError:
        return "", 0
    # Only whole lines: the rest is read with the next piece.
    cut = data.rfind(b"\n") + 1
    return data[:cut].decode("utf-8", errors="replace"), end - (len(data) - cut)


class Dashboard(App):
    """``am ui``."""

    TITLE = "am ui"
    ENABLE_COMMAND_PALETTE = False  # the keys are on screen; ^p would take footer room
    CSS = """
    #title { height: 1; background: $panel; }
    #agents { height: 40%; min-height: 4; scrollbar-size-horizontal: 0; }
    #detail { height: 1; background: $panel; }
    #filter { display: none; }
    #filter.shown { display: block; }
    #tabs { height: 1fr; }
    #tabs TabPane { padding: 0; }
    #screen { height: 1fr; }
    #message { height: 1; background: $panel; }
    SpawnForm, Confirm { align: center middle; }
    #form { width: 72; height: auto; border: round $accent; padding: 0 1; }
    #fields { grid-size: 2; grid-columns: 11 1fr; grid-rows: 1; grid-gutter: 1 1;
              height: auto; margin: 1 0; }
    #form-error { height: 1; }
    #buttons { height: 1; align: center middle; }
    #buttons Button { margin: 0 2; }
    #confirm { width: 64; height: auto; border: round $error; padding: 1 2; }
    """

    def __init__(self, layout, idle_after: float, defaults: dict[str, str]):
        super().__init__()
        self.layout = layout
        self.idle_after = idle_after
        self.defaults = defaults

    def get_default_screen(self) -> Screen:
        return Agents()

"""am ui: Textual's own pilot drives the dashboard (keys in; widgets and calls checked) over real
agents in tmux; one end-to-end test runs the real `am ui` in a tmux session and reads its
screen."""

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from helpers import GIT_ID, assert_am_error, has_session
from textual.widgets import DataTable, Input, RichLog, Static

from am import paths
from am.ui.app import Confirm, Dashboard, SpawnForm

# Prints its marker in green (the text built by printf, so it is not in the command line),
# edits a tracked file, then waits.
MARKER_AGENT = "printf '\\033[32m%s-%s\\033[0m\\n' MARKER ready; echo change >> README; sleep 600"


def unique(name: str) -> str:
    """An agent name no other test's tmux session has (the tmux server is shared)."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def ui_env(am, monkeypatch):
    """The dashboard runs in this process: it sees the test's AM_HOME and no outer tmux."""
    monkeypatch.setenv("AM_HOME", str(am.home))
    monkeypatch.delenv("TMUX", raising=False)
    for k, v in GIT_ID.items():
        monkeypatch.setenv(k, v)
    return am


def dashboard() -> Dashboard:
    return Dashboard(
        paths.layout(), 600.0, {"agent": "claude", "runtime": "auto", "network": "none"}
    )


def drive(test):
    """Run TEST(app, pilot) in Textual's test harness, at 80x24."""

    async def main():
        app = dashboard()
        async with app.run_test(size=(80, 24)) as pilot:
            await test(app, pilot)

    asyncio.run(main())


async def until(pilot, predicate, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.1)


def rows(app) -> dict[str, list[str]]:
    table = app.screen.query_one(DataTable)
    return {key.value: [str(c) for c in table.get_row(key)] for key in table.rows}


def message(app) -> str:
    return str(app.screen.query_one("#message", Static).content)


def preview(app) -> str:
    content = app.screen.query_one("#screen", Static).content
    return getattr(content, "plain", str(content))


def log_lines(app, widget: str) -> str:
    return "\n".join(strip.text for strip in app.screen.query_one(widget, RichLog).lines)


def select(app, agent_id: str) -> None:
    table = app.screen.query_one(DataTable)
    table.move_cursor(row=table.get_row_index(agent_id))


def test_rows_preview_diff_and_log(ui_env, repo):
    am = ui_env
    a = am.spawn(
        repo,
        "--name",
        unique("alpha"),
        "--prompt",
        "Fix [bold red]the[/] tests",
        "--cmd",
        MARKER_AGENT,
    )
    b = am.spawn(repo, "--name", unique("beta"), "--cmd", "exit 3")
    am.wait_status(b, "exited")

    async def test(app, pilot):
        await until(pilot, lambda: set(rows(app)) == {a, b}, "both rows")
        row = rows(app)[a]
        assert row[:4] == [a, "tmux", "running", "ok"]
        assert row[7:] == [f"am/{a}", "Fix [bold red]the[/] tests"]  # markup shown as text
        assert rows(app)[b][:3] == [b, "tmux", "exited (3)"]
        # CPU and memory: am status's figures, shown for the running agent only.
        await until(pilot, lambda: rows(app)[a][5] != "-", "alpha's memory")
        assert rows(app)[b][4:6] == ["-", "-"]

        select(app, a)
        await until(pilot, lambda: "MARKER-ready" in preview(app), "the marker in the preview")
        content = app.screen.query_one("#screen", Static).content
        at = content.plain.index("MARKER-ready")
        assert any(s.start <= at < s.end and s.style.color.number == 2 for s in content.spans), (
            "the agent's green is kept"
        )

        await pilot.press("v")  # the diff tab
        await until(pilot, lambda: "+change" in log_lines(app, "#diff-text"), "the diff")
        assert "+++ b/README" in log_lines(app, "#diff-text")
        await pilot.press("v")  # the log tab
        await until(pilot, lambda: "MARKER-ready" in log_lines(app, "#log-text"), "the log")

        select(app, b)
        await pilot.press("v")  # back to the preview: an exited agent has no screen
        await until(pilot, lambda: "is exited (3)" in preview(app), "the exited note")

    drive(test)


@pytest.mark.container
def test_container_agent(ui_env, repo, engine):
    am = ui_env
    agent_id = am.spawn(repo, "--container", "--runtime", engine, "--cmd", MARKER_AGENT)
    am.wait_log(agent_id, "MARKER-ready")

    async def test(app, pilot):
        await until(pilot, lambda: list(rows(app)) == [agent_id], "the row")
        assert rows(app)[agent_id][1:3] == [engine, "running"]
        # am status's figures: from the engine's stats call.
        await until(pilot, lambda: rows(app)[agent_id][5] != "-", "its memory", 60)
        await until(pilot, lambda: "MARKER-ready" in preview(app), "its screen")
        await pilot.press("v")
        await until(
            pilot,
            lambda: "+change" in log_lines(app, "#diff-text"),
            "its diff, read in its sandbox",
            60,
        )
        await pilot.press("s")
        await until(pilot, lambda: rows(app)[agent_id][2] == "stopped", "the stop", 60)
        names = subprocess.run(
            [engine, "ps", "-a", "--format", "{{.Names}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert f"am-{agent_id}" not in names  # am stop removed the container

    drive(test)


def test_stop_and_remove_go_through_am_stop_and_am_rm(ui_env, repo):
    am = ui_env
    dirty = am.spawn(repo, "--name", unique("dirty"), "--cmd", MARKER_AGENT)
    clean = am.spawn(repo, "--name", unique("clean"), "--cmd", "sleep 600")
    am.wait_log(dirty, "MARKER-ready")

    async def test(app, pilot):
        await until(pilot, lambda: set(rows(app)) == {dirty, clean}, "both rows")
        select(app, clean)
        await pilot.press("r")  # refused while it runs, as am rm does
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await until(pilot, lambda: "is running" in message(app), "rm's refusal")
        assert am.info(clean)["status"] == "running"

        await pilot.press("s")
        await until(pilot, lambda: rows(app)[clean][2] == "stopped", "the stopped row")
        assert am.info(clean)["status"] == "stopped"
        assert not has_session(f"am-{clean}")
        assert f"Stopped {clean}" in message(app)  # what am stop printed

        await pilot.press("r", "n")  # asked, and answered no
        await pilot.pause(0.3)
        assert clean in rows(app)
        await pilot.press("r", "y")
        await until(pilot, lambda: clean not in rows(app), "the removed row")
        assert [x["id"] for x in am.list()] == [dirty]

        select(app, dirty)
        await pilot.press("s")
        await until(pilot, lambda: rows(app)[dirty][2] == "stopped", "dirty stopped")
        await pilot.press("r", "y")  # its edit is unsaved work: refused, and said
        await until(pilot, lambda: "unsaved work" in message(app), "the unsaved-work refusal")
        assert message(app).startswith(f"am: error: agent {dirty} has unsaved work")
        assert [x["id"] for x in am.list()] == [dirty]

    drive(test)


def test_filter(ui_env, repo):
    am = ui_env
    am.spawn(repo, "--prompt", "Build the login page", "--cmd", "sleep 600")
    api = am.spawn(repo, "--prompt", "Fix the API tests", "--cmd", "sleep 600")

    async def test(app, pilot):
        await until(pilot, lambda: len(rows(app)) == 2, "both rows")
        await pilot.press("slash", *"API s")  # typed into the filter: 's' stops nothing
        await until(pilot, lambda: list(rows(app)) == [api], "the filtered rows")
        assert app.screen.query_one("#filter", Input).has_focus
        await pilot.press("enter")  # keeps the filter, back to the table
        assert app.screen.query_one(DataTable).has_focus
        assert list(rows(app)) == [api]
        await pilot.press("escape")
        await until(pilot, lambda: len(rows(app)) == 2, "all rows again")
        assert {x["status"] for x in am.list()} == {"running"}

    drive(test)


def test_spawn_form(ui_env, repo, monkeypatch):
    am = ui_env
    # A profile of the user's config that stands in for an agent CLI: it prints its task.
    am.home.mkdir(parents=True, exist_ok=True)
    (am.home / "config.toml").write_text(
        '[agents.standin]\ncommand = ["sh", "-c", "printf \'task=%s\\\\n\' \\"$0\\"; '
        'sleep 600"]\nprompt_args = ["{prompt}"]\n'
    )
    monkeypatch.chdir(repo)  # the form offers the current repository as the source
    task = "Fix [b]it[/b]: $(touch pwned) 'q'"

    async def test(app, pilot):
        await pilot.press("n")
        assert isinstance(app.screen, SpawnForm)
        assert app.screen.query_one("#source", Input).value == str(repo)
        app.screen.query_one("#task", Input).value = task
        app.screen.query_one("#agent", Input).value = "no-such-profile"
        await pilot.press("enter")
        await until(pilot, lambda: "no-such-profile" in message(app), "spawn's error")
        assert message(app).startswith("am: error:")
        assert am.list() == []  # nothing half-made

        await pilot.press("n")
        app.screen.query_one("#task", Input).value = task
        app.screen.query_one("#agent", Input).value = "standin"
        await pilot.press("enter")
        await until(pilot, lambda: len(rows(app)) == 1, "the new agent's row", 60)
        [agent] = am.list()
        assert agent["prompt"] == task and agent["agent"] == "standin"
        assert agent["mode"] == "tmux"
        await until(pilot, lambda: f"task={task}" in preview(app), "the task in its screen")
        assert not (repo / "pwned").exists()

    drive(test)


def test_pull_key_runs_am_pull(ui_env, repo):
    am = ui_env
    commit = (
        "echo work > work.txt && git add work.txt && git commit -qm work && "
        "echo COMMITTED-$((0+1)); sleep 600"
    )
    agent_id = am.spawn(repo, "--name", unique("puller"), "--cmd", commit)
    am.wait_log(agent_id, "COMMITTED-1")
    head = json.loads(am("log", agent_id, "--json").stdout)[0]["commit"]

    async def test(app, pilot):
        await until(pilot, lambda: list(rows(app)) == [agent_id], "the row")
        await pilot.press("p")  # 'am pull ID', as from the shell: its last line is the tip
        await until(pilot, lambda: message(app) == head, "the pulled tip", 60)
        assert (
            subprocess.run(
                ["git", "rev-parse", f"am/{agent_id}"], cwd=repo, capture_output=True, text=True
            ).stdout.strip()
            == head
        )

    drive(test)


def test_errors_are_shown_not_raised(ui_env, repo):
    am = ui_env
    agent_id = am.spawn(repo, "--name", unique("one"), "--cmd", "exit 0")
    am.wait_status(agent_id, "exited")

    async def test(app, pilot):
        await until(pilot, lambda: list(rows(app)) == [agent_id], "the row")
        await pilot.press("enter")  # attach to an agent that is not running
        assert "is not running" in message(app)
        state = am.home / "state" / "state.json"
        good = state.read_text()
        state.write_text("{broken")
        await until(pilot, lambda: "is corrupt" in message(app), "the state file error")
        state.write_text(good)
        await pilot.press("s")  # the dashboard still takes keys
        await until(pilot, lambda: rows(app)[agent_id][2] == "stopped", "the stop")

    drive(test)


def test_a_record_naming_another_log_is_not_read(ui_env, repo, tmp_path):
    am = ui_env
    agent_id = am.spawn(repo, "--cmd", "echo own-output; sleep 600")
    am.wait_log(agent_id, "own-output")
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-CONTENT\n")
    state = am.home / "state" / "state.json"
    data = json.loads(state.read_text())
    data["agents"][agent_id]["log"] = str(secret)  # a hand-edited (or corrupt) record
    state.write_text(json.dumps(data))
    assert am("logs", agent_id, check=False).returncode != 0  # am logs refuses it too

    async def test(app, pilot):
        await until(pilot, lambda: "is invalid" in preview(app), "the invalid record's note")
        await pilot.press("v", "v")  # the log tab
        await pilot.pause(1.5)
        assert "SECRET" not in log_lines(app, "#log-text")

    drive(test)


# --- end to end: the real am ui in a real terminal (tmux) ----------------------------------


def tmux(*args) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def screen(name: str) -> str:
    return tmux("capture-pane", "-p", "-t", f"={name}:")


def wait_screen(name: str, predicate, what: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = screen(name)
        if predicate(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the screen:\n{text}")
        time.sleep(0.2)


def test_am_ui_needs_a_terminal(am):
    line = assert_am_error(am("ui", check=False))
    assert "am ui needs a terminal" in line


def test_am_ui_in_a_real_terminal(am, repo):
    # The first agent also sets its terminal's title: the preview must not pass that on.
    first = am.spawn(
        repo,
        "--name",
        unique("first"),
        "--cmd",
        "printf '\033]2;%s-%s\007' pwned title; " + MARKER_AGENT,
    )
    second = am.spawn(
        repo,
        "--name",
        unique("second"),
        "--prompt",
        "Write the docs",
        "--cmd",
        "printf '%s-%s\\n' OTHER ready; read line; echo got-$line; sleep 600",
    )
    am.wait_log(first, "MARKER-ready")
    name = f"ui-{uuid.uuid4().hex[:8]}"
    # An 80x24 terminal of 8 colours; TMUX unset, as in a plain terminal or over SSH.
    cmd = [
        "env",
        "-u",
        "TMUX",
        "TERM=screen",
        f"AM_HOME={am.home}",
        f"PATH={os.environ['PATH']}",
        sys.executable,
        "-m",
        "am",
        "ui",
    ]
    tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", "--", *cmd)
    try:
        text = wait_screen(
            name,
            lambda t: second in t and "MARKER-ready" in t,
            "the rows and the first agent's preview",
        )
        lines = text.splitlines()
        assert any(line.split()[:3] == [first, "tmux", "running"] for line in lines), text
        assert any(line.split()[:3] == [second, "tmux", "running"] for line in lines), text
        for key in ("attach", "new", "stop", "pull", "remove", "filter", "quit"):
            assert key in lines[-1], f"{key} not in the footer: {lines[-1]!r}"
        assert (
            tmux("display-message", "-p", "-t", f"=am-{first}:", "#{pane_title}").strip()
            == "pwned-title"
        )  # control: on a terminal, the sequence sets the title
        assert "pwned" not in tmux("display-message", "-p", "-t", f"={name}:", "#{pane_title}")

        tmux("send-keys", "-t", f"={name}:", "Down")
        wait_screen(name, lambda t: "OTHER-ready" in t, "the second agent's preview")
        tmux("send-keys", "-t", f"={name}:", "Enter")  # attach: the agent's own terminal
        clients = ["list-clients", "-t", f"=am-{second}:"]
        deadline = time.monotonic() + 30
        while not tmux(*clients).strip():
            assert time.monotonic() < deadline, f"no client attached:\n{screen(name)}"
            time.sleep(0.1)
        wait_screen(
            name, lambda t: "OTHER-ready" in t and "am ui" not in t, "the agent's own screen"
        )
        tmux("send-keys", "-t", f"={name}:", "-l", "typed-9")
        tmux("send-keys", "-t", f"={name}:", "Enter")
        am.wait_log(second, "got-typed-9")  # the keys reached the agent itself
        tmux("send-keys", "-t", f"={name}:", "C-b", "d")  # detach
        wait_screen(name, lambda t: f"back from {second}" in t, "the dashboard again")
        assert not tmux(*clients).strip()

        tmux("send-keys", "-t", f"={name}:", "s")  # stop the selected agent
        am.wait_status(second, "stopped")
        wait_screen(
            name,
            lambda t: any(
                line.split()[:3] == [second, "tmux", "stopped"] for line in t.splitlines()
            ),
            "the stopped row",
        )
        assert am.info(first)["status"] == "running"

        tmux("send-keys", "-t", f"={name}:", "q")
        deadline = time.monotonic() + 30
        while has_session(name):
            assert time.monotonic() < deadline, "am ui did not quit"
            time.sleep(0.2)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", f"={name}:"], capture_output=True)
    assert json.loads(am("info", first, "--json").stdout)["status"] == "running"

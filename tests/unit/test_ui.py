"""am ui's pure parts: table cells, the filter, agent text made safe to draw, the spawn form's
arguments as am's parser reads them, and the routing of a command's output."""

import sys
import threading
import unicodedata

from am.ui import actions, model

HOSTILE = (
    "\x1b]0;evil title\x07"  # set the window title
    "\x1b]52;c;aGVsbG8=\x07"  # write the clipboard
    "\x1b]8;;http://evil.invalid/\x1b\\link\x1b]8;;\x1b\\"  # a hyperlink
    "\x1bP+q544e\x1b\\"  # a DCS request
    "\x1b[2J\x1b[H"  # clear the screen, move the cursor
    "\x9b31m"  # an 8-bit CSI
    "\x07\x08\x7f"  # bell, backspace, delete
    "\u202egnp.exe"  # a right-to-left override
    " [bold red]markup[/] \x1b[32mgreen\x1b[0m end"
)


def controls(text: str) -> list[str]:
    """The characters of TEXT that a terminal could act on (all but line breaks)."""
    return [
        c
        for c in text
        if c != "\n"
        and (
            unicodedata.category(c) == "Cc"
            or c in "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
        )
    ]


def test_terminal_text_keeps_colours_and_drops_every_other_sequence():
    assert controls(HOSTILE)  # positive control: the raw text is full of them
    text = model.terminal_text(HOSTILE + "\nsecond\n\n\n")
    assert controls(text.plain) == []
    assert text.plain.splitlines()[-1] == "second"  # trailing blank lines dropped
    first = text.plain.splitlines()[0]
    assert "evil title" not in first and "aGVsbG8" not in first and "544e" not in first
    assert "link" in first and "[bold red]markup[/]" in first  # text stays, as text
    assert first.endswith(" green end")
    start = first.index("green")
    styles = [s for s in text.spans if s.start <= start < s.end]
    assert any(s.style.color.number == 2 for s in styles), text.spans  # SGR 32: green
    assert not any("link" in str(s.style) for s in text.spans)  # no hyperlink survives


def test_terminal_text_last_lines_and_carriage_returns():
    raw = "".join(f"line {i}\r\n" for i in range(30)) + "progress 10%\rprogress 99%\n"
    text = model.terminal_text(raw, last=3)
    assert text.plain.splitlines() == ["line 28", "line 29", "progress 99%"]
    assert model.terminal_text("", last=5).plain == ""


def test_visible_and_one_line():
    assert model.visible("a\tb\x1b[31mc\x00d\x9b\n") == "a       b\\x1b[31mc\\x00d\\x9b\n"
    assert model.one_line("fix\n\x1b[2Jit\u202e now", 40) == "fix \\x1b[2Jit\\u202e now"
    assert model.one_line("x" * 50, 10) == "x" * 9 + "…"
    assert controls(model.one_line(HOSTILE, 400)) == []


def test_cells():
    view = {
        "id": "ab12",
        "mode": "container",
        "runtime": "podman",
        "status": "running",
        "health": "idle",
        "branch": "am/ab12",
        "prompt": "Fix\nthe [b]tests[/b]",
        "created": "2026-01-01T00:00:00Z",
    }
    live = {"cpu_percent": 12.34, "memory_bytes": 3 * 1024**2}
    now = 1767225600 + 125  # 2026-01-01T00:02:05Z
    assert model.cells(view, live, now) == (
        "ab12",
        "podman",
        "running",
        "idle",
        "12%",
        "3.0M",
        "2m",
        "am/ab12",
        "Fix the [b]tests[/b]",
    )
    # An agent that stopped shows no stale figures; a tmux agent shows its mode.
    exited = {
        **view,
        "mode": "tmux",
        "runtime": None,
        "status": "exited",
        "exit_code": 3,
        "health": "-",
        "prompt": None,
    }
    assert model.cells(exited, live, now)[:6] == ("ab12", "tmux", "exited (3)", "-", "-", "-")
    assert model.cells(exited, live, now)[-1] == ""
    assert model.cells({**view, "isolation": "gvisor"}, live, now)[1] == "podman/gvisor"


def test_age():
    assert [model.age(s) for s in (-1, 0, 59, 60, 3599, 3600, 3660 + 59, 86400 * 3 + 7200)] == [
        "0s",
        "0s",
        "59s",
        "1m",
        "59m",
        "1h00m",
        "1h01m",
        "3d02h",
    ]


def test_matches():
    view = {
        "id": "ab12",
        "mode": "tmux",
        "status": "running",
        "branch": "am/ab12",
        "prompt": "Fix the API tests",
        "source": "/src/app",
    }
    assert model.matches(view, "")
    assert model.matches(view, "api RUNNING")
    assert model.matches(view, "/src/app")
    assert not model.matches(view, "api exited")


def test_diff_text():
    patch = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new \x1b[2J\n ctx\n"
    text = model.diff_text(patch, max_lines=100)
    assert text.plain.splitlines()[-2:] == ["+new \\x1b[2J", " ctx"]
    assert controls(text.plain) == []
    cut = model.diff_text(patch, max_lines=2)
    assert cut.plain.splitlines()[-1].startswith("... 5 more lines")


def test_spawn_argv_is_read_by_ams_parser_as_given():
    argv = actions.spawn_argv(
        "-src", "-x $(rm -rf ~) [b]no[/b]\nnext", " codex ", True, "podman", "limited"
    )
    args = actions.parse("spawn", argv)
    assert args.source == "-src"
    assert args.prompt == "-x $(rm -rf ~) [b]no[/b]\nnext"
    assert (args.agent, args.container, args.runtime, args.network) == (
        "codex",
        True,
        "podman",
        "limited",
    )
    plain = actions.parse("spawn", actions.spawn_argv("/src", " ", "", False, "docker", "full"))
    assert (
        plain.source,
        plain.prompt,
        plain.agent,
        plain.container,
        plain.runtime,
        plain.network,
    ) == ("/src", None, None, False, None, None)


def test_available_commands():
    assert actions.available("stop") and actions.available("rm") and actions.available("spawn")
    assert actions.available("pull")
    assert not actions.available("no-such-command")


def test_routed_output_goes_to_its_own_thread_only():
    got, other = [], []
    before = sys.stdout, sys.stderr

    def elsewhere():
        with actions.routed(lambda line, err: other.append((line, err))):
            print("from the other thread")

    with actions.routed(lambda line, err: got.append((line, err))):
        print("one", end="")
        print(" line")
        print("to stderr", file=sys.stderr)
        t = threading.Thread(target=elsewhere)
        t.start()
        t.join()
        sys.stderr.write("no newline at the end")
    assert got == [("one line", False), ("to stderr", True), ("no newline at the end", True)]
    assert other == [("from the other thread", False)]
    assert (sys.stdout, sys.stderr) == before  # put back

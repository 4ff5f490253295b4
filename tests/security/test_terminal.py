"""Escape sequences an agent chooses reach the user's terminal as visible text, never obeyed.

Each attack runs in a real terminal: a private tmux server whose pane's title and screen show
whether a sequence was obeyed. The positive control prints the same bytes raw in the same pane
and sees the title change or the screen clear; then am's command, in a fresh pane, shows them
as ``\\x1b`` text and changes nothing.
"""

import json
import os
import signal
import subprocess

from terminal import CLEAR, TITLE, am_cmd, assert_shown

PROPERTY = "13 agent text is escaped on the terminal"
HIDE = "\x1b[1A\x1b[2K"  # cursor up one line, erase it


def test_gitsafe_refusal_is_escaped_when_printed(agent, tmp_path):
    """A configuration key with escape sequences in its subsection: gitsafe's refusal names it,
    raw, in its message and in the hint's command (issue 18 saw it retitle the terminal); what
    am prints of it is escaped. (Since issue 12, am diff no longer reads the workspace's
    configuration, so no command reaches this with an agent's key; the refusal stays for the
    user's own repositories.)"""
    from am import gitsafe, termsafe

    _, ws = agent
    config = ws / ".git" / "config"
    with open(config, "a") as f:
        f.write(f'[remote "{TITLE}{CLEAR}x"]\n\tevil = 1\n')
    try:
        gitsafe.check_config(config, ws)
        raise AssertionError("the key was not refused")
    except gitsafe.Refused as e:
        text = e.render()
    assert TITLE in text and "--unset-all" in text  # the control: raw in the error itself
    shown = termsafe.escape(text)
    assert "\x1b" not in shown and "\\x1b]2;PWNED\\x07" in shown


def test_diff_on_a_terminal_shows_what_would_hide_a_line(am, agent, term, repo):
    """File content whose lines end in cursor-up and erase-line sequences hides the hunk
    header and an added line from a reviewer reading a plain patch; am diff shows them."""
    agent_id, ws = agent

    (ws / "file.txt").write_bytes(f"one\nADDED-LINE{HIDE}\nnext{TITLE}{HIDE}{HIDE}\n".encode())
    plain = subprocess.run(
        ["git", "-c", f"safe.directory={ws}", "diff"], cwd=ws, capture_output=True
    ).stdout
    raw = term.folder / "plain.diff"
    raw.write_bytes(plain)
    control = term.run(f"cat {raw}")
    assert "ADDED-LINE" not in control and "@@" not in control  # hidden from the reviewer
    assert term.title() == "PWNED"
    screen = term.run(am_cmd(am, "diff", agent_id))
    assert "+ADDED-LINE\\x1b[1A\\x1b[2K" in screen and "@@" in screen
    assert term.title() != "PWNED"
    # Into a pipe or a file, the patch is exact: it still applies.
    piped = subprocess.run([*am.argv, "diff", agent_id], env=am.env, capture_output=True)
    assert piped.returncode == 0 and b"\x1b[1A\x1b[2K" in piped.stdout
    check = subprocess.run(
        ["git", "apply", "--check", "-"], cwd=repo, input=piped.stdout, capture_output=True
    )
    assert check.returncode == 0, check.stderr


def test_list_and_info_escape_agent_fields(am, repo, term):
    """What am shows of a record is escaped too: a branch with C1 controls (legal in git:
    non-ASCII) and any field a state file carries."""
    agent_id = am.spawn(str(repo), "--cmd", "sleep 300", "--branch", "am/x\u009b2J\u202ey")
    am("stop", agent_id)
    state = am.home / "state" / "state.json"
    data = json.loads(state.read_text())
    data["agents"][agent_id]["source"] = f"/src{TITLE}{CLEAR}"  # a tampered record
    state.write_text(json.dumps(data))
    for args in (("list",), ("info", agent_id)):
        screen = term.run(am_cmd(am, *args))
        assert_shown(term, screen)
    out = am("info", agent_id).stdout
    assert "am/x\\x9b2J\\u202ey" in out and "\x9b" not in out and "\u202e" not in out
    assert json.loads(am("info", agent_id, "--json").stdout)["branch"] == "am/x\u009b2J\u202ey"


def test_escape_keeps_newlines_and_tabs_only():
    from am import termsafe

    assert termsafe.escape("a\tb\nc") == "a\tb\nc"
    assert termsafe.escape("\x1b[2J\r\x00\x7f\x9b") == "\\x1b[2J\\x0d\\x00\\x7f\\x9b"
    assert termsafe.escape("x\u202ey\u2066") == "x\\u202ey\\u2066"
    assert termsafe.escape(b"\xff\x9b".decode("utf-8", "surrogateescape")) == "\\xff\\x9b"
    assert termsafe.escape("héllo ✓") == "héllo ✓"


def test_the_quick_look_passes_only_what_the_pattern_would():
    """``plain`` lets text through unescaped without ``re``: for every ASCII character, alone
    and amid text, it must agree with the pattern. Control: a look that forgot DEL passes a
    text the pattern would escape."""
    import re

    from am import termsafe

    pattern = re.compile(termsafe.UNSAFE)
    for c in map(chr, range(128)):
        for text in (c, f"a{c}b\n", f"{c}\t"):
            assert termsafe.plain(text) == (pattern.search(text) is None), repr(text)
            assert termsafe.escape(text) == pattern.sub(termsafe._visible, text)
    assert not termsafe.plain("é") and termsafe.escape("é\x9b") == "é\\x9b"

    def forgetful(text):
        return all(" " <= ch < "\x7f" or ch in "\n\t\x7f" for ch in text)

    assert forgetful("a\x7fb") and pattern.search("a\x7fb")


def test_every_am_error_line_is_escaped(am, term):
    """Even argparse's and an unknown id's errors: no text reaches the terminal raw."""
    screen = term.run(am_cmd(am, "info", f"x{TITLE}{CLEAR}"))
    assert "am: error:" in screen
    assert_shown(term, screen)


def test_ams_own_control_sequences_still_work(am, term):
    """The escaping is for text: am status --watch still clears the screen between refreshes
    (its own sequence, not an agent's)."""
    pid = term.folder / "watch.pid"
    name = term.start(f"{am_cmd(am, 'status', '--watch')} & echo $! > {pid}; wait")
    # until its first refresh has cleared the screen (however long am takes to start)
    screen = term.wait(lambda s: "BEFORE-" not in s, "am status --watch never cleared it")
    assert "\\x1b" not in screen
    os.kill(int(pid.read_text()), signal.SIGTERM)  # (a background job ignores SIGINT)
    term.wait(lambda s: f"DONE-{name}" in s, "am status --watch did not end")

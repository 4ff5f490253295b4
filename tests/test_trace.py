"""AM_DEBUG=1: the trace of every external command (am/trace.py, am/proc.py)."""

import sys

from am import proc, trace


def test_redact_hides_env_values_only():
    argv = [
        "tmux",
        "new-session",
        "-e",
        "TOKEN=s3cret",
        "-e",
        "BARE",
        "--env",
        "K=v=w",
        "--env=X=y",
        "--",
        "echo",
        "A=b",
    ]
    assert trace.redact(argv) == [
        "tmux",
        "new-session",
        "-e",
        "TOKEN=…",
        "-e",
        "BARE",
        "--env",
        "K=…",
        "--env=X=…",
        "--",
        "echo",
        "A=b",
    ]


def test_env_names_lists_what_changes_by_name(monkeypatch):
    monkeypatch.setenv("SAME", "1")
    monkeypatch.setenv("CHANGED", "old")
    assert trace.env_names({"SAME": "1", "CHANGED": "new", "NEW": "x"}) == ["CHANGED", "NEW"]
    assert trace.env_names(None) == []


def test_line_of_a_failure_keeps_its_stderr_escaped():
    err = "".join(f"line {i}\n" for i in range(30)) + "fatal: \x1b[31mred\n"
    text = trace.line(["git", "clone", "a b"], {"GIT_DIR": "/x"}, 128, 0.0123, err)
    first, *rest = text.splitlines()
    assert first.startswith("am: debug: git clone 'a b' [env: GIT_DIR] -> exit 128 in 12 ms")
    assert len(rest) == trace.FAILED_LINES and rest[-1] == "am: debug:   | fatal: \\x1b[31mred"
    assert "/x" not in text


def test_run_traces_only_when_asked(monkeypatch, capsys):
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('one\\ntwo\\n'); sys.exit(3)"]
    monkeypatch.delenv("AM_DEBUG", raising=False)
    assert proc.run(argv).code == 3
    assert "am: debug" not in capsys.readouterr().err
    monkeypatch.setenv("AM_DEBUG", "1")
    res = proc.run(argv, env={"SECRET": "hunter2"})
    err = capsys.readouterr().err
    assert "-> exit 3 in " in err and "[env: SECRET]" in err and "hunter2" not in err
    assert "am: debug:   | one\nam: debug:   | two" in err
    assert res.brief() == "one; two" and res.brief(1) == "two"


def test_other_runners_trace(monkeypatch, capsys):
    monkeypatch.setenv("AM_DEBUG", "1")
    assert proc.run_fg(["true"]) == 0
    code, out, _ = proc.run_bytes(["printf", "x"], limit=10, timeout=10)
    assert (code, out) == (0, b"x")
    assert proc.stream(["false"]).code == 1
    err = capsys.readouterr().err
    assert "am: debug: true -> exit 0" in err
    assert "am: debug: printf x -> exit 0" in err
    assert "am: debug: false -> exit 1" in err


def test_spawn_trace_end_to_end(am, repo, tmp_path):
    """A real spawn with AM_DEBUG=1: git and tmux calls traced, an --env value nowhere."""
    res = am(
        "spawn", repo, "--cmd", "sleep 60", "--env", "SECRET_VALUE=hunter2", env={"AM_DEBUG": "1"}
    )
    agent = res.stdout.strip().splitlines()[-1]
    lines = [t for t in res.stderr.splitlines() if t.startswith("am: debug: ")]
    assert any(t.startswith("am: debug: git ") and "-> exit 0 in " in t for t in lines), lines
    assert any(t.startswith("am: debug: tmux ") and " new-session " in t for t in lines), lines
    assert "hunter2" not in res.stderr
    quiet = am("stop", agent)
    assert "am: debug" not in quiet.stderr
    bad = am("spawn", tmp_path, check=False, env={"AM_DEBUG": "1"})
    assert bad.returncode != 0 and "am: error:" in bad.stderr
    assert "am: debug: git " in bad.stderr and "am: debug:   | " in bad.stderr

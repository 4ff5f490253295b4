"""Unit tests of pure composition: tmux and git command lines, limits, env, domains, names."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import DOCUMENTED_KEYS, git

from am import git as amgit
from am import ids, output, plan, session, status
from am.errors import AmError
from am.gitsafe import Repo

# --- tmux ---------------------------------------------------------------------------------------


def split_commands(argv: list[str]) -> list[list[str]]:
    """The tmux command list as tmux itself reads it: split at bare ';' arguments."""
    assert argv[0] == "tmux"
    commands, current = [], []
    for a in argv[1:]:
        if a == ";":
            commands.append(current)
            current = []
        else:
            current.append(a)
    return commands + [current]


def test_new_session_argv_shape():
    argv = session.new_session_argv("am-abc", ["sh", "-c", "echo hi"], Path("/l/a.log"), "/home")
    new, tag, pipe = split_commands(argv)
    assert new[:4] == ["new-session", "-d", "-s", "am-abc"]
    assert new[new.index("--") + 1 :] == ["sh", "-c", "echo hi"]
    assert tag == ["set-option", "-t", "=am-abc:", "@am_home", "/home"]
    assert pipe[:4] == ["pipe-pane", "-t", "=am-abc:", "-o"]
    assert pipe[4] == "exec cat >> /l/a.log"


def test_new_session_argv_escapes_semicolons():
    argv = session.new_session_argv(
        "am-x", ["find", ".", "-exec", "echo", "{}", ";", "end;", "bs\\;"], Path("/l"), "/h;"
    )
    new, tag, _ = split_commands(argv)  # exactly three commands: no argument split one
    assert new[new.index("--") + 1 :] == [
        "find",
        ".",
        "-exec",
        "echo",
        "{}",
        "\\;",
        "end\\;",
        "bs\\\\;",
    ]
    assert tag[-1] == "/h\\;"


def test_new_session_argv_escapes_formats_in_the_pipe_command():
    log = Path("/tmp/it's #{host} #(touch x)/a.log")
    _, _, pipe = split_commands(session.new_session_argv("am-x", ["true"], log, "/h"))
    # '#' doubled (tmux format-expands pipe-pane's command) inside a shell-quoted path
    assert pipe[-1] == "exec cat >> '/tmp/it'\"'\"'s ##{host} ##(touch x)/a.log'"


def test_new_session_argv_env():
    argv = session.new_session_argv("am-x", ["true"], Path("/l"), "/h", {"A": "1;", "B": "x"})
    new = split_commands(argv)[0]
    assert new[new.index("-e") : new.index("--")] == ["-e", "A=1\\;", "-e", "B=x"]


def test_other_tmux_argv():
    assert session.target("am-ab") == "=am-ab:"
    assert session.kill_session_argv("am-ab") == ["tmux", "kill-session", "-t", "=am-ab:"]
    assert session.attach_argv("am-ab") == ["tmux", "attach-session", "-t", "=am-ab:"]
    assert session.attach_argv("am-ab", "/tmp/s") == [
        "tmux",
        "-S",
        "/tmp/s",
        "attach-session",
        "-t",
        "=am-ab:",
    ]
    # never a switch-client without -c: tmux would pick another user's client
    assert session.switch_argv("am-ab", "/dev/pts/3") == [
        "tmux",
        "switch-client",
        "-c",
        "/dev/pts/3",
        "-t",
        "=am-ab:",
    ]


def test_run_fg_returns_the_exit_code():
    # am attach returns what tmux attach exits with (sh's _fg gave None: a crash on detach).
    from am import proc

    assert proc.run_fg(["sh", "-c", "exit 7"]) == 7
    assert proc.run_fg(["sh", "-c", "kill -TERM $$"]) == 128 + 15
    assert proc.run_fg(["sh", "-c", 'test "$X" = y'], env={**os.environ, "X": "y"}) == 0
    with pytest.raises(proc.NotFound):
        proc.run_fg(["am-no-such-program"])


def test_capture_argv():
    assert session.capture_argv("am-ab") == ["tmux", "capture-pane", "-p", "-e", "-t", "=am-ab:"]


def test_new_session_argv_round_trip_through_real_tmux(tmp_path):
    """What tmux makes of the escaped command list: the exact arguments, log and home."""
    name = f"am-unit-{os.getpid()}-{time.monotonic_ns() % 100000}"
    logdir = tmp_path / "it's #{host} #(touch pwned) dir;"
    logdir.mkdir()
    log = logdir / "a.log"
    log.touch()
    home = f"{tmp_path}/home #{{session_name}};"
    out = tmp_path / "argv.json"
    script = (
        "import json, sys, time; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]));"
        " print('child-' + 'printed', flush=True); time.sleep(30)"
    )
    args = ["a;", ";", "b\\;", "#{session_name}", "it's", "x y", "-d", "--"]
    argv = [sys.executable, "-c", script, str(out), *args]
    res = subprocess.run(
        session.new_session_argv(name, argv, log, home),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert res.returncode == 0, res.stderr
        deadline = time.monotonic() + 30
        while not (out.exists() and "child-printed" in log.read_text()):
            assert time.monotonic() < deadline, f"no output: {log.read_text()!r}"
            time.sleep(0.1)
        assert json.loads(out.read_text()) == args
        assert session.sessions()[name] == home
        assert not (tmp_path / "pwned").exists()
    finally:
        subprocess.run(session.kill_session_argv(name), capture_output=True)


# --- git ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ws", ["/tmp/ws", "/tmp/with space/-dash", "/tmp/x;y#{z}"])
def test_ws_argv_always_hardened(ws):
    argv = amgit.ws_argv(
        Repo(Path(ws), Path(ws) / ".git", Path(ws) / ".git"), "status", "--porcelain"
    )
    assert argv[:2] == ["git", "--no-pager"]
    assert argv[argv.index("-C") + 1] == ws
    assert argv[-2:] == ["status", "--porcelain"]
    options = argv[:-2]
    configs = [options[i + 1] for i, a in enumerate(options) if a == "-c"]
    assert f"safe.directory={ws}" in configs
    for kv in amgit.HARDENING:
        assert kv in configs
    for kv in (
        "core.fsmonitor=false",
        "core.hooksPath=/dev/null",
        "core.pager=cat",
        "protocol.allow=never",
        "credential.helper=",
        "diff.external=",
    ):
        assert kv in configs
    # every option is a '-c KEY=VALUE' pair or one of the fixed ones; git discovers nothing
    rest = [a for i, a in enumerate(options) if a != "-c" and options[i - 1] != "-c"]
    assert rest == ["git", "--no-pager", "-C", ws, f"--git-dir={ws}/.git", f"--work-tree={ws}"]


def test_ws_env_ignores_global_config_and_git_variables(monkeypatch):
    monkeypatch.setenv("GIT_DIR", "/elsewhere")
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'core.fsmonitor'='touch /tmp/x'")
    env = amgit.ws_env({"GIT_INDEX_FILE": "/tmp/i"})
    assert "GIT_DIR" not in env and "GIT_CONFIG_PARAMETERS" not in env
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == os.devnull
    assert env["GIT_INDEX_FILE"] == "/tmp/i"


def test_workspace_config_cannot_run_programs(repo, tmp_path):
    """A real repository whose own config names programs: am's git calls run none of them."""
    marker = tmp_path / "ran"
    evil = f"touch {marker}; false"
    git("config", "core.fsmonitor", evil, cwd=repo)
    git("config", "core.pager", evil, cwd=repo)
    git("config", "diff.external", evil, cwd=repo)
    (repo / "README").write_text("changed\n")
    # control: plain git does run the workspace's fsmonitor command
    subprocess.run(["git", "-C", str(repo), "status"], capture_output=True)
    assert marker.exists(), "control failed: the hostile config is not effective"
    marker.unlink()
    base = git("rev-parse", "HEAD~1", cwd=repo).strip()
    # am's workspace operations give git a git folder of am's own: the config is never read
    from am import workspace

    ops = workspace.at_path(repo)
    assert "1 uncommitted or untracked file(s)" in ops.unsaved()
    assert b"+changed" in ops.diff(base)
    assert ops.head().commit == git("rev-parse", "HEAD", cwd=repo).strip()
    assert not marker.exists()
    # and the -c layer alone, for the calls am makes in a workspace it has just cloned
    checked = Repo(repo, repo / ".git", repo / ".git")
    amgit.ws_git(checked, "status", "--porcelain")
    amgit.ws_git(checked, "log", "-1")
    assert not marker.exists()


def test_clone_and_worktree_argv_end_options():
    argv = amgit.clone_argv("-oops", Path("/d"), hardlinks=False)
    assert argv[-3:] == ["--", "-oops", "/d"] and "--no-hardlinks" in argv
    assert "--no-hardlinks" not in amgit.clone_argv("/src", Path("/d"), hardlinks=True)
    assert "--no-hardlinks" not in amgit.clone_argv("https://h/r.git", Path("/d"), hardlinks=False)
    argv = amgit.worktree_add_argv(Path("/s"), Path("/d"), "am/x", "abc123")
    assert argv[-3:] == ["--", "/d", "abc123"]
    assert argv[argv.index("-b") + 1] == "am/x"


@pytest.mark.parametrize(
    "url",
    [
        "https://h/r.git",
        "ssh://git@h/r",
        "git@github.com:o/r.git",
        "file:///tmp/r",
        "http://127.0.0.1:9/x",
    ],
)
def test_is_url(url):
    assert amgit.is_url(url)


@pytest.mark.parametrize("path", ["/tmp/r", "r", "./r", "../r", "dir/with:colon", "~/r"])
def test_is_not_url(path):
    assert not amgit.is_url(path)


# --- plan: limits, env, domains -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("memory", "cpus", "pids", "expected"),
    [
        ("2g", "2", "100", {"memory": "2g", "cpus": "2", "pids": 100, "disk": None}),
        ("512M", "0.5", "1", {"memory": "512m", "cpus": "0.5", "pids": 1, "disk": None}),
        ("1.5g", "1", "4096", {"memory": "1.5g", "cpus": "1", "pids": 4096, "disk": None}),
        ("6m", "16", "100", {"memory": "6m", "cpus": "16", "pids": 100, "disk": None}),
    ],
)
def test_check_limits_accepts(memory, cpus, pids, expected):
    assert plan.check_limits(memory, cpus, pids) == expected


@pytest.mark.parametrize(
    ("memory", "cpus", "pids"),
    [
        ("0", "2", "100"),
        ("-1g", "2", "100"),
        ("abc", "2", "100"),
        ("1t", "2", "100"),
        ("5m", "2", "100"),
        ("", "2", "100"),
        ("1 g", "2", "100"),
        ("2g", "0", "100"),
        ("2g", "-1", "100"),
        ("2g", "abc", "100"),
        ("2g", "nan", "100"),
        ("2g", "", "100"),
        ("2g", "2", "0"),
        ("2g", "2", "-1"),
        ("2g", "2", "1.5"),
        ("2g", "2", "abc"),
        ("2g", "2", ""),
    ],
)
def test_check_limits_refuses(memory, cpus, pids):
    with pytest.raises(AmError):
        plan.check_limits(memory, cpus, pids)


def test_check_limits_against_the_host():
    assert plan.check_limits("1g", "2", "10", host_memory=2 * 1024**3, host_cpus=2)
    with pytest.raises(AmError, match="memory"):
        plan.check_limits("3g", "1", "10", host_memory=2 * 1024**3, host_cpus=2)
    with pytest.raises(AmError, match="cpus"):
        plan.check_limits("1g", "3", "10", host_memory=2 * 1024**3, host_cpus=2)


def test_parse_env():
    names, values = plan.parse_env(["A=1", "B", "C=x=y", "D="], {"B": "from-env", "Z": "z"})
    assert names == ["A", "B", "C", "D"]
    assert values == {"A": "1", "B": "from-env", "C": "x=y", "D": ""}
    assert plan.parse_env([], {"A": "1"}) == ([], {})


@pytest.mark.parametrize("item", ["1A=x", "A-B=1", "=x", "", "A B=1", "UNSET_IN_ENV", "é=1"])
def test_parse_env_refuses(item):
    with pytest.raises(AmError):
        plan.parse_env([item], {"A": "1"})


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("example.com", "example.com"),
        ("Api.Example.COM", "api.example.com"),
        ("*.example.com", "*.example.com"),
        ("a-b.c0.io", "a-b.c0.io"),
        ("x.com:8443", "x.com:8443"),
        ("*.Example.com:022", "*.example.com:22"),
        ("*.allowed.test", "*.allowed.test"),
        ("github.io", "github.io"),
        ("1x.com", "1x.com"),
    ],
)
def test_check_domain_accepts(domain, expected):
    assert plan.check_domain(domain) == expected


@pytest.mark.parametrize(
    "domain",
    [
        "",
        "exa mple.com",
        "-bad.com",
        "bad-.com",
        "a..b",
        "http://x.com",
        "x.com/",
        "*",
        "**.x.com",
        "x.*.com",
        "x.com:",
        "x.com:0",
        "x.com:65536",
        "x.com:-1",
        "x.com:a",
        "a" * 64 + ".com",
        "x_y.com",
        "x.com;rm",
        "a." * 127 + "com",
    ],
)
def test_check_domain_refuses(domain):
    with pytest.raises(AmError):
        plan.check_domain(domain)


# --- names, status, output ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "0", "a-b_c.d", "x" * 63, "agent1", "1.2", "a.locked"])
def test_validate_name_accepts(name):
    assert ids.validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../x",
        "a b",
        "-rf",
        "UPPER",
        "x" * 64,
        ".",
        "..",
        "a/b",
        "_a",
        ".a",
        "a\n",
        "a\0",
        "é",
        "a..b",
        "y.",  # am/y. and am/x.lock: git makes no such branch
        "x.lock",
    ],
)
def test_validate_name_refuses(name):
    with pytest.raises(AmError, match="invalid agent name"):
        ids.validate_name(name)


def test_new_ids_are_valid_and_distinct():
    fresh = {ids.new_id() for _ in range(200)}
    assert len(fresh) == 200
    for i in fresh:
        assert len(i) == 8 and ids.validate_name(i) == i and int(i, 16) >= 0
    assert ids.session_name("ab12") == "am-ab12" == ids.container_name("ab12")
    # tmux makes '.' '_' in a session's name: a.b and a_b would share one
    assert ids.session_name("a.b") == "am-a,b" != ids.session_name("a_b")
    assert ids.container_name("a.b") == "am-a.b"


@pytest.mark.parametrize(
    ("intent", "alive", "exit_info", "expected", "code"),
    [
        ("running", True, None, "running", None),
        ("running", False, {"exit_code": 3}, "exited", 3),
        ("running", False, None, "exited", None),
        ("stopped", True, None, "stopped", None),
        ("stopped", False, {"exit_code": 3}, "stopped", None),
        ("starting", False, None, "error", None),
        # a spawn that died after starting its session: an error, not 'running'
        ("starting", True, None, "error", None),
    ],
)
def test_status_derive(intent, alive, exit_info, expected, code):
    view = status.derive({"id": "a", "status": intent, "exit_code": None}, alive, exit_info)
    assert view["status"] == expected and view["exit_code"] == code
    assert view["oom_killed"] is False


def test_public_json_has_every_documented_key():
    keys = list(DOCUMENTED_KEYS)
    view = output.public({"id": "a", "spawn_pid": 1, "home": "/h", "secret": "x"})
    assert list(view)[: len(keys)] == keys
    assert "spawn_pid" not in view and "secret" not in view and "home" not in view


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        ("127.0.0.1", "an IP address"),
        ("10.0.0.1:80", "an IP address"),
        ("*.0.0.1", "an IP address"),
        ("[::1]", "an IP address"),
        ("::1", "an IP address"),
        ("0x7f.1", "ends in a number"),
        ("host.123", "ends in a number"),
        ("localhost", "a single-label name"),
        ("intranet:8080", "a single-label name"),
        ("*.com", "a wildcard over a top-level domain"),
        ("*.co.uk", "public suffix 'co.uk'"),
        ("*.github.io", "public suffix 'github.io'"),
        ("*.githubusercontent.com", "public suffix"),
        ("*.test", "top-level domain"),
    ],
)
def test_check_domain_names_why_it_refuses(domain, why):
    with pytest.raises(AmError, match="invalid --allow-domain") as e:
        plan.check_domain(domain)
    assert why in e.value.message and e.value.hint


def test_check_domain_without_the_suffix_list_still_refuses_the_rest():
    assert plan.check_domain("*.co.uk", suffixes=False) == "*.co.uk"  # checked at spawn
    for bad in ("127.0.0.1", "localhost", "*.com"):
        with pytest.raises(AmError):
            plan.check_domain(bad, suffixes=False)


def test_json_output_is_json_dumps_indented_text():
    from am.output import dumps

    rows = [
        {"id": "a1", "n": 1, "f": 2.5, "none": None, "yes": True, "s": 'q"{}\n\t\\ é \u202e'},
        {"id": "a2", "k": -0.0, "big": 10**20, "empty": ""},
    ]
    for data in (rows, rows[:1], [], [{}], [{"nested": {"a": 1}}], [{"l": [1]}], {"a": 1}, 3):
        assert dumps(data) == json.dumps(data, indent=2), data

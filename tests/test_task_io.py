"""The agent's task in: --prompt, am send, am start, am wait, --publish (tmux mode and pure parts).

Stand-in agents: --cmd shells, and profiles from config.toml whose command is a small Python
program that writes the arguments it got to argv.json in its workspace.
"""

import json
import subprocess
import time
from pathlib import Path

import pytest
from helpers import assert_am_error, assert_nothing_made, git, state_agents

from am import output, plan, profiles, session
from am.backends import network
from am.commands import wait

# Quotes, a command substitution, backquotes, tmux formats and a trailing ';' (tmux's command
# separator), a leading '-', newlines, a tab, a shell comment, non-ASCII and an escape byte.
HOSTILE = (
    "-x --help \"double\" 'single' $(touch /tmp/am-pwned) `id` #{pane_id} #(id) \\ ;\n"
    "second line\twith tab # not a comment\nünïcödé 🚀 %s %n \x1b[31m ;"
)
# (It lingers a second: a container spawn waits to see its container run.)
ARGV_PROGRAM = (
    "import json, sys, time; open('argv.json', 'w').write(json.dumps(sys.argv[1:]));"
    " print('ARGV' + '-WRITTEN', flush=True); time.sleep(1)"
)
# Types each line it reads into typed.bin until a line END; run from the workspace.
READER = """import sys
out = open('typed.bin', 'ab')
print('READER' + '-READY', flush=True)
for line in sys.stdin.buffer:
    out.write(line)
    out.flush()
    if line.rstrip(b'\\n') == b'END':
        break
"""


def wait_for(predicate, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def workspace(am, agent_id: str) -> Path:
    return Path(am.info(agent_id)["workspace"])


def read_when_there(path: Path, timeout: float = 30) -> bytes:
    """PATH's content once it has some (a shell creates the file before it writes to it)."""
    return wait_for(lambda: path.exists() and path.read_bytes(), f"{path}", timeout)


def configure(am, text: str) -> None:
    am.home.mkdir(parents=True, exist_ok=True)
    (am.home / "config.toml").write_text(text)


def argv_profile(name: str, extra: str = "") -> str:
    """A config.toml profile NAME whose CLI is ARGV_PROGRAM."""
    command = json.dumps(["python3", "-c", ARGV_PROGRAM])
    return f"[agents.{name}]\ncommand = {command}\n{extra}"


def commit_reader(repo: Path) -> None:
    (repo / "reader.py").write_text(READER)
    git("add", "reader.py", cwd=repo)
    git("commit", "-qm", "reader", cwd=repo)


# --- pure parts ---------------------------------------------------------------------------------


def test_prompt_args_compose_one_argument_whatever_the_text():
    claude = profiles.BUILTIN["claude"]
    assert profiles.prompt_argv(claude.prompt_args, HOSTILE) == ["--", HOSTILE]
    gemini = profiles.BUILTIN["gemini"]
    assert profiles.prompt_argv(gemini.prompt_args, "-{prompt}-") == [
        "--prompt-interactive=-{prompt}-"
    ]
    p = plan.Plan(
        id="x",
        mode="tmux",
        runtime=None,
        source="/s",
        worktree=False,
        base=None,
        branch="b",
        workspace=Path("/w"),
        session="am-x",
        container=None,
        agent="claude",
        command=["claude", "--dangerously-skip-permissions"],
        log=Path("/l"),
        exit_file=Path("/e"),
        limits=None,
        network=None,
        allow_domains=[],
        image=None,
        gpus=None,
        env_names=[],
        prompt=HOSTILE,
        prompt_args=list(claude.prompt_args),
        resume_args=["--continue"],
    )
    assert p.agent_argv() == [
        "claude",
        "--dangerously-skip-permissions",
        "--continue",
        "--",
        HOSTILE,
    ]


def test_task_refuses_what_a_cli_would_misread():
    with pytest.raises(plan.AmError, match="subcommand"):
        plan.task("update", profiles.BUILTIN["claude"], "claude")
    assert plan.task("Update the README", profiles.BUILTIN["claude"], "claude")[0] == [
        "--",
        "{prompt}",
    ]
    # passed inside --opt=..., a single word is only text
    assert plan.task("update", profiles.BUILTIN["aider"], "aider")[0] == ["--message={prompt}"]
    assert plan.task("update", None, "custom") == (None, {"AM_PROMPT": "update"})
    bare = profiles.Profile("bare", ("bare",), None)
    with pytest.raises(plan.AmError, match="takes no initial prompt"):
        plan.task("do it", bare, "bare")
    for bad in ("", " \n", "a\0b", "x" * (plan.PROMPT_MAX + 1), "\udcff"):
        with pytest.raises(plan.AmError):
            plan.check_prompt(bad)
    assert plan.check_prompt(HOSTILE) == HOSTILE


@pytest.mark.parametrize(
    "given,expected",
    [
        ("8080:3000", "127.0.0.1:8080:3000"),
        ("0.0.0.0:8080:3000", "0.0.0.0:8080:3000"),
        ("[::1]:8080:80", "[::1]:8080:80"),
        (" 10.1.2.3:1:65535 ", "10.1.2.3:1:65535"),
    ],
)
def test_publish_specs(given, expected):
    assert plan.check_publish(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "8080",
        "0:80",
        "80:0",
        "70000:80",
        "::1:80:80",
        "[1.2.3.4]:1:2",
        "a:1:2",
        "1.2.3:1:2",
        "-p 80:80",
        "80:80,ro",
        "80:80:1",
    ],
)
def test_publish_specs_refused(bad):
    with pytest.raises(plan.AmError, match="invalid --publish"):
        plan.check_publish(bad)


def test_paste_is_data_then_enter():
    argv = session.paste_argv("am-x", "buf", enter=True)
    assert argv == [
        "tmux",
        "load-buffer",
        "-b",
        "buf",
        "-",
        ";",
        "paste-buffer",
        "-d",
        "-p",
        "-b",
        "buf",
        "-t",
        "=am-x:",
        ";",
        "send-keys",
        "-t",
        "=am-x:",
        "Enter",
    ]
    assert "send-keys" not in session.paste_argv("am-x", "buf", enter=False)


def test_limited_publish_goes_through_the_proxy():
    files = network.files(Path("/r"), Path("/l"), "x")
    specs = ["127.0.0.1:8080:3000", "0.0.0.0:9090:5000"]
    proxy = network.proxy_run_argv("docker", "x", "/h", "net", files, [], specs)
    assert proxy[proxy.index("--publish") + 1] == "127.0.0.1:8080:20000"
    assert "0.0.0.0:9090:20001" in proxy
    assert f"type=bind,source={files.pub},target=/run/am-publish,readonly" in proxy
    # the image's relay serves the two published ports (20000, 20001) on their sockets
    assert proxy[proxy.index("--") + 1 :] == [network.PROXY_IMAGE, "2"]
    # without ports, the proxy is exactly what it was
    assert network.proxy_run_argv("docker", "x", "/h", "net", files, [])[-2:] == [
        "--",
        network.PROXY_IMAGE,
    ]
    wrapped = network.wrap_command(["agent", "--", "-p"], specs)
    assert wrapped[4:] == [
        "--publish=/run/am-publish/0.sock:3000",
        "--publish=/run/am-publish/1.sock:5000",
        "--",
        "agent",
        "--",
        "-p",
    ]
    assert f"type=bind,source={files.pub},target=/run/am-publish" in network.agent_run_args(
        files, specs
    )


def test_wait_outcomes():
    view = {"status": "running"}
    assert wait.outcome(view, "exited", 1000, 10) is None
    assert wait.outcome(view, "idle", 9, 10) is None
    assert wait.outcome(view, "idle", 10, 10) == ("idle", wait.IDLE)
    assert wait.outcome(view, "any", 11, 10) == ("idle", wait.IDLE)
    assert wait.outcome({"status": "exited", "exit_code": 0}, "idle", 0, 10) == (
        "exited",
        wait.EXITED_OK,
    )
    assert wait.outcome({"status": "exited", "exit_code": 0, "oom_killed": True}, "any", 0, 10) == (
        "exited",
        wait.EXITED_FAILED,
    )
    assert (
        wait.outcome({"status": "exited", "exit_code": None}, "exited", 0, 10)[1]
        == wait.EXITED_FAILED
    )
    assert wait.outcome({"status": "stopped"}, "exited", 0, 10) == ("stopped", wait.STOPPED)
    assert wait.outcome({"status": "error"}, "exited", 0, 10) == ("error", wait.EXITED_FAILED)


def test_task_column_is_one_line_cut_to_fit():
    base = {
        "id": "a1",
        "mode": "tmux",
        "status": "running",
        "health": "ok",
        "agent": "claude",
        "branch": "am/a1",
        "created": "2026-01-01T00:00:00Z",
        "source": "/src",
    }
    views = [
        {**base, "prompt": "fix\nthe\tbug " + "x" * 300 + "\x1b[31m"},
        {**base, "id": "b2", "prompt": None},
    ]
    lines = output.table(views, width=100).splitlines()
    assert lines[0].split()[-1] == "TASK"
    assert all(len(line.rstrip()) <= 100 for line in lines)
    assert lines[1].rstrip().endswith("...") and "fix the bug x" in lines[1]
    assert max(len(line) for line in lines) == 100
    assert output.task_text("a\x1b[31mb\nc") == "a?[31mb c"
    assert "TASK" not in output.table([{**base, "prompt": None}])


# --- tmux mode end to end -------------------------------------------------------------------------


def test_prompt_reaches_a_cmd_agent_byte_for_byte(am, repo):
    agent = am.spawn(repo, "--cmd", 'printf %s "$AM_PROMPT" > prompt.out', f"--prompt={HOSTILE}")
    ws = workspace(am, agent)
    assert read_when_there(ws / "prompt.out") == HOSTILE.encode()
    assert not Path("/tmp/am-pwned").exists()
    assert am.info(agent)["prompt"] == HOSTILE
    assert am.list()[0]["prompt"] == HOSTILE
    row = am("list", env={"COLUMNS": "300"}).stdout.splitlines()
    assert row[0].split()[-1] == "TASK" and "-x --help" in row[1]

    # from a file, and from standard input: the exact bytes, a final newline included
    text = "line one\n$(not run)\n-last\n"
    (am.home / "task.txt").write_text(text)
    for args, stdin in (
        (("--prompt-file", am.home / "task.txt"), None),
        (("--prompt-file", "-"), text),
    ):
        other = am.spawn(repo, "--cmd", 'printf %s "$AM_PROMPT" > prompt.out', *args, input=stdin)
        assert read_when_there(workspace(am, other) / "prompt.out") == text.encode()


def test_profile_takes_the_prompt_its_own_way_and_continues(am, repo):
    # The built-in claude profile with a stand-in CLI: its prompt and continue arguments.
    configure(am, argv_profile("claude"))
    agent = am.spawn(repo, "--agent", "claude", "--skip-permissions", f"--prompt={HOSTILE}")
    ws = workspace(am, agent)
    assert am("wait", agent).returncode == 0
    assert json.loads((ws / "argv.json").read_text()) == [
        "--dangerously-skip-permissions",
        "--",
        HOSTILE,
    ]
    info = am.info(agent)
    assert info["prompt"] == HOSTILE and info["command"][:2] == ["python3", "-c"]

    def start(*args) -> list[str]:
        (ws / "argv.json").unlink()
        am("start", agent, *args)
        assert am("wait", agent).returncode == 0
        return json.loads((ws / "argv.json").read_text())

    assert start() == ["--dangerously-skip-permissions", "--", HOSTILE]  # its task again
    assert start("--continue") == ["--dangerously-skip-permissions", "--continue"]
    assert start("--continue", "--prompt", "now the tests") == [
        "--dangerously-skip-permissions",
        "--continue",
        "--",
        "now the tests",
    ]
    assert am.info(agent)["prompt"] == "now the tests"  # the task it was last given

    # A profile of one's own says how it takes a prompt, and may have no continue flag.
    configure(am, argv_profile("mine", 'prompt_args = ["--task={prompt}", "--go"]\n'))
    mine = am.spawn(repo, "--agent", "mine", "--prompt", "update")
    assert am("wait", mine).returncode == 0
    assert json.loads((workspace(am, mine) / "argv.json").read_text()) == ["--task=update", "--go"]
    line = assert_am_error(am("start", mine, "--continue", check=False))
    assert "no way to continue" in line and "continue_args" in line


def test_bad_prompts_are_refused_and_leave_nothing(am, repo, tmp_path):
    configure(am, argv_profile("bare"))
    (tmp_path / "nul.txt").write_bytes(b"a\0b")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "big.txt").write_bytes(b"x" * (plan.PROMPT_MAX + 1))
    cases = [
        (("--cmd", "true", "--prompt", ""), "is empty"),
        (("--cmd", "true", "--prompt-file", tmp_path / "nul.txt"), "NUL"),
        (("--cmd", "true", "--prompt-file", tmp_path / "latin1.txt"), "not UTF-8"),
        (("--cmd", "true", "--prompt-file", tmp_path / "big.txt"), "more than"),
        (("--cmd", "true", "--prompt-file", tmp_path / "none.txt"), "cannot read"),
        (("--agent", "bare", "--prompt", "do it"), "takes no initial prompt"),
        (("--agent", "claude", "--prompt", "doctor"), "subcommand"),
        (("--cmd", "true", "--prompt", "x", "--env", "AM_PROMPT=y"), "--env AM_PROMPT"),
        (("--cmd", "true", "--publish", "8080:80"), "applies to container agents"),
        (("--cmd", "true", "--container", "--publish", "8080:80"), "needs a network"),
        (
            ("--cmd", "true", "--container", "--network", "full", "--publish", "80"),
            "invalid --publish",
        ),
    ]
    for args, why in cases:
        line = assert_am_error(am("spawn", repo, *args, check=False))
        assert why in line, line
    assert (
        am(
            "spawn", repo, "--cmd", "true", "--prompt", "a", "--prompt-file", "b", check=False
        ).returncode
        == 2
    )
    assert_nothing_made(am.home)


def test_send_types_text_literally(am, repo):
    commit_reader(repo)
    agent = am.spawn(repo, "--cmd", "python3 reader.py; sleep 300")
    am.wait_log(agent, "READER-READY")
    text = (
        "a \"b\" 'c' $(touch /tmp/am-pwned) `id` #{pane_id} #(id) \\ é 🚀 C-c Enter ;\n\tsecond ;"
    )
    am("send", agent, text)
    am("send", agent, "partial", "--no-enter")
    am("send", agent, " rest")
    (am.home / "more.txt").write_text("from a file\n")
    am("send", agent, "--file", am.home / "more.txt")
    am("send", agent, "--file", "-", input="END\n")
    typed = wait_for(
        lambda: (
            (
                b := (workspace(am, agent) / "typed.bin").read_bytes()
                if (workspace(am, agent) / "typed.bin").exists()
                else b""
            ).endswith(b"END\n")
            and b
        ),
        "the agent to read END",
    )
    assert typed == (text + "\npartial rest\nfrom a file\nEND\n").encode()
    assert not Path("/tmp/am-pwned").exists()

    for args, why in (
        (("a\x03b",), "control character"),
        (("a\x1b[201~b",), "control"),
        (("a\rb",), "control"),
        ((), "nothing to send"),
        (("", "--no-enter"), "nothing to send"),
    ):
        assert why in assert_am_error(am("send", agent, *args, check=False))
    am("stop", agent)
    line = assert_am_error(am("send", agent, "hello", check=False))
    assert "not running" in line and f"am start {agent}" in line
    assert_am_error(am("send", "nosuch", "hello", check=False))


def test_start_resumes_a_tmux_agent_on_its_workspace(am, repo):
    cmd = (
        "echo run >> runs.txt && git add runs.txt && "
        "git -c user.name=a -c user.email=a@b commit -qm run && "
        "printf '%s-%s\\n' RUN $(wc -l < runs.txt) && sleep 300"
    )
    agent = am.spawn(repo, "--cmd", cmd, "--branch", "work/x", "--env", "AM_TEST_VAR=one")
    am.wait_log(agent, "RUN-1")
    before = am.info(agent)
    assert_am_error(am("start", agent, check=False))  # already running
    am("stop", agent)
    assert am.info(agent)["status"] == "stopped"

    line = assert_am_error(am("start", agent, "--memory", "1g", check=False))
    assert "keeps the settings" in line
    # the value of --env NAME=VALUE is never stored: without it again, a warning
    res = am("start", agent)
    assert "AM_TEST_VAR is not set" in res.stderr
    log = am.wait_log(agent, "RUN-2")
    assert "RUN-1" in log  # one log across runs
    after = am.info(agent)
    assert after["status"] == "running" and after["exit_code"] is None
    for key in ("workspace", "branch", "base_commit", "mode", "command", "session", "created"):
        assert after[key] == before[key], key
    ws = Path(after["workspace"])
    assert git("branch", "--show-current", cwd=ws).strip() == "work/x"
    assert git("log", "--format=%s", cwd=ws).split().count("run") == 2
    am("stop", agent)
    assert_am_error(am("start", "nosuch", check=False))


def test_start_an_agent_that_exited_and_one_made_by_restore(am, repo):
    agent = am.spawn(repo, "--cmd", "echo made > made.txt; exit 3")
    assert am("wait", agent, check=False).returncode == wait.EXITED_FAILED
    assert am.info(agent)["exit_code"] == 3
    snap = am("snapshot", agent).stdout.strip().splitlines()[-1]
    am("start", agent)
    assert am("wait", agent, check=False).returncode == wait.EXITED_FAILED

    am("restore", snap, "--name", "back")
    assert am.info("back")["status"] == "stopped"
    line = assert_am_error(am("start", "back", check=False))
    assert "no command yet" in line and "--cmd" in line  # a --cmd agent's snapshot
    before = state_agents(am.home)["back"]
    assert before["command"] == [] and before["status"] == "stopped"
    am("start", "back", "--cmd", "cat made.txt > seen.txt; sleep 300")
    ws = workspace(am, "back")
    assert read_when_there(ws / "seen.txt") == b"made\n"
    info = am.info("back")
    assert info["status"] == "running" and info["mode"] == "tmux"
    assert info["command"] == ["sh", "-c", "cat made.txt > seen.txt; sleep 300"]
    am("stop", "back")
    (ws / "seen.txt").unlink()
    am("start", "back")  # from now on with the settings of its first start
    assert read_when_there(ws / "seen.txt") == b"made\n"
    am("stop", "back")


def test_wait_says_how_the_agent_ended(am, repo):
    ok = am.spawn(repo, "--cmd", "sleep 1")
    res = am("wait", ok, check=False)
    assert (res.returncode, res.stdout) == (0, "exited (0)\n")
    res = am("wait", ok, "--json", check=False)  # already over: at once
    assert res.returncode == 0 and json.loads(res.stdout)["event"] == "exited"

    failed = am.spawn(repo, "--cmd", "exit 9")
    res = am("wait", failed, check=False)
    assert (res.returncode, res.stdout) == (wait.EXITED_FAILED, "exited (9)\n")

    quiet = am.spawn(repo, "--cmd", "echo hello; sleep 300")
    res = am("wait", quiet, "--until", "idle", "--idle-after", "1", check=False)
    assert (res.returncode, res.stdout) == (wait.IDLE, "idle\n")
    res = am("wait", quiet, "--until", "any", "--json", check=False, env={"AM_IDLE_AFTER": "1"})
    assert res.returncode == wait.IDLE and json.loads(res.stdout)["status"] == "running"
    res = am("wait", quiet, "--timeout", "0.5", check=False)
    assert (res.returncode, res.stdout) == (wait.TIMEOUT, "timeout\n")

    waiter = subprocess.Popen(
        [*am.argv, "wait", quiet], env=am.env, stdout=subprocess.PIPE, text=True
    )
    am("stop", quiet)
    assert waiter.wait(timeout=30) == wait.STOPPED and waiter.stdout.read() == "stopped\n"
    assert_am_error(am("wait", "nosuch", check=False))
    assert_am_error(am("wait", quiet, "--idle-after", "0", check=False))

"""Helpers the tests share (plain functions and the Am runner; the fixtures are in conftest.py).

Test modules import them from here: conftest.py is pytest's file of fixtures and hooks, loaded
by pytest itself, not a module to import.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from am import ids

# The keys of an agent's JSON that docs/usage.md promises to scripts, spelled out here (not
# read from am.output) so that a test fails when am drops one.
DOCUMENTED_KEYS = (
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
)


GIT_ID = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


class Am:
    """Runs the real ``am`` CLI in a subprocess against one AM_HOME."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home = home
        self.env = env
        self.argv = [sys.executable, "-m", "am"]

    def __call__(self, *args, check=True, env=None, timeout=300, input=None):
        # errors="replace": am diff writes the patch's exact bytes, which need not be UTF-8
        res = subprocess.run(
            [sys.executable, "-m", "am", *map(str, args)],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            errors="replace",
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"am {' '.join(map(str, args))} failed ({res.returncode}):\n"
                f"{res.stdout}\n{res.stderr}"
            )
        return res

    def spawn(self, *args, **kw) -> str:
        res = self("spawn", *args, **kw)
        return res.stdout.strip().splitlines()[-1]

    def info(self, agent_id: str) -> dict:
        return json.loads(self("info", agent_id, "--json").stdout)

    def list(self) -> list[dict]:
        return json.loads(self("list", "--json").stdout)

    def wait_status(self, agent_id: str, status: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            info = self.info(agent_id)
            if info["status"] == status:
                return info
            if time.monotonic() > deadline:
                raise AssertionError(f"{agent_id} still {info['status']}, wanted {status}")
            time.sleep(0.2)

    def wait_log(self, agent_id: str, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            out = self("logs", agent_id).stdout
            if text in out:
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in log of {agent_id}:\n{out[-2000:]}")
            time.sleep(0.2)


def _kill_sessions_of(home: Path) -> None:
    res = subprocess.run(
        ["tmux", "list-sessions", "-F", "#{session_name}\t#{@am_home}"],
        capture_output=True,
        text=True,
    )
    for line in res.stdout.splitlines():
        name, _, owner = line.partition("\t")
        if owner == str(home):
            subprocess.run(["tmux", "kill-session", "-t", f"={name}:"], capture_output=True)


def git(*args, cwd=None, check=True) -> str:
    res = subprocess.run(
        ["git", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ID},
    )
    if check and res.returncode != 0:
        raise AssertionError(f"git {' '.join(map(str, args))}: {res.stderr}")
    return res.stdout


def am_sessions(home: Path) -> list[str]:
    """Names of the live tmux sessions that belong to AM_HOME HOME."""
    res = subprocess.run(
        ["tmux", "list-sessions", "-F", "#{session_name}\t#{@am_home}"],
        capture_output=True,
        text=True,
    )
    return [
        line.partition("\t")[0]
        for line in res.stdout.splitlines()
        if line.partition("\t")[2] == str(home)
    ]


def has_session(name: str) -> bool:
    return (
        subprocess.run(["tmux", "has-session", "-t", f"={name}:"], capture_output=True).returncode
        == 0
    )


def assert_am_error(res) -> str:
    """A clean failure: non-zero exit, last stderr line 'am: error: ...', no traceback."""
    assert res.returncode != 0, f"expected failure, got 0:\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines, "no message on stderr"
    assert lines[-1].startswith("am: error:"), res.stderr
    return lines[-1]


def state_agents(home: Path) -> dict:
    """The agents of HOME's state file, read directly (empty if there is none yet)."""
    path = home / "state" / "state.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())["agents"]


def assert_nothing_made(home: Path, before: dict | None = None) -> None:
    """No stray workspace, state entry or tmux session beyond what BEFORE (agents) holds."""
    before = before or {}
    workspaces = home / "agents"
    made = sorted(p.name for p in workspaces.iterdir()) if workspaces.exists() else []
    assert made == sorted(before), f"stray workspaces: {made}"
    assert sorted(state_agents(home)) == sorted(before)
    # container agents run detached, with no session (am/keeper.py)
    assert sorted(am_sessions(home)) == sorted(
        ids.session_name(i)
        for i in before
        if before[i].get("status") == "running" and before[i].get("mode") != "container"
    )
    assert agent_files(home) <= set(before), f"stray log or run files: {agent_files(home)}"


def agent_files(home: Path) -> set[str]:
    """The agent ids that logs and run files under HOME's state folder belong to."""
    found = set()
    for folder in (home / "state" / "logs", home / "state" / "run"):
        if folder.is_dir():
            found |= {p.name.split(".")[0] for p in folder.iterdir()}
    # am's keeper's lock and socket, and the lock of each engine's limited-network egress
    # network (one per AM_HOME, kept with the network): not an agent's
    return {f for f in found - {"keeper"} if not f.startswith("network-am-egress-")}


def home_layout(home: Path):
    """The layout of AM_HOME HOME (as am.paths.layout() makes it)."""
    from am import paths

    return paths.Layout(home, home / "state", home / "agents", home / "data", home)


def keeper_pid(home: Path) -> int | None:
    """The pid of HOME's keeper, asked over its socket; None if none answers."""
    from am import keepersock
    from am.errors import AmError

    try:
        return keepersock.request(
            home_layout(home), {"op": "ping"}, timeout=10, start_keeper=False
        )["pid"]
    except AmError:
        return None


def stop_keeper(home: Path) -> None:
    """End HOME's keeper (it would leave by itself once idle): tests leave nothing running."""
    import signal

    from am import keepersock

    layout = home_layout(home)
    pid = keeper_pid(home) if keepersock.alive(layout) else None
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while keepersock.alive(layout) and time.monotonic() < deadline:
            time.sleep(0.05)


# --- waiting for conditions, and terminals driven through tmux --------------------------------


def wait_for(predicate, what: str, timeout: float = 30, every: float = 0.1):
    """Poll PREDICATE every EVERY seconds until it returns something true (which is
    returned), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def tmux_out(*args) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout.strip()


def clients_of(session: str) -> list[str]:
    """The terminals (ttys) of the clients showing SESSION."""
    return tmux_out("list-clients", "-t", f"={session}:", "-F", "#{client_tty}").split()


def pane_tty(session: str) -> str:
    return tmux_out("display-message", "-p", "-t", f"={session}:", "#{pane_tty}")


class Terminal:
    """A command running on a terminal of its own: the pane of a new detached tmux session.

    It runs through a shell that, when the command ends, writes its exit status and keeps its
    stderr in files, so a test can look at both after the pane is gone.
    """

    def __init__(
        self,
        folder: Path,
        argv: list[str],
        env: dict[str, str] | None = None,
        wait_file: Path | None = None,
        keep_tmux: bool = False,
    ):
        import uuid

        self.name = f"term-{uuid.uuid4().hex[:8]}"
        self.rc = folder / f"{self.name}.rc"
        self.err = folder / f"{self.name}.err"
        wait = f'while [ ! -e "{wait_file}" ]; do sleep 0.05; done; ' if wait_file else ""
        script = wait + '"$@" 2>"$0.err"; echo $? >"$0.rc.tmp"; mv "$0.rc.tmp" "$0.rc"'
        envs = [f"{k}={v}" for k, v in (env or {}).items()]
        unset = [] if keep_tmux else ["-u", "TMUX", "-u", "TMUX_PANE"]
        subprocess.run(
            [
                "tmux",
                "new-session",
                "-d",
                "-s",
                self.name,
                "-x",
                "120",
                "-y",
                "30",
                "--",
                "env",
                *unset,
                *envs,
                "sh",
                "-c",
                script,
                str(folder / self.name),
                *argv,
            ],
            check=True,
        )

    def keys(self, *keys: str, literal: bool = False) -> None:
        subprocess.run(
            ["tmux", "send-keys", "-t", f"={self.name}:", *(["-l"] if literal else []), *keys],
            check=True,
        )

    def result(self, timeout: float = 30) -> tuple[int, str]:
        """The command's exit status and stderr, once it has ended."""
        wait_for(self.rc.exists, f"the command in {self.name} to end", timeout)
        return int(self.rc.read_text()), self.err.read_text()

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", f"={self.name}:"], capture_output=True)


def many_files(tmp_path: Path) -> Path:
    """A repository of 20,000 files: a checkout of a third of a second here."""
    source = tmp_path / "many"
    source.mkdir()
    git("init", "-q", "-b", "main", cwd=source)
    for d in range(20):
        (source / f"d{d}").mkdir()
        for f in range(1000):
            (source / f"d{d}" / f"f{f}.txt").write_text(f"{d} {f}\n")
    git("add", ".", cwd=source)
    # No gc of its own: one in the background would remove loose objects a clone copies.
    git("-c", "gc.auto=0", "commit", "-qm", "many", cwd=source)
    return source


def trees_being_made(home: Path, name: str) -> list[Path]:
    """Where a spawn of NAME may be checking its tree out: its workspace, or its head
    start's folder (``am/headstart.py``) when the home had its workspaces folder already."""
    agents = home / "agents"
    early = sorted(agents.glob(".spawn-*/ws")) if agents.is_dir() else []
    return [agents / name, *early]


def spawn_cut_in_its_checkout(
    am, source: Path, name: str, *extra: str, cmd: str = "sleep 300", head_start: bool = False
) -> subprocess.Popen:
    """A spawn of NAME (with EXTRA options), once git is writing its tree (some files there,
    the index not yet) and, for a tmux agent, its session runs. HEAD_START: into a home that
    has its workspaces folder, so that the tree is its head start's (``am/headstart.py``),
    not yet in the workspace; else into a new home, where a spawn clones in its workspace."""
    agents = am.home / "agents"
    if head_start:
        agents.mkdir(mode=0o700, parents=True, exist_ok=True)
    else:
        assert not agents.exists()
    p = subprocess.Popen(
        [*am.argv, "spawn", str(source), "--name", name, "--cmd", cmd, *extra],
        env=am.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    in_session = "--container" not in extra

    def under_way(tree: Path) -> bool:
        return (tree / "d0").exists() and not (tree / ".git" / "index").exists()

    # The record too: a head start's checkout may begin before the spawn has reserved it.
    wait_for(
        lambda: (
            (not in_session or f"am-{name}" in am_sessions(am.home))
            and any(under_way(t) for t in trees_being_made(am.home, name))
            and name in state_agents(am.home)
            or p.poll() is not None
        ),
        "the spawn's checkout (and session) to be under way",
        60,
    )
    if p.poll() is not None:
        out, err = p.communicate()
        raise AssertionError(f"the spawn ended before its checkout could be cut:\n{out}{err}")
    assert (agents / name).exists() != head_start  # the tree under way is where it should be
    return p


def restore_caught_unpacking(am, tmp_path: Path, name: str) -> tuple[subprocess.Popen, str]:
    """An 'am restore --name NAME' of a 20,000-file agent's snapshot, once it unpacks into its
    folder beside the workspaces; and the id of the agent snapshotted."""
    agent = am.spawn(many_files(tmp_path), "--cmd", "sleep 300")
    am("stop", agent)
    snap = am("snapshot", agent).stdout.strip().splitlines()[-1]
    p = subprocess.Popen(
        [*am.argv, "restore", snap, "--name", name],
        env=am.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    agents = am.home / "agents"
    wait_for(
        lambda: (
            any(e.name.startswith(f".restore-{name}+") for e in agents.iterdir())
            or p.poll() is not None
        ),
        "the restore to unpack",
        60,
        every=0.01,
    )
    if p.poll() is not None:
        raise AssertionError(f"the restore ended before it could be caught: {p.communicate()}")
    return p, agent

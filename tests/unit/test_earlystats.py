"""Which stats calls ``am status`` begins before it imports the backends (pure)."""

from am import earlystats, enginestats


def running(records, present):
    """Engine -> the container names its stats call asks for, with no keeper to answer."""
    return {
        rt: sorted(set(agents.values()))
        for rt, agents in earlystats.running(records, present).items()
    }


def rec(i, **kw):
    return {
        "id": f"a{i}",
        "mode": "container",
        "runtime": "podman",
        "status": "running",
        "container": f"am-a{i}",
        **kw,
    }


def test_the_running_container_agents_of_each_engine_sorted():
    records = {
        r["id"]: r
        for r in [
            rec(3),
            rec(1),
            rec(2, runtime="docker"),
            rec(4, container="am-a1"),  # the same name once
        ]
    }
    assert running(records, set()) == {"podman": ["am-a1", "am-a3"], "docker": ["am-a2"]}
    assert earlystats.running(records, set())["podman"] == {
        "a1": "am-a1",
        "a3": "am-a3",
        "a4": "am-a1",
    }


def test_only_what_the_backend_would_ask_for():
    records = {
        r["id"]: r
        for r in [
            rec(1, mode="tmux"),
            rec(2, runtime="kubernetes"),
            rec(3, status="exited"),
            rec(4),  # ended: its exit file is there
            rec(5, runtime="/tmp/evil"),  # never a program a record names
            rec(6, container=["am-x"]),
            rec(7, container=""),
            rec(8),
        ]
    }
    records["junk"] = "not a record"
    records["a9"] = rec(9, id=["a9"])  # an id that is not one
    assert running(records, {"a4.exit.json"}) == {"podman": ["am-a8"]}


def test_the_names_are_those_the_backend_asks_for(tmp_path, monkeypatch):
    """For the same records, the early calls name what ``status.views`` and
    ``Engine.figures`` would ask each engine for: the containers of its running views."""
    import fcntl
    import os

    from am import paths, status
    from am.backends.docker import Docker
    from am.backends.podman import Podman

    monkeypatch.setenv("AM_HOME", str(tmp_path))
    layout = paths.layout()
    run = tmp_path / "state" / "run"
    run.mkdir(parents=True)
    (run / "a4.exit.json").write_text('{"exit_code": 0}')
    records = {
        r["id"]: r
        for r in [
            rec(1, mode="tmux", session="am-a1"),
            rec(2, runtime="docker"),
            rec(3, status="stopped"),
            rec(4),
            rec(5),
            rec(6, container="am-a5"),
        ]
    }
    fd = os.open(run / "keeper.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a keeper, so the views start none
        views = status.views(records, layout, everyone=False)
    finally:
        os.close(fd)
    asked = {}
    for engine in (Docker(), Podman()):
        mine = [
            v
            for v in views
            if v["status"] == "running"
            and v["mode"] == "container"
            and v["runtime"] == engine.runtime
        ]
        names = sorted({v["container"] for v in mine if v.get("container")})
        if names:
            asked[engine.runtime] = engine.stats_argv(names)
    early = {
        rt: enginestats.argv(rt, names)
        for rt, names in running(records, set(os.listdir(run))).items()
    }
    assert early == asked
    assert set(asked) == {"docker", "podman"}  # both engines asked: the comparison is not empty


def test_the_first_read_is_handed_over_once_and_a_broken_file_is_not(tmp_path, monkeypatch):
    """``am status`` shows the records its calls were begun for, read once; a state file
    that does not parse is left for the command's own read, which says what is wrong."""
    import json

    from am import earlystats, prefetch

    monkeypatch.setenv("AM_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")  # no engine, no tmux: nothing to start
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_text(json.dumps({"format": 1, "agents": {"a1": rec(1)}}))
    earlystats.start()
    assert earlystats.records_read() == {"a1": rec(1)}
    assert earlystats.records_read() is None  # once
    (state / "state.json").write_text('{"agents": {')
    earlystats.start()
    assert earlystats.records_read() is None
    prefetch.discard()


ORDER = """
import sys
seen = []
def hook(event, args):
    if event == "open" and str(args[0]).endswith("state.json"):
        seen.append("state")
    elif event == "os.posix_spawn" and args[0].endswith("tmux"):
        seen.append("tmux")
sys.addaudithook(hook)
from am.main import main
main(sys.argv[1:])
print(" ".join(seen), file=sys.stderr)
"""


def test_the_state_file_is_read_before_tmux_is_asked(tmp_path):
    """A spawn starts its session before it records the agent as running: read the other
    way round, a list could call a just-spawned agent exited. The hook sees both events, in
    the order they happened (the control: each event is there to be ordered)."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    state = tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_text(json.dumps({"format": 1, "agents": {"a1": rec(1)}}))
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "tmux").symlink_to(shutil.which("true"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AM_", "TMUX"))},
        "AM_HOME": str(tmp_path),
        "PATH": f"{bin_}:{os.environ['PATH']}",
    }
    for args in (["list"], ["status"]):
        res = subprocess.run(
            [sys.executable, "-c", ORDER, *args], env=env, capture_output=True, text=True
        )
        seen = res.stderr.strip().splitlines()[-1].split()
        assert seen[:2] == ["state", "tmux"], (args, res.stderr)

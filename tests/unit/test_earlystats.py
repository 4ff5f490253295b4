"""Which stats calls ``am status`` begins before it imports the backends (pure)."""

from am import enginestats
from am.earlystats import running


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
    assert running(records, {"a4.exit.json"}) == {"podman": ["am-a8"]}


def test_the_call_is_the_backends_own():
    from am.backends.docker import Docker
    from am.backends.podman import Podman

    names = ["am-a", "am-b"]
    assert Docker().stats_argv(names) == enginestats.argv("docker", names)
    assert Podman().stats_argv(names) == enginestats.argv("podman", names)

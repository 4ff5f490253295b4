"""What ``am list`` imports: its start-up stays cheap only while the spawn's modules stay out
(docs/performance.md). Run in a fresh interpreter, as a user runs it."""

import json
import os
import subprocess
import sys

# The spawn's modules and heavy third-party ones: none is needed to list agents.
NOT_FOR_LIST = {
    "am.plan",
    "am.git",
    "am.gitsafe",
    "am.cache",
    "am.backends.network",
    "am.snapshot",
    "am.workspace",
    "am.backends.docker",
    "am.backends.podman",
    "sh",
    "textual",
    "publicsuffixlist",
    "am.commands.spawn",
}

PROBE = """
import sys
from am.main import main
code = main(sys.argv[1:])
modules = sorted(sys.modules)  # before the json below
print(repr({"code": code, "modules": modules}), file=sys.stderr)
"""


def imported_by(args_env: dict, *args: str) -> dict:
    import ast

    res = subprocess.run(
        [sys.executable, "-c", PROBE, *(args or ("list", "--json"))],
        env=args_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return ast.literal_eval(res.stderr.strip().splitlines()[-1])


def test_am_list_imports_no_plan_git_or_engine_modules(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AM_", "TMUX"))}
    (tmp_path / "config.toml").write_text("idle_after = 300\n[limits]\npids = 50\n")
    found = imported_by({**env, "AM_HOME": str(tmp_path)})
    assert found["code"] == 0
    modules = set(found["modules"])
    assert {"am.commands.list_", "am.config", "am.validate", "am.store"} <= modules  # it ran
    assert modules & NOT_FOR_LIST == set()


def test_am_list_of_running_container_agents_imports_no_keeper_or_threads(tmp_path):
    """A list over running container agents asks whether their keeper lives (a flock test)
    without importing the keeper itself, whose sockets and threads cost more than the list;
    with no config to check, it imports nothing it does not use."""
    import fcntl

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AM_", "TMUX"))}
    state = tmp_path / "state"
    (state / "run").mkdir(parents=True)
    record = {
        "id": "c0ffee01",
        "mode": "container",
        "runtime": "docker",
        "container": "am-c0ffee01",
        "session": None,
        "status": "running",
        "created": "2026-01-01T00:00:00Z",
        "log": str(state / "logs" / "c0ffee01.log"),
    }
    (state / "state.json").write_text(json.dumps({"format": 1, "agents": {"c0ffee01": record}}))
    fd = os.open(state / "run" / "keeper.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a keeper, as far as any other process can tell
        found = imported_by({**env, "AM_HOME": str(tmp_path)})
    finally:
        os.close(fd)
    assert found["code"] == 0
    modules = set(found["modules"])
    assert {"am.commands.list_", "am.runfiles", "fcntl"} <= modules  # it asked
    # nor pathlib (the layout is text), typing, or subprocess (tmux is spawned directly)
    lean = {"am.keeper", "socket", "threading", "pathlib", "typing", "subprocess"}
    assert modules & (NOT_FOR_LIST | lean) == set()
    assert not (state / "run" / "keeper.err").exists()  # and started no keeper


def test_am_list_table_imports_none_of_the_standard_library_it_can_do_without(tmp_path):
    """The table of a list reads JSON with json's C scanner, escapes plain text without ``re``,
    and holds its locks and umask without ``contextlib``: these modules (with ``enum``,
    ``functools`` and ``collections`` behind them) were a third of its time. Control: the same
    probe sees ``json`` in a ``--json`` list, which prints through it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AM_", "TMUX"))}
    state = tmp_path / "state"
    state.mkdir()
    record = {
        "id": "c0ffee01",
        "mode": "tmux",
        "session": "am-c0ffee01",
        "status": "running",
        "created": "2026-01-01T00:00:00Z",
        "source": "/src/r",
        "log": str(state / "logs" / "c0ffee01.log"),
    }
    (state / "state.json").write_text(json.dumps({"format": 1, "agents": {"c0ffee01": record}}))
    costly = {"re", "enum", "json", "contextlib", "collections", "functools", "typing"}
    table = imported_by({**env, "AM_HOME": str(tmp_path)}, "list")
    assert table["code"] == 0
    assert set(table["modules"]) & costly == set()
    assert "am.jsonread" in table["modules"]  # it read the state file
    as_json = imported_by({**env, "AM_HOME": str(tmp_path)}, "list", "--json")
    assert as_json["code"] == 0 and "json" in as_json["modules"]

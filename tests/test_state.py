"""The state file: concurrent writers, corrupt files, writers killed mid-write."""

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import am_sessions, assert_am_error, wait_for

N_SPAWNS = 20


def test_twenty_concurrent_spawns(am, repo):
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "am", "spawn", str(repo), "--cmd", "sleep 60"],
            env=am.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(N_SPAWNS)
    ]
    printed = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        printed.append(out.splitlines()[-1])
    assert len(set(printed)) == N_SPAWNS
    agents = am.list()
    assert len(agents) == N_SPAWNS
    assert sorted(a["id"] for a in agents) == sorted(printed)
    assert {a["status"] for a in agents} == {"running"}
    assert len({a["workspace"] for a in agents}) == N_SPAWNS


def state_file(am) -> Path:
    return am.home / "state" / "state.json"


CORRUPT = {
    "garbage": b"\x00\xff\xfe not json {{{",
    "truncated": b'{"format": 1, "agents": {"ab',
    "list": b"[1, 2, 3]\n",
    "agents-list": b'{"format": 1, "agents": []}\n',
    "record-not-object": b'{"format": 1, "agents": {"x": 5}}\n',
    "string": b'"agents"\n',
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_state_file(am, repo, content):
    path = state_file(am)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    commands = [["list"], ["spawn", repo, "--cmd", "true"]]
    if content == CORRUPT["garbage"]:
        commands += [["list", "--json"], ["info", "x"], ["clean"], ["rm", "x"]]
    for args in commands:
        res = am(*args, check=False)
        line = assert_am_error(res)
        assert str(path) in line, line
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("am: error:")]
        assert len(errors) == 1, res.stderr
        assert path.read_bytes() == content, f"am {args[0]} changed the corrupt file"
    # nothing made: the state file cannot be parsed, so check sessions and workspaces
    assert am_sessions(am.home) == []
    ws = am.home / "agents"
    assert not ws.exists() or list(ws.iterdir()) == []


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from am.store import Store

    store = Store(Path(sys.argv[1]), Path(sys.argv[2]))
    print("ready", flush=True)
    while True:
        with store.transaction() as agents:
            gen = max((a["gen"] for a in agents.values()), default=0) + 1
            agents.clear()
            for k in range(int(sys.argv[3])):
                agents[f"agent-{k:05d}"] = {"id": f"agent-{k:05d}", "gen": gen, "pad": "x" * 300}
    """
)


def check_consistent(path: Path, n: int) -> int:
    """The file parses and holds one whole generation; returns that generation."""
    data = json.loads(path.read_bytes())
    agents = data["agents"]
    assert len(agents) == n
    gens = {a["gen"] for a in agents.values()}
    assert len(gens) == 1, f"a mix of generations: {gens}"
    return gens.pop()


def test_writer_killed_mid_write(tmp_path):
    state, lock, n = tmp_path / "state.json", tmp_path / "state.lock", 1000
    rng = random.Random(1234)
    last = mid_write = 0
    # At least 30 kills, and more until one lands mid-write (how often one does depends on the
    # machine's load: a condition, not a count).
    for i in range(400):
        if i >= 30 and mid_write:
            break
        p = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(state), str(lock), str(n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert p.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stdout.close()
        mid_write += bool(list(tmp_path.glob(".state.*.tmp")))  # killed with a partial file
        if not state.exists():
            continue  # killed before its first write finished: there is no file yet
        gen = check_consistent(state, n)
        assert gen >= last  # the old or a newer whole file, never older
        last = gen
    assert last > 0, "no write ever completed; the test proved nothing"
    assert mid_write > 0, "no kill landed mid-write; the test proved little"

    # No lock is left held: a fresh process takes it at once, and a normal write works.
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    from am.store import Store

    store = Store(state, lock)
    with store.transaction() as agents:
        agents.clear()
        agents["after"] = {"id": "after", "gen": last + 1}
    assert json.loads(state.read_text())["agents"] == {"after": {"id": "after", "gen": last + 1}}
    # and the partial files of the killed writers are cleared away
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.lock"]


def test_lock_is_exclusive(tmp_path):
    """A writer waits while another process holds the lock."""
    from am.store import Store

    state, lock = tmp_path / "state.json", tmp_path / "state.lock"
    store = Store(state, lock)
    with store.transaction() as agents:
        agents["a"] = {"id": "a"}
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from am.store import Store
        print("trying", flush=True)
        with Store(Path(sys.argv[1]), Path(sys.argv[2])).transaction() as agents:
            agents["b"] = {"id": "b"}
        print("done", flush=True)
        """
    )
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    p = subprocess.Popen(
        [sys.executable, "-c", script, str(state), str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline() == "trying\n"
        # The kernel lists a process blocked on a lock as a waiter ('->') in /proc/locks.
        wait_for(
            lambda: any(
                line.split()[1] == "->" and line.split()[5] == str(p.pid)
                for line in Path("/proc/locks").read_text().splitlines()
            ),
            "the second writer to block on the lock",
        )
        assert p.poll() is None
        assert sorted(json.loads(state.read_text())["agents"]) == ["a"]
    finally:
        os.close(fd)
    assert p.communicate(timeout=30)[0] == "done\n"
    assert sorted(json.loads(state.read_text())["agents"]) == ["a", "b"]


def test_failed_transaction_writes_nothing(tmp_path):
    from am.errors import AmError
    from am.store import Store

    store = Store(tmp_path / "state.json", tmp_path / "state.lock")
    with store.transaction() as agents:
        agents["a"] = {"id": "a"}
    before = store.path.read_bytes()
    with pytest.raises(AmError), store.transaction() as agents:
        agents["b"] = {"id": "b"}
        raise AmError("boom")
    assert store.path.read_bytes() == before
    assert_am_error_for_unknown(store)


def assert_am_error_for_unknown(store):
    from am.errors import AmError

    with pytest.raises(AmError, match="no such agent"):
        store.get("zzz")


def test_every_view_handles_every_record_the_json_handles(am, repo):
    """Records with nulls where a spawn would have values (an adopted workspace has no source;
    restored or older records lack more): list, status and info, as tables and JSON."""
    real = am.spawn(repo, "--cmd", "sleep 60")
    state = am.home / "state" / "state.json"
    data = json.loads(state.read_text())
    data["agents"]["adopted"] = {
        **data["agents"][real],
        "id": "adopted",
        "name": "adopted",
        "status": "stopped",
        "source": None,
        "agent": None,
        "command": [],
        "runtime": None,
        "limits": None,
        "network": None,
        "adopted": True,
        "workspace": str(am.home / "agents" / "adopted"),
        "log": str(am.home / "state" / "logs" / "adopted.log"),
        "session": "am-adopted",
    }
    # 'sparse' lacks its mode: invalid, which am info says after showing it (exit 1)
    data["agents"]["sparse"] = {
        "id": "sparse",
        "status": "exited",
        "mode": None,
        "source": None,
        "created": None,
        "branch": None,
        "workspace": str(am.home / "agents" / "sparse"),
        "session": None,
        "log": None,
        "limits": None,
    }
    state.write_text(json.dumps(data))
    for args in (
        ["list"],
        ["list", "--json"],
        ["status"],
        ["status", "--json"],
        ["info", "adopted"],
        ["info", "sparse"],
        ["info", "sparse", "--json"],
    ):
        res = am(*args, check="sparse" not in args)
        assert "Traceback" not in res.stderr, (args, res.stderr)
        if "sparse" in args:
            assert "sparse" in res.stdout and "its mode None" in assert_am_error(res)
    table = am("list").stdout
    assert "adopted" in table and "sparse" in table
    assert {a["id"] for a in am.list()} == {real, "adopted", "sparse"}

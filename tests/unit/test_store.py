"""The state file's text (am/store.py), pure."""

import json

import pytest

from am.store import Store, encode


def test_the_state_file_is_json_with_one_record_a_line():
    data = {
        "format": 1,
        "agents": {
            "b2": {"id": "b2", "limits": {"pids": 100}, "prompt": 'line\n{"x": 1}'},
            "a1": {"id": "a1", "status": "running"},
        },
    }
    text = encode(data)
    assert json.loads(text) == data
    lines = text.splitlines()
    assert lines[1].startswith('"a1": {') and lines[2].startswith('"b2": {')  # sorted
    assert len(lines) == 4
    assert json.loads(encode({"format": 1, "agents": {}})) == {"format": 1, "agents": {}}


def test_a_key_json_would_convert_is_written_as_json_writes_it():
    data = {"format": 1, "agents": {1: {"id": "x"}}}
    assert json.loads(encode(data)) == json.loads(json.dumps(data))


def test_a_transaction_writes_only_a_change(tmp_path):
    store = Store(tmp_path / "state.json", tmp_path / "state.lock")
    with store.transaction() as agents:
        agents["a1"] = {"id": "a1", "status": "running"}
    written = (tmp_path / "state.json").stat()
    with store.transaction() as agents:
        agents["a1"]["status"] = "running"  # the same value: no change
    assert (tmp_path / "state.json").stat().st_ino == written.st_ino  # not replaced
    with store.transaction() as agents:
        agents["a1"]["status"] = "exited"
    assert (tmp_path / "state.json").stat().st_ino != written.st_ino  # control: replaced
    assert store.agents()["a1"]["status"] == "exited"


def test_the_old_indented_file_is_read_and_rewritten_once(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"format": 1, "agents": {"a1": {"id": "a1"}}}, indent=1))
    store = Store(path, tmp_path / "state.lock")
    assert store.agents() == {"a1": {"id": "a1"}}
    with store.transaction():
        pass
    assert path.read_text() == encode({"format": 1, "agents": {"a1": {"id": "a1"}}})


def test_a_fifo_planted_as_the_state_file_or_keeper_lock_hangs_nothing(tmp_path):
    """Every command reads the state file, and am list tests the keeper's lock: a FIFO in
    either place made them wait forever. Control: a plain open of such a FIFO does not
    return within two seconds."""
    import os
    import subprocess
    import sys

    from am import runfiles
    from am.errors import AmError
    from am.store import Store

    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", f"open({str(fifo)!r}, 'rb').read()"], timeout=2)
    with pytest.raises(AmError, match="not a regular file"):
        Store(fifo, tmp_path / "state.lock").agents()
    os.mkfifo(tmp_path / "keeper.lock")
    assert runfiles.keeper_alive(str(tmp_path)) is False


@pytest.mark.parametrize("bad", [["x"], 5, None, "other"])
def test_a_record_whose_id_is_not_its_key_is_corruption_said_once(tmp_path, bad):
    """Every command keys its work by the record's id: a list there made ``am status`` end in
    a traceback (unhashable), another agent's id would be read as that agent. The state file is
    then corrupt, one ``am: error:`` line that names the record; the control: the same file
    with that record's id set right is read."""
    import json
    import subprocess
    import sys

    state = tmp_path / "state"
    state.mkdir()
    good = {"id": "a1", "mode": "tmux", "status": "stopped", "created": "2026-01-01T00:00:00Z"}
    agents = {"a1": good, "junk": {**good, "id": bad}}
    (state / "state.json").write_text(json.dumps({"agents": agents}))
    env = {"AM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    entry = "import am.main as m; m.entry()"
    for command in (["status", "--json"], ["list"], ["info", "a1"]):
        res = subprocess.run(
            [sys.executable, "-P", "-c", entry, *command], env=env, capture_output=True, text=True
        )
        assert res.returncode == 1, res
        assert res.stderr.startswith("am: error: state file") and "'junk'" in res.stderr, res
        assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr
    agents["junk"]["id"] = "junk"
    (state / "state.json").write_text(json.dumps({"agents": agents}))
    res = subprocess.run(
        [sys.executable, "-P", "-c", entry, "list", "--json"], env=env, capture_output=True
    )
    assert res.returncode == 0 and len(json.loads(res.stdout)) == 2

"""How a spawn or start settles its agent's record against an 'am stop' that came meanwhile
(am/commands/spawn.py ``settle``, am/record.py ``stop_count``), on a real state file."""

import pytest

from am.commands.spawn import settle, settle_stopped
from am.errors import AmError
from am.record import stop_count
from am.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.json", tmp_path / "state.lock")
    with s.transaction() as agents:
        agents["a"] = {"id": "a", "status": "starting", "spawn_pid": 123, "stops": 2}
    return s


def test_the_stop_count_of_a_record_is_a_whole_number_or_none():
    assert stop_count({}) == 0
    assert stop_count({"stops": 3}) == 3
    for bad in ("3", True, 1.0, None, [1], -1, 10**4000):  # a hand-edited file: no stop
        assert stop_count({"stops": bad}) == 0


def test_no_stop_meanwhile_the_agent_runs(store):
    assert settle(store, "a", 2, {"base_commit": "c0", "stopped": None}) is True
    record = store.agents()["a"]
    assert record["status"] == "running" and record["spawn_pid"] is None
    assert record["base_commit"] == "c0" and record["started"]


def test_a_stop_meanwhile_keeps_the_agent_stopped_as_the_stop_said(store):
    with store.transaction() as agents:  # what 'am stop' writes (am/lifecycle.py)
        agents["a"].update(stopped="2026-11-29T10:00:00Z", stops=3)
    assert settle(store, "a", 2, {"base_commit": "c0", "stopped": None}) is False
    # Untouched until what started is ended: its spawn still holds it ('am start' refuses).
    assert store.agents()["a"] == {
        "id": "a",
        "status": "starting",
        "spawn_pid": 123,
        "stops": 3,
        "stopped": "2026-11-29T10:00:00Z",
    }
    settle_stopped(store, "a", {"base_commit": "c0", "stopped": None})
    record = store.agents()["a"]
    assert record["status"] == "stopped" and record["stopped"] == "2026-11-29T10:00:00Z"
    assert record["base_commit"] == "c0" and record["spawn_pid"] is None
    assert "started" not in record


def test_a_record_gone_meanwhile_is_an_error(store):
    store.remove("a")
    with pytest.raises(AmError, match="record of agent a was removed while it started"):
        settle(store, "a", 2, {})

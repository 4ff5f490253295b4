"""am/record.py: the one constructor of new records, and the mode and status words."""

import json

import pytest

from am import paths, records
from am.record import Mode, Record, Status, word


def test_mode_and_status_are_the_words_json_and_comparisons_use():
    assert Status.RUNNING == "running" and "running" == Status.RUNNING
    words = json.dumps({"s": Status.STOPPED, "m": Mode.CONTAINER})
    assert words == '{"s": "stopped", "m": "container"}'
    assert Status.ALL == ("running", "stopped", "exited", "error", "starting")
    assert f"{Status.EXITED}" == "exited" and Mode.ALL == ("tmux", "container")


def test_a_record_with_a_word_am_does_not_know_is_refused():
    assert word("stopped", Status.ALL) == "stopped"
    for bad in ("Running", "", None, ["running"]):
        with pytest.raises(ValueError):
            word(bad, Status.ALL)
    with pytest.raises(ValueError):
        Record("a1", "/w", "/l", "/h", mode="kube").as_dict()


def test_new_records_pass_the_record_checks(tmp_path):
    layout = paths.Layout(
        tmp_path, tmp_path / "state", tmp_path / "agents", tmp_path / "data", tmp_path
    )
    for mode, runtime in ((Mode.TMUX, None), (Mode.CONTAINER, "podman")):
        r = Record(
            "a1",
            str(layout.workspace("a1")),
            str(layout.log_file("a1")),
            str(layout.root),
            mode=mode,
            runtime=runtime,
            extra={"isolation": "runc"},
        )
        d = r.as_dict()
        assert records.problems(d, layout) == []
        assert d["session"] == "am-a1" and d["name"] == "a1" and d["status"] == "starting"
        assert d["container"] == ("am-a1" if mode == Mode.CONTAINER else None)
        assert type(d["mode"]) is str and type(d["status"]) is str  # plain JSON words
        assert json.loads(json.dumps(d)) == d

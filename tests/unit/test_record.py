"""am/record.py: the one constructor of new records, and the mode and status words."""

import json

from am import paths, records
from am.record import Mode, Record, Status


def test_enums_are_the_words_json_and_old_comparisons_use():
    assert Status.RUNNING == "running" and "running" == Status.RUNNING
    words = json.dumps({"s": Status.STOPPED, "m": Mode.CONTAINER})
    assert words == '{"s": "stopped", "m": "container"}'
    assert [s.value for s in Status] == ["running", "stopped", "exited", "error", "starting"]
    assert f"{Status.EXITED}" == "exited"


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

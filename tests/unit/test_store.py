"""The state file's text (am/store.py), pure."""

import json

from am.store import encode


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

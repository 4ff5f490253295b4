"""The spawn plan is frozen, and is built from a Request, not from a command line."""

from pathlib import Path

import pytest

from am import plan as planning
from am.cli import build_parser
from am.errors import AmError
from am.paths import Layout
from am.request import Request
from am.valueclass import FrozenInstanceError, replace


def layout(tmp: Path) -> Layout:
    return Layout(tmp, tmp / "state", tmp / "agents", tmp / "data", tmp)


def test_a_plan_cannot_be_changed_only_replaced(tmp_path):
    p = planning.build(Request(cmd="true", name="x"), layout(tmp_path), "/src", {})
    for name, value in (("mirror", tmp_path), ("runtime", "docker"), ("extra_mounts", [])):
        with pytest.raises(FrozenInstanceError):
            setattr(p, name, value)
    q = replace(p, mirror=tmp_path)
    assert (q.mirror, p.mirror) == (tmp_path, None)


def test_a_request_needs_no_argparse(tmp_path):
    r = Request(cmd="sleep 1", name="r1", env=("A=1",), container=True, memory="1g")
    p = planning.build(r, layout(tmp_path), "/src", {}, host_memory=4 << 30, host_cpus=2)
    assert (p.id, p.mode, p.command, p.env_names) == (
        "r1",
        "container",
        ["sh", "-c", "sleep 1"],
        ["A"],
    )
    assert p.limits["memory"] == "1g" and p.secrets == {"A": "1"}
    with pytest.raises(FrozenInstanceError):
        r.name = "other"  # type: ignore[misc]
    # a tmux request refuses container flags by name, as the command line does
    with pytest.raises(AmError, match="--memory applies to container agents"):
        planning.build(Request(cmd="true", memory="1g"), layout(tmp_path), "/src", {})


def test_a_request_from_the_command_line_is_the_same_plan(tmp_path):
    argv = ["spawn", "/src", "--cmd", "true", "--name", "c", "--container", "--env", "A=1"]
    argv += ["--network", "full", "--publish", "8080:80", "--pids", "50"]
    r = Request.from_args(build_parser().parse_args(argv))
    assert r == Request(
        name="c",
        cmd="true",
        container=True,
        env=("A=1",),
        network="full",
        publish=("8080:80",),
        pids="50",
    )
    p = planning.build(r, layout(tmp_path), "/src", {})
    assert (p.network, p.publish, p.limits["pids"]) == ("full", ["127.0.0.1:8080:80"], 50)
    # given fields win: the prompt's text, once read from --prompt-file
    assert Request.from_args(build_parser().parse_args(argv), prompt="do it").prompt == "do it"


def test_first_start_replaces_what_it_decides(tmp_path):
    lay = layout(tmp_path)
    record = {
        "id": "f1",
        "workspace": str(lay.workspace("f1")),
        "branch": "work",
        "limits": {"disk": "1g"},
    }
    p = planning.first_start(record, Request(cmd="true", continue_=True), lay, {})
    assert (p.mode, p.branch, p.limits["disk"]) == ("container", "work", "1g")
    assert p.env == {"AM_CONTINUE": "1"}


def test_limits_say_no_disk_cap_as_none():
    from am.errors import AmError
    from am.plan import check_limits

    for none in (None, "", "none", " None "):
        assert check_limits("2g", "1", "100", disk=none)["disk"] is None, none
    assert check_limits("2g", "1", "100", disk="1G")["disk"] == "1g"
    with pytest.raises(AmError, match="invalid limits.disk 'lots'"):
        check_limits("2g", "1", "100", labels={"disk": "limits.disk"}, disk="lots")

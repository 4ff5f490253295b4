"""What am says when an engine fails or cannot keep a promise (pure composition)."""

import argparse

import pytest

from am.backends import docker, podman
from am.backends.engine import error_lines, last_lines, port_taken_hint

RUN_FAILED = """docker: Error response from daemon: failed to create shim task: OCI runtime create \
failed: runc create failed: unable to start container process: exec: "/nope": stat /nope: no such \
file or directory: unknown.
ERRO[0000] error waiting for container: context canceled
See 'docker run --help'.
"""
SOCKET_DENIED = """docker: permission denied while trying to connect to the Docker daemon socket \
at unix:///var/run/docker.sock: Post "http://%2Fvar%2Frun%2Fdocker.sock/v1.41/containers/create": \
dial unix /var/run/docker.sock: connect: permission denied.
See 'docker run --help'.
"""


def test_error_lines_keep_what_the_engine_said_not_its_usage_pointer():
    text = error_lines(RUN_FAILED)
    assert "stat /nope: no such file or directory" in text
    assert "context canceled" in text  # every error line, not only the last
    assert "--help" not in text
    assert error_lines("\n\r\n") == "no output"
    assert last_lines("a\r\n\nb\r\n", 5) == ["a", "b"]


def test_known_causes():
    d = docker.Docker()
    denied = d.known_cause(SOCKET_DENIED)
    assert denied.message == "permission denied on the Docker socket"
    assert "docker group" in denied.hint
    # a missing program in a run is not a missing daemon socket
    assert d.known_cause(RUN_FAILED) is None
    assert "Docker failed:" in d.explain(RUN_FAILED).message
    down = d.known_cause(
        "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?"
    )
    assert down.message == "Docker daemon is not running"


def test_daemon_hints_name_the_variable_in_use(monkeypatch):
    for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "CONTAINER_HOST", "CONTAINER_CONNECTION"):
        monkeypatch.delenv(var, raising=False)
    assert "systemctl start docker" in docker.Docker().daemon_hint()
    monkeypatch.setenv("DOCKER_HOST", "unix:///dead.sock")
    hint = docker.Docker().daemon_hint()
    assert "DOCKER_HOST=unix:///dead.sock" in hint and "systemctl" not in hint
    monkeypatch.setenv("CONTAINER_HOST", "unix:///gone.sock")
    assert "CONTAINER_HOST=unix:///gone.sock" in podman.Podman().daemon_hint()


@pytest.mark.parametrize(
    "info, verdict",
    [
        ("false\tv1\t[cpuset cpu cpuacct blkio memory devices freezer pids]", None),
        (
            "true\tv1\t[]",
            "rootless Podman ignores memory, CPU and process limits on this cgroup v1 host",
        ),
        (
            "true\tv2\t[memory pids]",
            "rootless Podman ignores memory, CPU and process limits here "
            "(cgroup controllers cpu not delegated to this user)",
        ),
        ("true\tv2\t[cpuset cpu io memory pids]", None),
    ],
)
def test_podman_limits_verdict(info, verdict):
    assert podman.limits_verdict(info) == verdict


def test_docker_limits_verdict():
    assert docker.limits_verdict("true true true\n") is None
    assert "ignores memory, process limits" in docker.limits_verdict("false true false")
    assert docker.limits_verdict("") is not None  # an answer am cannot read is no promise


def all_parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_parsers(sub)


def test_every_option_and_argument_has_help():
    from am.cli import build_parser

    missing = [
        f"{p.prog} {a.dest}"
        for p in all_parsers(build_parser())
        for a in p._actions
        if not a.help and not isinstance(a, argparse._SubParsersAction)
    ]
    assert missing == []


def test_spawn_help_shows_the_defaults():
    from am.cli import build_parser

    sub = next(
        a for a in build_parser("spawn")._actions if isinstance(a, argparse._SubParsersAction)
    )
    text = " ".join(sub.choices["spawn"].format_help().split())
    for default in (
        "(default: 2g)",
        "(default: 2)",
        "(default: 100)",
        "none (default;",
        "claude (default)",
        "auto: podman if it enforces the limits here, else docker",
        "am-agent:latest",
    ):
        assert default in text, default


@pytest.mark.parametrize("flag, value", [("--memory", "-1g"), ("--cpus", "-1"), ("--pids", "-5")])
def test_a_value_starting_with_a_dash_reaches_ams_own_check(flag, value):
    from am.cli import build_parser

    args = build_parser("spawn").parse_args(["spawn", "repo", "--container", flag, value])
    assert getattr(args, flag[2:]) == value


def test_a_failure_names_what_failed_and_why():
    d = docker.Docker()
    e = d.failure("the network proxy did not start", RUN_FAILED)
    assert e.message.startswith("the network proxy did not start: docker: Error response")
    assert "context canceled" in e.message and "--help" not in e.message
    e = d.failure("the container am-x did not start", SOCKET_DENIED)
    assert e.message == "the container am-x did not start: permission denied on the Docker socket"
    assert "docker group" in e.hint
    assert (
        d.failure("the container am-x did not start", "").message
        == "the container am-x did not start"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["list", "--json"],
        ["list", "--status", "running", "--json"],
        ["list", "--status=exited"],
        ["status"],
        ["status", "--json"],
        ["status", "abc123", "--watch"],
        ["status", "--json", "abc123", "--watch"],
        ["status", ""],
    ],
)
def test_the_quick_parsers_read_what_argparse_reads(argv):
    """``am list`` and ``am status`` skip argparse: they must still mean what it says."""
    from am.cli import build_parser
    from am.main import quick_list, quick_status

    quick = quick_list(argv) or quick_status(argv)
    assert quick is not None
    assert vars(quick) == vars(build_parser(argv[0]).parse_args(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--help"],
        ["status", "--js"],  # argparse's abbreviation: argparse decides
        ["status", "--", "-x"],
        ["status", "a", "b"],
        ["status", "--json=1"],
        ["list", "--status", "bogus"],
        ["list", "extra"],
    ],
)
def test_the_quick_parsers_leave_anything_else_to_argparse(argv):
    from am.main import quick_list, quick_status

    assert quick_list(argv) is None and quick_status(argv) is None


@pytest.mark.parametrize(
    "text, port",
    [
        # docker, another program on the port
        (
            "Error starting userland proxy: listen tcp4 127.0.0.1:18932: bind: address "
            "already in use",
            "18932",
        ),
        # docker, another container on it
        ("Bind for 127.0.0.1:18933 failed: port is already allocated", "18933"),
        ("Bind for [::1]:8080 failed: port is already allocated", "8080"),
        # podman
        (
            "Error: cannot listen on the TCP port: listen tcp6 [::1]:3000: bind: address "
            "already in use",
            "3000",
        ),
        ("Error: no such image", None),
        ("bind: address already in use", None),  # no port to name: no made-up hint
    ],
)
def test_a_published_port_in_use_gets_its_fix(text, port):
    hint = port_taken_hint(text)
    assert (hint is None) == (port is None)
    if port:
        assert f"host port {port} is in use" in hint and f"sport = :{port}" in hint

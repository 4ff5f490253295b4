"""The launch spec that spawn writes and the supervisor and keeper read: one type, checked."""

import json

import pytest

from am.launchspec import ContainerSpec, InvalidSpec, KubeSpec, LaunchSpec

SPEC = LaunchSpec(
    argv=["docker", "create", "--name", "am-x", "img"],
    cwd="/run/x",
    env={"PATH": "/usr/bin"},
    log="/logs/x.log",
    container=ContainerSpec(
        engine="docker",
        name="am-x",
        isolation="runc",
        pids_limit=100,
        api={"url": "unix:///var/run/docker.sock", "tls": None},
        log_max=1 << 20,
        proxy="am-proxy-x",
    ),
    exit_file="/run/x.exit",
    umask=0o022,
    started_at=1700000000.5,
)


def test_a_spec_round_trips():
    assert LaunchSpec.from_json(SPEC.to_json()) == SPEC
    kube = LaunchSpec(
        argv=["kubectl", "attach"],
        cwd="/c",
        env={},
        log="/l",
        kubernetes=KubeSpec(namespace="ns", pod="am-k", agent="k", home="/h", storage="pvc"),
        env_fifo="/run/k.env",
    )
    assert LaunchSpec.from_json(kube.to_json()) == kube


def test_a_spec_written_by_an_earlier_am_reads():
    # what spawn wrote before the type: no keys for what is unset, an int where a float goes
    old = {"argv": ["claude"], "cwd": "/w", "env": {}, "container": None, "log": "/l"}
    old.update(clean_env=True, log_max=5, exit_file="/e", umask=18, started_at=1700000000)
    spec = LaunchSpec.from_json(json.dumps(old))
    assert (spec.started_at, spec.container, spec.kubernetes) == (1700000000.0, None, None)


@pytest.mark.parametrize(
    "change, said",
    [
        ({"argv": "rm -rf /"}, "argv is not a list"),
        ({"argv": ["sh", 1]}, r"argv\[1\] is not a str"),
        ({"argv": []}, "argv is empty"),
        ({"env": {"A": 1}}, "env.A is not a str"),
        ({"env": ["A"]}, "env is not an object"),
        ({"umask": "0022"}, "umask is not a int"),
        ({"umask": 4096}, "umask is out of range"),
        ({"clean_env": "yes"}, "clean_env is not a bool"),
        ({"log_max": True}, "log_max is not a int"),
        ({"container": {"engine": "docker"}}, "container.name is missing"),
        ({"container": {"engine": "docker", "name": "x", "pids_limit": "9"}}, "pids_limit"),
        ({"container": ["docker"]}, "container is not an object"),
        ({"kubernetes": {"namespace": "n", "pod": 1}}, "kubernetes.pod is not a str"),
        ({"cwd": None}, "cwd is not a str"),
        ({"log_max": -1}, "log_max is negative"),
        ({"container": {"engine": "docker", "name": "--all"}}, "name is not a container"),
        ({"container": {"engine": "sh", "name": "am-x"}}, "engine is not one of"),
        ({"container": {"engine": "docker", "name": "x", "proxy": "-x"}}, "proxy is not a"),
        ({"container": {"engine": "docker", "name": "x", "log_max": -1}}, "is negative"),
        ({"container": {"engine": "docker", "name": "x", "api": {}}}, "api is not an engine"),
        (
            {
                "container": {
                    "engine": "docker",
                    "name": "x",
                    "api": {"url": "u", "tls": {"ca": []}},
                }
            },
            "api.tls is not TLS settings",
        ),
    ],
)
def test_a_tampered_spec_is_one_clear_error(change, said):
    data = {**json.loads(SPEC.to_json()), **change}
    with pytest.raises(InvalidSpec, match=said):
        LaunchSpec.from_json(json.dumps(data))


def test_what_is_not_a_spec_at_all(tmp_path):
    for text in ("", "[1]", "null", "{", "[" * 100000):
        with pytest.raises(InvalidSpec):
            LaunchSpec.from_json(text)
    missing = {k: v for k, v in json.loads(SPEC.to_json()).items() if k != "argv"}
    with pytest.raises(InvalidSpec, match="argv is missing"):
        LaunchSpec.from_json(json.dumps(missing))
    path = tmp_path / "x.spec.json"
    path.write_text('{"argv": 5}')
    with pytest.raises(InvalidSpec, match=f"the launch spec {path} is invalid: argv"):
        LaunchSpec.read(path)
    with pytest.raises(InvalidSpec, match="cannot read"):
        LaunchSpec.read(tmp_path / "none.json")


def test_the_supervisor_refuses_a_tampered_spec_without_a_traceback(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "x.spec.json"
    path.write_text(json.dumps({**json.loads(SPEC.to_json()), "env": {"A": ["x"]}}))
    res = subprocess.run(
        [sys.executable, "-m", "am.supervise", str(path)], capture_output=True, text=True
    )
    assert res.returncode == 2
    assert res.stderr.startswith("am: error: the launch spec") and "env.A" in res.stderr
    assert "Traceback" not in res.stderr
    # positive control: the same file with a valid spec runs its command
    exit_file = tmp_path / "x.exit"
    good = LaunchSpec(argv=["true"], cwd=str(tmp_path), env={}, log="", exit_file=str(exit_file))
    path.write_text(good.to_json())
    res = subprocess.run([sys.executable, "-m", "am.supervise", str(path)], capture_output=True)
    assert res.returncode == 0 and json.loads(exit_file.read_text())["exit_code"] == 0


def test_the_keeper_answers_a_tampered_spec_with_its_error(tmp_path):
    from am import keeper
    from am.paths import Layout

    lay = Layout(tmp_path, tmp_path / "state", tmp_path / "agents", tmp_path / "data", tmp_path)
    lay.run.mkdir(parents=True)
    k = keeper.Keeper(lay)
    assert k.handle({"op": "watch", "id": "x"}) == {"ok": False, "error": "no spec for agent x"}
    (lay.run / "x.spec.json").write_text(
        json.dumps({**json.loads(SPEC.to_json()), "container": {"engine": 1, "name": "am-x"}})
    )
    with pytest.raises(InvalidSpec, match="container.engine is not a str"):
        k.handle({"op": "watch", "id": "x"})
    assert k.watches == {}  # nothing watched, nothing run

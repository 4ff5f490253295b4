"""The kubectl command lines the real ``am`` sends for a Kubernetes agent, in order, recorded
by a stand-in kubectl (tests/fake_kubectl.py) first on PATH. Composition only: the stand-in is
no cluster, and nothing here says how a real API server answers (docs/scale.md; the cluster
tier, tests/cluster/, does that where a cluster exists)."""

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest
from helpers import assert_am_error, assert_nothing_made, state_agents

from am import kube

FAKE = Path(__file__).with_name("fake_kubectl.py")


@pytest.fixture
def kam(am, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "kubectl"
    tool.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE} "$@"\n')
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "kube.json"
    am.env.update(PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_KUBE_STATE=str(state))
    am.state = state
    return am


def state(kam) -> dict:
    return json.loads(kam.state.read_text()) if kam.state.exists() else {"calls": []}


def calls(kam) -> list[list[str]]:
    return [c["argv"] for c in state(kam)["calls"]]


def wait_for_call(kam, verb: str, timeout: float = 90) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for argv in calls(kam):
            if verb in argv:
                return argv
        time.sleep(0.1)
    logs = "".join(p.read_text(errors="replace") for p in (kam.home / "state" / "logs").glob("*"))
    raise AssertionError(f"no kubectl {verb}: {calls(kam)}\nlogs: {logs}")


HEAD = ["--context", "ctx-test", "--namespace", "team-a"]


def test_spawn_stop_rm_send_these_command_lines(kam, repo):
    agent = kam.spawn(
        repo, "--container", "--runtime", "kubernetes", "--name", "k1", "--cmd", "echo hi"
    )
    sent = calls(kam)
    assert sent[0] == ["config", "current-context"]
    assert sent[1][:2] == ["config", "view"] and "ctx-test" in sent[1]
    # every call on the cluster names the resolved context and namespace
    assert all(c[:4] == HEAD for c in sent[2:])
    create = next(c for c in state(kam)["calls"] if "create" in c["argv"])
    assert create["argv"][4:] == ["create", "--filename", "-", "--output", "name"]
    kinds = [o["kind"] for o in state(kam)["objects"]]
    assert kinds == ["NetworkPolicy", "PersistentVolumeClaim", "ConfigMap", "Pod"]
    home = kube.home_label(str(kam.home))
    assert {o["metadata"]["labels"]["am.home"] for o in state(kam)["objects"]} == {home}
    deliver = next(c for c in state(kam)["calls"] if kube.SEEDER in c["argv"])
    assert deliver["argv"][4:] == [
        "exec",
        "--stdin",
        "am-k1",
        "--container",
        kube.SEEDER,
        "--",
        *kube.DELIVER,
    ]
    assert deliver["stdin"] > 0 and state(kam)["delivered"] == deliver["stdin"]
    assert not list((kam.home / "state" / "run").glob("*.bundle"))  # delivered, then gone
    info = kam.info(agent)
    assert info["runtime"] == "kubernetes" and info["container"] == "am-k1"
    assert info["kubernetes"]["context"] == "ctx-test"
    assert info["kubernetes"]["namespace"] == "team-a"
    assert info["kubernetes"]["storage"] == "pvc" and info["kubernetes"]["size"] == "10Gi"
    assert not (kam.home / "agents" / "k1").exists()  # the workspace is in the cluster
    # the session's client
    attach = wait_for_call(kam, "attach")
    assert attach == [
        *HEAD,
        "attach",
        "--quiet",
        "--stdin",
        "--tty",
        "am-k1",
        "--container",
        "agent",
    ]
    assert kam.info(agent)["status"] == "running"

    kam("stop", agent)
    delete = [c for c in calls(kam) if "delete" in c][0]
    assert delete == [
        *HEAD,
        "delete",
        kube.RUN_KINDS,
        "--selector",
        f"am.agent=k1,am.home={home}",
        "--ignore-not-found",
        "--wait=true",
        "--timeout=120s",
    ]
    assert [o["kind"] for o in state(kam)["objects"]] == ["PersistentVolumeClaim"]
    assert kam.info(agent)["status"] == "stopped"

    n = len(calls(kam))
    kam("rm", agent)
    later = calls(kam)[n:]
    # the unsaved-work check: a pod over the claim, wsops on the exec's stdin, then it goes
    op_create = next(c for c in state(kam)["calls"][n:] if "create" in c["argv"])
    exec_call = next(c for c in state(kam)["calls"][n:] if "exec" in c["argv"])
    from am import workspace

    assert exec_call["stdin"] == len(workspace.source().encode())
    assert exec_call["argv"][4:9] == ["exec", "--stdin", exec_call["argv"][6], "--container", "op"]
    assert "unsaved" in exec_call["argv"] and workspace.source() not in exec_call["argv"]
    assert op_create["stdin"] > 0
    op_delete = next(c for c in later if "delete" in c and "pods,networkpolicies" in c)
    assert (
        f"am.agent=k1,am.home={home},am.role in (op)"
        in op_delete[op_delete.index("--selector") + 1]
    )
    final = [c for c in later if "delete" in c][-1]
    assert final[5] == f"{kube.RUN_KINDS},persistentvolumeclaims"
    assert state(kam)["objects"] == []
    assert "k1" not in state_agents(kam.home)


def test_the_exit_code_and_an_oom_kill_come_from_the_pods_status(kam, repo):
    agent = kam.spawn(repo, "--container", "--runtime", "kubernetes", "--cmd", "x")
    wait_for_call(kam, "attach")
    st = state(kam)
    st["ended"] = {"exitCode": 137, "reason": "OOMKilled"}
    kam.state.write_text(json.dumps(st))
    info = kam.wait_status(agent, "exited")
    assert info["exit_code"] == 137 and info["oom_killed"] is True
    # the supervisor removed the pod and what came with it; the claim stays
    deadline = time.monotonic() + 30
    while [o["kind"] for o in state(kam)["objects"]] != ["PersistentVolumeClaim"]:
        assert time.monotonic() < deadline, state(kam)["objects"]
        time.sleep(0.1)


def test_a_name_taken_in_the_namespace_leaves_nothing_made(kam, repo):
    kam.state.write_text(
        json.dumps(
            {"calls": [], "objects": [], "delivered": 0, "ended": None, "refuse_create": True}
        )
    )
    res = kam(
        "spawn",
        repo,
        "--container",
        "--runtime",
        "kubernetes",
        "--name",
        "k2",
        "--cmd",
        "x",
        check=False,
    )
    line = assert_am_error(res)
    assert "already exists" in line and "another AM_HOME" in line
    assert_nothing_made(kam.home)
    assert not list((kam.home / "state" / "run").glob("*.bundle"))
    # the undo deleted by this AM_HOME's selector: what it made, never another's
    deletes = [c for c in calls(kam) if "delete" in c]
    assert deletes and all(
        f"am.home={kube.home_label(str(kam.home))}" in c[c.index("--selector") + 1] for c in deletes
    )


@pytest.mark.parametrize(
    "extra, text",
    [
        (["--publish", "8080:80", "--network", "full"], "--publish applies to docker and podman"),
        (["--name", "a.b"], "cannot name Kubernetes objects"),
        (["--mount-agent-config", "--agent", "claude"], "--mount-agent-config mounts files"),
    ],
)
def test_refusals_come_before_any_call(kam, repo, extra, text):
    res = kam(
        "spawn", repo, "--container", "--runtime", "kubernetes", "--cmd", "x", *extra, check=False
    )
    assert text in assert_am_error(res)
    assert calls(kam) == []
    assert_nothing_made(kam.home)


def test_network_log_of_a_running_agent_is_its_proxy_pods_output(kam, repo):
    """The host's network log gets the proxy's refusals only when the agent ends: while it
    runs, 'am logs --network' asks its backend, which reads the proxy pod's output."""
    agent = kam.spawn(
        repo,
        "--container",
        "--runtime",
        "kubernetes",
        "--network",
        "limited",
        "--name",
        "k2",
        "--cmd",
        "sleep 600",
    )
    wait_for_call(kam, "attach")
    assert kam.info(agent)["status"] == "running"
    res = kam("logs", "--network", "--follow", agent)
    assert res.returncode == 0 and res.stdout == ""  # the stand-in proxy refused nothing
    assert "--follow is not available for a Kubernetes agent's network log" in res.stderr
    assert [*HEAD, "logs", kube.proxy_name("k2"), "--container", "proxy"] in calls(kam)
    kam("stop", agent)

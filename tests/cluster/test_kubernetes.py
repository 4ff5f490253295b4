"""The cluster tier: the real am against a real Kubernetes cluster (docs/scale.md).

Not run on the machines am is developed on (no cluster can run there) and not part of
``make test``: ``make test-cluster`` with AM_TEST_KUBECONFIG set runs it. It fails, never
skips, without a cluster. Optional: AM_TEST_KUBE_CONTEXT, AM_TEST_KUBE_NAMESPACE, and
AM_TEST_KUBE_IMAGE (an am-agent image the nodes can pull; default am-agent:latest).
"""

import json
import os
import subprocess
import time

import pytest
from helpers import assert_am_error

from am import kube

KUBECONFIG = os.environ.get("AM_TEST_KUBECONFIG")
if not KUBECONFIG:
    pytest.fail(
        "the cluster tier needs a cluster: set AM_TEST_KUBECONFIG (docs/scale.md)", pytrace=False
    )
IMAGE = os.environ.get("AM_TEST_KUBE_IMAGE", "am-agent:latest")

PROBE = r"""
echo "UID=$(id -u)"
grep -E '^(CapEff|CapBnd):' /proc/self/status | tr -d '\t' | sed 's/^/STATUS_/'
python3 -c 'import ctypes; print("NNP=%d" % ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))'
echo "ROOTMOUNT=$(awk '$2 == "/" {print $4}' /proc/mounts | tail -1 | cut -d, -f1)"
[ -e /var/run/secrets/kubernetes.io ] && echo TOKEN=yes || echo TOKEN=no
echo "BRANCH=$(git branch --show-current)"
python3 -c '
import socket
try:
    socket.create_connection(("kubernetes.default.svc", 443), timeout=5).close()
    print("EGRESS=open")
except OSError as e:
    print("EGRESS=closed")
'
echo agent-work > made-by-agent.txt
echo PROBE-DONE
sleep 600
"""


@pytest.fixture
def kam(am):
    am.env.update(KUBECONFIG=KUBECONFIG, AM_RUNTIME="kubernetes", AM_IMAGE=IMAGE)
    for var, key in (
        ("AM_TEST_KUBE_CONTEXT", "AM_KUBE_CONTEXT"),
        ("AM_TEST_KUBE_NAMESPACE", "AM_KUBE_NAMESPACE"),
    ):
        if os.environ.get(var):
            am.env[key] = os.environ[var]
    made = []
    am.made = made
    yield am
    for agent in made:
        am("rm", "--force", agent, check=False, timeout=600)


def kubectl(am, agent: str, *args) -> subprocess.CompletedProcess:
    k = am.info(agent)["kubernetes"]
    t = kube.Target(k["namespace"], k["context"], k.get("kubeconfig"))
    return subprocess.run(
        t.argv(*args), capture_output=True, text=True, env={**os.environ, "KUBECONFIG": KUBECONFIG}
    )


def values(log: str) -> dict:
    out = {}
    for line in log.replace("\r", "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isupper():
            out.setdefault(key, value.strip())
    return out


def spawn(kam, repo, *extra) -> str:
    agent = kam.spawn(repo, "--container", "--cmd", PROBE, *extra, timeout=900)
    kam.made.append(agent)
    return agent


def test_policy_workspace_and_lifecycle(kam, repo):
    agent = spawn(kam, repo)
    log = kam.wait_log(agent, "PROBE-DONE", timeout=300)
    v = values(log)
    assert v["UID"] == "1000" and v["NNP"] == "1" and v["ROOTMOUNT"] == "ro"
    assert "CapEff:0000000000000000" in log and "CapBnd:0000000000000000" in log
    assert v["TOKEN"] == "no" and v["BRANCH"] == f"am/{agent}"
    assert v["EGRESS"] == "closed"
    assert "made-by-agent.txt" in kam("diff", agent).stdout
    info = kam.info(agent)
    assert info["runtime"] == "kubernetes" and info["kubernetes"]["storage"] == "pvc"
    kam("stop", agent)
    assert (
        kubectl(
            kam, agent, "get", "pod", f"am-{agent}", "--ignore-not-found", "-o", "name"
        ).stdout.strip()
        == ""
    )
    assert kubectl(kam, agent, "get", "pvc", f"am-{agent}-ws", "-o", "name").returncode == 0
    # stopped: read through an operations pod over the claim
    assert "made-by-agent.txt" in kam("diff", agent).stdout
    assert_am_error(kam("rm", agent, check=False))  # unsaved work
    kam("start", agent, timeout=600)
    kam.wait_status(agent, "running")
    kam("rm", "--force", agent, timeout=600)
    left = kubectl(
        kam,
        agent,
        "get",
        f"{kube.RUN_KINDS},persistentvolumeclaims",
        "-l",
        f"am.agent={agent}",
        "-o",
        "name",
    )
    assert left.stdout.strip() == ""


def test_network_full_is_the_positive_control_for_egress(kam, repo):
    agent = spawn(kam, repo, "--network", "full")
    assert values(kam.wait_log(agent, "PROBE-DONE", timeout=300))["EGRESS"] == "open"


def test_exit_code_and_oom_come_from_the_pod_status(kam, repo):
    agent = kam.spawn(repo, "--container", "--cmd", "exit 7", timeout=900)
    kam.made.append(agent)
    assert kam.wait_status(agent, "exited", timeout=300)["exit_code"] == 7
    oom = kam.spawn(
        repo,
        "--container",
        "--memory",
        "64m",
        "--cmd",
        "python3 -c 'x = bytearray(512 << 20); print(len(x))'",
        timeout=900,
    )
    kam.made.append(oom)
    info = kam.wait_status(oom, "exited", timeout=300)
    assert info["oom_killed"] is True


def test_a_name_taken_in_the_namespace_is_refused(kam, repo, tmp_path):
    agent = spawn(kam, repo, "--name", f"kt{int(time.time())}")
    other = dict(kam.env, AM_HOME=str(tmp_path / "other-home"))
    res = subprocess.run(
        [*kam.argv, "spawn", str(repo), "--container", "--name", agent, "--cmd", "sleep 1"],
        env=other,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert_am_error(res)
    assert "already exists" in res.stderr
    pod = json.loads(kubectl(kam, agent, "get", "pod", f"am-{agent}", "-o", "json").stdout)
    assert pod["metadata"]["labels"]["am.home"] == kube.home_label(str(kam.home))

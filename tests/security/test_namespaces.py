"""Property 11: an agent cannot make new namespaces (``unshare -r``: uid 0 in a user namespace).

Docker's default seccomp profile refuses new namespaces to a process without CAP_SYS_ADMIN;
podman's allows them, so am gives podman agents the engine's own profile with docker's rule.
The positive control runs the same command in a container with everything am gives an agent
but that rule (podman's own profile; on docker, seccomp unconfined): there it succeeds.
"""

import subprocess

import pytest

PROPERTY = "11 no new namespaces in agents"
pytestmark = pytest.mark.container
PROBE = "unshare -r id -u; echo rc=$?; echo PROBE-DONE"


def test_unshare_fails_inside_an_agent(am, repo, engine):
    control = [
        engine,
        "run",
        "--rm",
        "--pull",
        "never",
        "--network",
        "none",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--read-only",
        "--user",
        "1000:1000",
        *(["--security-opt", "seccomp=unconfined"] if engine == "docker" else []),
        "am-agent:latest",
        "sh",
        "-c",
        PROBE,
    ]
    out = subprocess.run(control, capture_output=True, text=True).stdout
    assert "rc=0" in out and "\n0\n" in f"\n{out}", f"control: unshare -r failed\n{out}"
    agent = am.spawn(repo, "--container", "--runtime", engine, "--cmd", PROBE + "; sleep 300")
    log = am.wait_log(agent, "PROBE-DONE").replace("\r", "")
    assert "rc=1" in log and "Operation not permitted" in log, log
    am("stop", agent)

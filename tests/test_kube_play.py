"""Kubernetes agents' pods, run for real by ``podman kube play``: no cluster can run on these
machines, so the very objects ``am.kube.manifests`` makes are handed to podman, a real engine
that consumes Kubernetes YAML, and the policy is probed from inside as tests/test_container.py
does. The bundle reaches the waiting init container the way am's backend delivers it (the
``kube.DELIVER`` command through exec), made by the backend's own code from a real repository.

What podman does not do, and so is not shown here (docs/scale.md): NetworkPolicy (``--network
none`` stands in for the deny-all policy), Services, Secrets by reference, ``runtimeClassName``,
``$(NAME)`` expansion, and the kubectl calls themselves (tests/unit/test_kube.py composes them).
"""

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from containers import engine_ready, host_cgroup
from helpers import git, wait_for
from test_container import PROBE, probe_values

from am import kube, workspace
from am.backends import kubernetes

pytestmark = pytest.mark.container
IMAGE = "localhost/am-agent:latest"


def podman(*args, check=True, input=None, timeout=120) -> subprocess.CompletedProcess:
    res = subprocess.run(
        ["podman", *map(str, args)], capture_output=True, input=input, timeout=timeout
    )
    if check and res.returncode != 0:
        raise AssertionError(f"podman {' '.join(map(str, args[:3]))}: {res.stderr.decode()}")
    return res


def status(container: str) -> str:
    res = podman("inspect", "--format", "{{.State.Status}}", container, check=False)
    return res.stdout.decode().strip() if res.returncode == 0 else "missing"


# What the init container is allowed, asked from inside it.
SEED_PROBE = (
    "echo UID=$(id -u); grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' "
    "/proc/self/status; echo ROOT=$(awk '$2 == \"/\" {print $4}' /proc/mounts | "
    "tail -1 | cut -d, -f1); "
    "touch /workspace/.w && rm /workspace/.w && echo WS=rw"
)


class Play:
    """One agent's objects played by podman, removed after the test."""

    def __init__(self, tmp_path: Path):
        self.id = "kt" + uuid.uuid4().hex[:8]
        self.tmp = tmp_path
        self.files: list[Path] = []
        self.sessions: list[str] = []
        self.seed_probe = ""

    def spec(self, repo: Path | None = None, **kw) -> kube.Spec:
        base = dict(
            agent_id=self.id,
            home=str(self.tmp / "amhome"),
            image=IMAGE,
            command=["sh", "-c", PROBE],
            limits={"memory": "512m", "cpus": "1", "pids": 100},
        )
        return kube.Spec(**{**base, **kw})

    def bundle(self, repo: Path):
        """The backend's own bundle of REPO (a plan's few fields are all it reads)."""
        from types import SimpleNamespace

        from am.paths import Layout
        from am.rollback import Rollback

        plan = SimpleNamespace(id=self.id, source=str(repo), base=None, branch=f"am/{self.id}")
        lay = Layout(self.tmp, self.tmp / "state", self.tmp / "agents", self.tmp / "data", self.tmp)
        base = kubernetes.Kubernetes()._bundle(plan, repo, Rollback(), lay)
        return plan, base

    def play(self, objects: list[dict], network: str = "none", deliver: Path | None = None):
        """Play OBJECTS (as kubectl would create them) and, while the init container waits,
        deliver the bundle as am does; return once podman is done."""
        path = self.tmp / f"{self.id}-{len(self.files)}.yaml"
        path.write_text(kube.as_yaml_stream(objects))
        self.files.append(path)
        proc = subprocess.Popen(
            ["podman", "kube", "play", "--network", network, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            if deliver is not None:
                seeder = f"{kube.pod_name(self.id)}-{kube.SEEDER}"
                wait_for(
                    lambda: status(seeder) == "running" or proc.poll() is not None,
                    "the init container",
                    timeout=90,
                )
                assert proc.poll() is None, proc.communicate()[1].decode()
                # The init container's own policy, probed while it waits for the bundle.
                self.seed_probe = podman(
                    "exec", seeder, "sh", "-c", SEED_PROBE, check=False
                ).stdout.decode()
                with open(deliver, "rb") as f:
                    podman("exec", "-i", seeder, *kube.DELIVER, input=f.read())
            out, err = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err.decode()
        return out.decode()

    def attach(self, container: str) -> None:
        """What the session does: a client attached on a terminal (tmux), which gives the
        container's terminal its size and so lets the agent start."""
        name = f"kt-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            [
                "tmux",
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "120",
                "-y",
                "40",
                "podman",
                "attach",
                container,
            ],
            check=True,
        )
        self.sessions.append(name)

    def logs(self, container: str) -> str:
        res = podman("logs", container)
        return (res.stdout + res.stderr).decode(errors="replace")

    def wsops(self, container: str, *args: str) -> dict:
        """A workspace operation as am runs it through kubectl exec: wsops on stdin."""
        argv = kube.wsops_command([*args, kube.WORKSPACE, "--timeout", "60"])
        res = podman("exec", "-i", container, *argv, input=workspace.source().encode())
        return json.loads(res.stdout)

    def cleanup(self):
        for name in self.sessions:
            subprocess.run(["tmux", "kill-session", "-t", f"={name}:"], capture_output=True)
        for path in reversed(self.files):
            subprocess.run(["podman", "kube", "down", str(path)], capture_output=True)
        res = podman("volume", "ls", "--format", "{{.Name}}")
        mine = [v for v in res.stdout.decode().split() if v.startswith(f"am-{self.id}-")]
        if mine:
            podman("volume", "rm", "--force", *mine, check=False)


@pytest.fixture
def play(tmp_path):
    engine_ready("podman")
    p = Play(tmp_path)
    yield p
    p.cleanup()


def test_the_pods_policy_holds_inside_and_the_bundle_seeds_the_workspace(play, repo):
    plan, base = play.bundle(repo)
    objects = kube.manifests(play.spec(seed=plan.seed))
    assert [o["kind"] for o in objects] == [
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "ConfigMap",
        "Pod",
    ]
    play.play(objects, deliver=plan.bundle)
    agent = f"am-{play.id}-agent"
    assert status(agent) == "running"
    # The agent waits for its client: it has printed nothing yet, so nothing is lost.
    assert "PROBE-DONE" not in play.logs(agent)
    play.attach(agent)
    log = wait_for(
        lambda: (text := play.logs(agent)) and "PROBE-DONE" in text and text,
        "the probe",
        timeout=90,
    )
    v = probe_values(log)
    assert v["UID"] == str(kube.POD_UID)
    assert "CapEff:0000000000000000" in log and "CapBnd:0000000000000000" in log
    assert v["NNP"] == "1"
    assert v["ROOTMOUNT"] == "ro" and v["ROOTFS"] == "readonly" and v["WS"] == "writable"
    assert v["IFACES"] == "lo"  # --network none: what the deny-all NetworkPolicy means
    assert v["SOCK"] == "none"
    assert "ENV_HOME=/home/agent" in log
    assert not any(k.startswith("ENV_KUBERNETES") for k in v)  # no service links, no token
    probe = podman(
        "exec",
        agent,
        "sh",
        "-c",
        "ls /var/run/secrets/kubernetes.io 2>&1; grep Seccomp: /proc/self/status; "
        "git -C /workspace log -1 --format=%H; git -C /workspace branch "
        "--show-current; git -C /workspace remote get-url origin; "
        "git -C /workspace for-each-ref --format='%(refname)' refs/remotes; "
        "test -e /workspace/probe-write && echo PROBE-FILE",
    ).stdout.decode()
    assert "No such file or directory" in probe
    assert "Seccomp:\t2" in probe
    assert base in probe and f"am/{play.id}" in probe and str(repo) in probe
    assert "refs/remotes/origin/main" in probe and "refs/remotes/origin/side" in probe
    assert "PROBE-FILE" in probe
    limits = host_cgroup("podman", agent)
    assert limits["memory"] == str(512 * 1024**2)
    assert limits["cpu"] == "100000/100000"  # cpus 1: the pod's cpu limit, 1000m
    # The init container had the same policy, and only it could write the workspace then.
    seed = play.seed_probe
    assert f"UID={kube.POD_UID}" in seed and "ROOT=ro" in seed and "WS=rw" in seed, seed
    assert "CapEff:\t0000000000000000" in seed and "CapBnd:\t0000000000000000" in seed
    assert "NoNewPrivs:\t1" in seed and "Seccomp:\t2" in seed
    # The workspace operations read it in the pod: the seed's commit, then the probe's file.
    assert play.wsops(agent, "head") == {"head": base, "branch": f"am/{play.id}"}
    assert play.wsops(agent, "unsaved")["changed"] == 1


def test_without_the_policy_the_probe_sees_capabilities_and_a_writable_root(play, repo):
    """Positive control: the same pod with its securityContexts taken out keeps a bounding set
    of capabilities, may gain privileges and has a writable root; the probe above would have
    seen it. (Its uid is still the image's own user, 1000: runAsUser guards images that have none.)
    """
    plan, _ = play.bundle(repo)
    objects = kube.manifests(play.spec(seed=plan.seed))
    pod = objects[-1]
    del pod["spec"]["securityContext"]
    for c in pod["spec"]["containers"] + pod["spec"]["initContainers"]:
        del c["securityContext"]
    play.play(objects, deliver=plan.bundle)
    assert "ROOT=rw" in play.seed_probe and "NoNewPrivs:\t0" in play.seed_probe
    assert "CapBnd:\t0000000000000000" not in play.seed_probe
    agent = f"am-{play.id}-agent"
    play.attach(agent)
    log = wait_for(
        lambda: (t := play.logs(agent)) and "PROBE-DONE" in t and t, "the probe", timeout=90
    )
    v = probe_values(log)
    assert v["ROOTMOUNT"] == "rw" and v["NNP"] == "0"
    assert "CapBnd:0000000000000000" not in log


def test_a_bundle_that_is_not_the_one_am_made_is_refused(play, repo, tmp_path):
    plan, _ = play.bundle(repo)
    (repo / "file.txt").write_text("changed by someone else\n")
    git("commit", "-qam", "other", cwd=repo)
    other = tmp_path / "other.bundle"
    git("bundle", "create", "-q", other, "--all", cwd=repo)
    objects = kube.manifests(play.spec(seed=plan.seed))
    path = tmp_path / "pod.yaml"
    path.write_text(kube.as_yaml_stream(objects))
    play.files.append(path)
    proc = subprocess.Popen(
        ["podman", "kube", "play", "--network", "none", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seeder = f"am-{play.id}-{kube.SEEDER}"
    wait_for(lambda: status(seeder) == "running", "the init container", timeout=90)
    podman("exec", "-i", seeder, *kube.DELIVER, input=other.read_bytes())
    _, err = proc.communicate(timeout=180)
    # The init container refuses it: the agent never starts on a workspace am did not make.
    assert proc.returncode != 0 or status(f"am-{play.id}-agent") != "running", err.decode()
    assert status(f"am-{play.id}-agent") != "running"


def test_an_emptydir_workspace_outlives_its_agent_in_the_keeper(play, repo):
    plan, base = play.bundle(repo)
    spec = play.spec(
        storage="emptydir",
        seed=plan.seed,
        command=["sh", "-c", "echo work > /workspace/new.txt; exit 7"],
    )
    play.play(kube.manifests(spec), deliver=plan.bundle)
    agent, keeper = f"am-{play.id}-agent", f"am-{play.id}-{kube.KEEPER}"
    play.attach(agent)
    wait_for(lambda: status(agent) == "exited", "the agent's end", timeout=90)
    code = podman("inspect", "--format", "{{.State.ExitCode}}", agent).stdout.decode().strip()
    assert code == "7"
    assert status(keeper) == "running"
    assert play.wsops(keeper, "head") == {"head": base, "branch": f"am/{play.id}"}
    assert play.wsops(keeper, "unsaved")["changed"] == 1
    # read-only there: the keeper cannot change the workspace
    res = podman("exec", keeper, "touch", "/workspace/x", check=False)
    assert res.returncode != 0


def test_a_limited_agents_proxy_pod_refuses_what_is_not_allowed(play):
    """The proxy pod of --network limited, on a network of the test's own (podman enforces no
    NetworkPolicy, so a client container stands in for the agent): squid with am's rules, its
    refusals in its output, which is what 'kubectl logs' and 'am logs --network' read."""
    from am.backends import network

    spec = play.spec(
        network="limited", domains=["example.com"], proxy_image=f"localhost/{network.PROXY_IMAGE}"
    )
    net = f"am-{play.id}-net"
    podman("network", "create", net)
    try:
        play.play(
            [o for o in kube.proxy_objects(spec) if o["kind"] in ("ConfigMap", "Pod")], network=net
        )
        proxy = f"{kube.proxy_name(play.id)}-proxy"
        assert status(proxy) == "running"
        uid = podman("inspect", "--format", "{{.Config.User}}", proxy).stdout.decode()
        assert uid.startswith(str(kube.PROXY_UID))
        wait_for(lambda: "Accepting HTTP" in play.logs(proxy), "squid", timeout=90)
        ip = (
            podman(
                "inspect",
                "--format",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                proxy,
            )
            .stdout.decode()
            .strip()
        )
        url = f"http://{ip}:{kube.PROXY_PORT}"
        codes = (
            podman(
                "run",
                "--rm",
                "--network",
                net,
                IMAGE,
                "sh",
                "-c",
                f"for u in http://denied.example.org/ http://{ip}/ "
                "http://example.com:8080/; do curl -s -o /dev/null -w '%{http_code} ' "
                f"-x {url} $u; done",
            )
            .stdout.decode()
            .split()
        )
        assert codes == ["403", "403", "403"]
        refused = network.denied(podman("logs", proxy).stdout.decode().splitlines(True))
        assert [r.split(" denied ")[1] for r in refused] == [
            f"GET denied.example.org:80: {network.REFUSALS['ERR_AM_DOMAIN']}",
            f"GET {ip}:80: {network.REFUSALS['ERR_AM_DOMAIN']}",
            f"GET example.com:8080: {network.REFUSALS['ERR_AM_PORT']}",
        ]
    finally:
        play.cleanup()
        podman("network", "rm", "--force", net, check=False)


def test_an_operations_pod_reads_the_claim_read_only(play, repo):
    plan, base = play.bundle(repo)
    spec = play.spec(seed=plan.seed, command=["sh", "-c", "echo work > /workspace/n.txt"])
    play.play(kube.manifests(spec), deliver=plan.bundle)
    agent = f"am-{play.id}-agent"
    play.attach(agent)
    wait_for(lambda: status(agent) == "exited", "the agent's end", timeout=90)
    subprocess.run(["podman", "kube", "down", str(play.files[0])], capture_output=True)
    # The claim's volume stays: a later operation's pod mounts it, read-only.
    play.play(kube.op_manifests(play.spec(), "0a1b2c3d"))
    op = f"{kube.op_name(play.id, '0a1b2c3d')}-op"
    assert status(op) == "running"
    assert play.wsops(op, "head") == {"head": base, "branch": f"am/{play.id}"}
    assert play.wsops(op, "unsaved") == {"changed": 1, "submodules": 0, "ahead": 0}
    assert podman("exec", op, "touch", "/workspace/x", check=False).returncode != 0
    uid = podman("exec", op, "id", "-u").stdout.decode().strip()
    assert uid == str(kube.POD_UID)

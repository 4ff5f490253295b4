"""Kubernetes agents, as composition: the objects of ``am.kube.manifests`` and the kubectl
command lines am sends. Nothing here talks to a cluster (there is none on these machines): the
objects are checked against Kubernetes' own schemas (kubernetes-validate, offline) and run by
``podman kube play`` in tests/test_kube_play.py; the kubectl lines are checked as argument
lists only, never against an API server (docs/scale.md says what that leaves open)."""

import json
import re
import subprocess
from types import SimpleNamespace

import kubernetes_validate
import pytest

from am import config, image, kube, plan, records, validate
from am.errors import AmError
from am.paths import Layout

HOME = "/home/user/.local/state/am"
SEED = {"sha256": "a" * 64, "branch": "am/k1", "base": "b" * 40, "origin": "/src/repo"}
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Every schema version the pods must load in: the oldest Kubernetes still common, and the latest.
VERSIONS = ("1.27.0", kubernetes_validate.latest_version())


def spec(**kw) -> kube.Spec:
    base = dict(
        agent_id="k1",
        home=HOME,
        image="registry.example/am-agent:1",
        command=["claude", "--dangerously-skip-permissions"],
        limits={"memory": "2g", "cpus": "1.5", "pids": 100},
    )
    return kube.Spec(**{**base, **kw})


def by_kind(objects, kind, role=None):
    return [
        o
        for o in objects
        if o["kind"] == kind and (role is None or o["metadata"]["labels"]["am.role"] == role)
    ]


def containers(pod) -> list[dict]:
    return pod["spec"]["containers"] + pod["spec"].get("initContainers", [])


ALL_SHAPES = [
    dict(network=n, storage=s, isolation=i, seed=seed)
    for n in ("none", "limited", "full")
    for s in kube.STORAGES
    for i in ("runc", "gvisor")
    for seed in (SEED, None)
]


@pytest.mark.parametrize(
    "shape",
    ALL_SHAPES,
    ids=lambda s: "-".join(
        [s["network"], s["storage"], s["isolation"], "seed" if s["seed"] else "start"]
    ),
)
def test_every_object_is_valid_kubernetes(shape):
    objects = kube.manifests(
        spec(**shape, secret_names=["TOKEN"], domains=["example.com"], env={"AM_PROMPT": "task"}),
        {"TOKEN": "v"},
    )
    objects += kube.op_manifests(spec(**shape), "0a1b2c3d")
    for version in VERSIONS:
        for obj in objects:
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_schema_check_catches_a_misspelt_field():
    """Positive control: the validation above does refuse what a cluster would."""
    pod = kube.agent_pod(spec())
    pod["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("shape", ALL_SHAPES[::3], ids=str)
def test_every_container_gets_the_policy(shape):
    objects = kube.manifests(spec(**shape)) + kube.op_manifests(spec(**shape), "0a1b2c3d")
    pods = by_kind(objects, "Pod")
    assert pods
    for pod in pods:
        body = pod["spec"]
        assert body["automountServiceAccountToken"] is False
        assert body["restartPolicy"] == "Never"
        sec = body["securityContext"]
        assert sec["runAsNonRoot"] is True and sec["runAsUser"] != 0
        assert sec["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in containers(pod):
            s = c["securityContext"]
            assert s["allowPrivilegeEscalation"] is False
            assert s["readOnlyRootFilesystem"] is True
            assert s["capabilities"] == {"drop": ["ALL"]}
            assert s["privileged"] is False
            assert c["resources"]["limits"]["memory"] and c["resources"]["limits"]["cpu"]
        if pod["metadata"]["labels"]["am.role"] != "proxy":
            assert sec["runAsUser"] == kube.POD_UID
        assert (body.get("runtimeClassName") == "gvisor") == (shape["isolation"] == "gvisor")


def node_access(pod: dict) -> list[str]:
    """What of the node POD would get: a node volume, a node namespace, a host port."""
    body, found = pod["spec"], []
    found += [k for k in ("hostNetwork", "hostPID", "hostIPC") if body.get(k) is not False]
    for vol in body["volumes"]:
        kinds = set(vol) - {"name"}
        if not kinds <= {"emptyDir", "persistentVolumeClaim", "configMap"}:
            found.append(f"volume {vol}")
        if vol.get("emptyDir", {}).get("medium") == "Memory" and not vol["emptyDir"].get(
            "sizeLimit"
        ):
            found.append(f"uncapped memory volume {vol['name']}")
    found += [
        f"host port of {c['name']}"
        for c in containers(pod)
        for p in c.get("ports", [])
        if "hostPort" in p
    ]
    return found


@pytest.mark.parametrize("shape", ALL_SHAPES, ids=str)
def test_no_pod_gets_anything_of_the_node(shape):
    """No hostPath or other node volume, none of the node's namespaces (said explicitly), no
    host port: the pods have only what am makes for them, as a container agent has no host
    mount."""
    objects = kube.manifests(spec(**shape)) + kube.op_manifests(spec(**shape), "0a1b2c3d")
    for pod in by_kind(objects, "Pod"):
        assert node_access(pod) == [], pod["metadata"]["name"]


def test_control_node_access_is_seen():
    pod = kube.agent_pod(spec())
    pod["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}})
    pod["spec"]["hostPID"] = True
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 80}]
    assert len(node_access(pod)) == 3


def test_limits_come_from_the_same_flags():
    pod = kube.agent_pod(spec(limits={"memory": "512m", "cpus": "0.5", "pids": 100}))
    agent = pod["spec"]["containers"][0]
    assert agent["resources"]["limits"] == {"memory": "512Mi", "cpu": "500m"}
    # requests = limits: the scheduler places the agent where it fits whole
    assert agent["resources"]["requests"] == agent["resources"]["limits"]
    assert kube.quantity(validate.memory_bytes("1.5g")) == "1536Mi"
    assert kube.quantity(validate.memory_bytes("2g")) == "2Gi"
    assert kube.quantity(1000) == "1000"
    gpu = kube.agent_pod(spec(gpus=2))["spec"]["containers"][0]["resources"]["limits"]
    assert gpu["nvidia.com/gpu"] == "2"


def test_labels_name_the_agent_and_a_digest_of_am_home():
    for obj in kube.manifests(spec(network="limited", seed=SEED, secret_names=["T"]), {"T": "x"}):
        labels = obj["metadata"]["labels"]
        assert labels["am.agent"] == "k1"
        assert labels["am.home"] == kube.home_label(HOME) != HOME
        assert re.fullmatch(r"[0-9a-f]{32}", labels["am.home"])
    assert kube.home_label(HOME) != kube.home_label(HOME + "2")


def test_names_are_dns_labels_for_the_longest_id():
    long_id = "a" + "-b" * 22 + "-9"
    assert len(long_id) == 47
    objects = kube.manifests(
        spec(agent_id=long_id, network="limited", seed=SEED, secret_names=["T"]), {"T": "x"}
    )
    objects += kube.op_manifests(spec(agent_id=long_id), "0a1b2c3d")
    for obj in objects:
        assert DNS_LABEL.fullmatch(obj["metadata"]["name"]), obj["metadata"]["name"]
        for vol in obj.get("spec", {}).get("volumes", []):
            assert DNS_LABEL.fullmatch(vol["name"]), vol["name"]
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63


@pytest.mark.parametrize("bad", ["a.b", "a_b", "-a", "a-", "A1", "a" * 48])
def test_ids_kubernetes_cannot_name_are_refused(bad):
    with pytest.raises(kube.Invalid):
        kube.check_name(bad)


def test_network_none_denies_all_egress_and_ingress():
    (policy,) = by_kind(kube.manifests(spec(network="none")), "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == kube.labels(spec(), "agent")
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert policy["spec"]["egress"] == [] and policy["spec"]["ingress"] == []
    assert kube.manifests(spec(network="none"))[0] is not None
    # created first: before the pod it guards
    assert kube.manifests(spec(network="none"))[0]["kind"] == "NetworkPolicy"


def test_network_limited_allows_only_the_agents_proxy():
    objects = kube.manifests(
        spec(network="limited", domains=["api.example.com"], private=["git.internal.example"])
    )
    agent_policy = by_kind(objects, "NetworkPolicy", "agent")[0]["spec"]
    (rule,) = agent_policy["egress"]
    assert rule["to"] == [{"podSelector": {"matchLabels": kube.labels(spec(), "proxy")}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": kube.PROXY_PORT}]
    proxy_policy = by_kind(objects, "NetworkPolicy", "proxy")[0]["spec"]
    assert proxy_policy["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": kube.labels(spec(), "agent")}}
    ]
    conf = by_kind(objects, "ConfigMap", "proxy")[0]["data"]
    squid = conf["squid.conf"]
    assert (
        f"\nhttp_port {kube.PROXY_PORT}\n" in squid
        and "127.0.0.1" not in squid.split("http_port")[1].splitlines()[0]
    )
    assert "access_log stdio:/dev/stdout am" in squid
    assert "http_access deny all" in squid and "api\\.example\\.com" in squid
    assert "git\\.internal\\.example" in squid.split("acl am_private_ok")[1].splitlines()[0]
    (service,) = by_kind(objects, "Service")
    assert service["spec"]["selector"] == kube.labels(spec(), "proxy")
    script = by_kind(objects, "ConfigMap", "agent")[0]["data"]["agent.sh"]
    assert f"${{{kube.service_host_var('k1')}}}" in script
    assert kube.service_host_var("k1") == "AM_K1_PROXY_SERVICE_HOST"
    pod = by_kind(objects, "Pod", "agent")[0]
    assert pod["spec"]["enableServiceLinks"] is True
    # every policy and the proxy come before the agent's pod
    kinds = [(o["kind"], o["metadata"]["labels"]["am.role"]) for o in objects]
    assert kinds.index(("Pod", "agent")) == len(kinds) - 1


def test_network_full_still_takes_no_ingress():
    (policy,) = by_kind(kube.manifests(spec(network="full")), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"] and policy["spec"]["ingress"] == []
    assert (
        by_kind(kube.manifests(spec(network="full")), "Pod")[0]["spec"]["enableServiceLinks"]
        is False
    )


def test_workspace_claim_or_emptydir():
    first = kube.manifests(spec(seed=SEED))
    (claim,) = by_kind(first, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "am-k1-ws"
    assert claim["metadata"]["labels"]["am.role"] == "workspace"
    assert claim["spec"]["resources"]["requests"]["storage"] == kube.DEFAULT_SIZE
    pod = by_kind(first, "Pod")[0]["spec"]
    assert {
        "name": "am-k1-ws",
        "persistentVolumeClaim": {"claimName": "am-k1-ws", "readOnly": False},
    } in pod["volumes"]
    assert [c["name"] for c in pod["initContainers"]] == [kube.SEEDER]
    # a later start: the same claim, no seeding, no new claim
    again = kube.manifests(spec())
    assert not by_kind(again, "PersistentVolumeClaim")
    assert "initContainers" not in by_kind(again, "Pod")[0]["spec"]
    classed = by_kind(
        kube.manifests(spec(seed=SEED, storage_class="fast", size="50Gi")), "PersistentVolumeClaim"
    )[0]["spec"]
    assert classed["storageClassName"] == "fast"
    assert classed["resources"]["requests"]["storage"] == "50Gi"
    # emptyDir: no claim; a keeper container holds the pod, reading the workspace read-only
    empty = kube.manifests(spec(storage="emptydir", seed=SEED))
    assert not by_kind(empty, "PersistentVolumeClaim")
    pod = by_kind(empty, "Pod")[0]["spec"]
    keeper = next(c for c in pod["containers"] if c["name"] == kube.KEEPER)
    assert {"name": "am-k1-ws", "mountPath": kube.WORKSPACE, "readOnly": True} in keeper[
        "volumeMounts"
    ]
    with pytest.raises(kube.Invalid):
        kube.manifests(spec(storage="hostPath"))


def test_an_operations_pod_reads_the_claim_without_network():
    policy, pod = kube.op_manifests(spec(), "0a1b2c3d")
    assert pod["metadata"]["name"] == "am-k1-op-0a1b2c3d"
    assert pod["metadata"]["labels"] == {**kube.labels(spec(), "op"), "am.op": "0a1b2c3d"}
    assert policy["spec"]["podSelector"]["matchLabels"] == pod["metadata"]["labels"]
    assert policy["spec"]["egress"] == [] and policy["spec"]["ingress"] == []
    assert {
        "name": "am-k1-ws",
        "persistentVolumeClaim": {"claimName": "am-k1-ws", "readOnly": True},
    } in pod["spec"]["volumes"]
    (c,) = pod["spec"]["containers"]
    assert {"name": "am-k1-ws", "mountPath": kube.WORKSPACE, "readOnly": True} in c["volumeMounts"]
    assert pod["spec"]["activeDeadlineSeconds"] == kube.OP_DEADLINE


HOSTILE = ["claude", "--print", 'it\'s $(HOME) `id` $$ \\n ${PATH} "q"\n; rm -rf / #', "-x", ""]


def test_no_value_reaches_a_field_kubernetes_expands():
    """Kubernetes expands $(NAME) in command, args and env values: every value of the agent's
    (its arguments, its prompt, the branch) travels in the ConfigMap's scripts instead."""
    s = spec(command=HOSTILE, env={"AM_PROMPT": "do $(HOME)"}, seed=SEED, network="limited")
    for obj in kube.manifests(s) + kube.op_manifests(s, "0a1b2c3d"):
        if obj["kind"] != "Pod":
            continue
        for c in containers(obj):
            for text in (
                c["command"] + c.get("args", []) + [e.get("value", "") for e in c.get("env", [])]
            ):
                assert "$" not in text, (c["name"], text)


def _sh_argv(line: str) -> list[str]:
    out = subprocess.run(
        ["sh", "-c", line + '\nprintf "%s\\0" "$@"'], capture_output=True, check=True
    ).stdout
    return out.decode().split("\0")[:-1]


def test_the_agent_script_gives_the_arguments_exactly():
    script = kube.agent_script(spec(command=HOSTILE, env={"AM_PROMPT": "do $(HOME) 'x'"}))
    line = script[script.index("set -- ") : script.index('\n"$@"')]
    assert _sh_argv(line) == HOSTILE
    export = next(ln for ln in script.splitlines() if ln.startswith("export AM_PROMPT="))
    out = subprocess.run(
        ["sh", "-c", export + '\nprintf %s "$AM_PROMPT"'],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    assert out == "do $(HOME) 'x'"
    # the agent runs as a child of the script's shell, which reports its exit status
    assert script.rstrip().endswith('"$@"\nexit $?')


def test_the_seed_script_quotes_its_values():
    seed = {**SEED, "branch": "am/it's $(x)", "origin": "https://example.com/a b.git"}
    text = kube.seed_script(seed)
    head = "\n".join(ln for ln in text.splitlines() if ln.startswith("AM_"))
    out = subprocess.run(
        ["sh", "-c", head + '\nprintf "%s|%s" "$AM_BRANCH" "$AM_ORIGIN"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == "am/it's $(x)|https://example.com/a b.git"
    assert subprocess.run(["sh", "-n", "-c", text]).returncode == 0
    assert 'until [ -f "$bundle" ]' in text and "sha256sum --check" in text


def test_env_values_are_only_in_the_secret():
    value = "s3cr3t-value-1234"
    objects = kube.manifests(spec(secret_names=["API_KEY"], seed=SEED), {"API_KEY": value})
    (secret,) = by_kind(objects, "Secret")
    assert secret["stringData"] == {"API_KEY": value}
    assert secret["metadata"]["labels"]["am.role"] == "env"
    others = json.dumps([o for o in objects if o["kind"] != "Secret"])
    assert value not in others
    env = by_kind(objects, "Pod")[0]["spec"]["containers"][0]["env"]
    assert {
        "name": "API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "am-k1-env", "key": "API_KEY"}},
    } in env
    assert not by_kind(kube.manifests(spec()), "Secret")


# -- kubectl command lines --------------------------------------------------------------------


T = kube.Target("team-a", "prod-cluster", "/home/u/.kube/config")


def test_every_call_names_the_recorded_context_and_namespace():
    assert kube.Target("ns").argv("get", "pods") == ["kubectl", "--namespace", "ns", "get", "pods"]
    assert T.argv("x")[:5] == ["kubectl", "--context", "prod-cluster", "--namespace", "team-a"]
    assert T.env({"A": "1"}) == {"A": "1", "KUBECONFIG": "/home/u/.kube/config"}


def test_kubectl_command_lines():
    head = ["kubectl", "--context", "prod-cluster", "--namespace", "team-a"]
    assert kube.create_argv(T) == head + ["create", "--filename", "-", "--output", "name"]
    assert kube.attach_argv(T, "am-k1") == head + [
        "attach",
        "--quiet",
        "--stdin",
        "--tty",
        "am-k1",
        "--container",
        "agent",
    ]
    assert kube.exec_argv(T, "am-k1", kube.SEEDER, kube.DELIVER) == head + [
        "exec",
        "--stdin",
        "am-k1",
        "--container",
        "am-seed",
        "--",
        *kube.DELIVER,
    ]
    assert kube.get_pod_argv(T, "am-k1") == head + [
        "get",
        "pod",
        "am-k1",
        "--ignore-not-found",
        "--output",
        "json",
    ]
    assert kube.logs_argv(T, "am-k1-proxy", "proxy", tail=5) == head + [
        "logs",
        "am-k1-proxy",
        "--container",
        "proxy",
        "--tail=5",
    ]
    assert kube.current_context_argv() == ["kubectl", "config", "current-context"]
    assert kube.context_namespace_argv("c") == [
        "kubectl",
        "config",
        "view",
        "--minify",
        "--context",
        "c",
        "--output",
        "jsonpath={..namespace}",
    ]


def test_deletes_select_this_am_homes_objects_only():
    sel = kube.selector("k1", HOME)
    assert sel == f"am.agent=k1,am.home={kube.home_label(HOME)}"
    assert kube.selector("k1", HOME, "proxy", "env").endswith(",am.role in (proxy,env)")
    argv = kube.delete_argv(T, kube.RUN_KINDS, sel)
    assert argv[5:] == [
        "delete",
        "pods,services,configmaps,secrets,networkpolicies",
        "--selector",
        sel,
        "--ignore-not-found",
        "--wait=true",
        "--timeout=120s",
    ]
    assert "persistentvolumeclaims" not in kube.RUN_KINDS  # a stop keeps the workspace


def test_the_deliver_command_moves_the_bundle_in_place_whole(tmp_path):
    """The init container waits for the bundle's final name, which appears only once cat has
    read the whole stream."""
    cmd = kube.DELIVER[2].replace(kube.SEED_DIR, str(tmp_path))
    res = subprocess.run(["sh", "-c", cmd], input=b"bundle bytes", capture_output=True)
    assert res.returncode == 0
    assert (tmp_path / "source.bundle").read_bytes() == b"bundle bytes"
    assert not (tmp_path / ".part").exists()


def test_wsops_gets_its_program_on_stdin(tmp_path):
    """The command a workspace operation runs in a pod: wsops read from stdin (not in the exec
    request's URL), the image's PATH; run here with this host's python3 on a real repo."""
    from am import workspace

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    argv = kube.wsops_command(["head", str(tmp_path), "--timeout", "30"])
    assert argv[:3] == ["/usr/bin/env", f"PATH={kube.SANDBOX_PATH}", "python3"]
    assert workspace.source() not in " ".join(argv)
    out = subprocess.run(
        argv, input=workspace.source().encode(), capture_output=True, check=True
    ).stdout
    assert json.loads(out) == {"head": None, "branch": "master"} or json.loads(out)["head"] is None


# -- pod status --------------------------------------------------------------------------------


def pod_with(statuses, init=None, conditions=None):
    return {
        "kind": "Pod",
        "status": {
            "containerStatuses": statuses,
            "initContainerStatuses": init or [],
            "conditions": conditions or [],
        },
    }


def test_an_oom_kill_and_the_exit_code_come_from_the_pod_status():
    pod = pod_with(
        [{"name": "agent", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]
    )
    s = kube.container_state(pod, "agent")
    assert (s.phase, s.exit_code, s.oom) == ("terminated", 137, True)
    done = kube.container_state(
        pod_with([{"name": "agent", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]),
        "agent",
    )
    assert (done.exit_code, done.oom) == (3, False)
    assert (
        kube.container_state(pod_with([{"name": "agent", "state": {"running": {}}}]), "agent").phase
        == "running"
    )


def test_waiting_reasons_and_missing_pods():
    assert kube.container_state(None, "agent").phase == "missing"
    pull = kube.container_state(
        pod_with(
            [
                {
                    "name": "agent",
                    "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}},
                }
            ]
        ),
        "agent",
    )
    assert pull.reason in kube.PULL_REASONS and pull.message == "not found"
    init = pod_with([], init=[{"name": kube.SEEDER, "state": {"running": {}}}])
    assert kube.container_state(init, kube.SEEDER, init=True).phase == "running"
    assert kube.container_state(init, kube.SEEDER).phase == "waiting"
    pending = pod_with(
        [],
        conditions=[
            {"type": "PodScheduled", "status": "False", "message": "0/3 nodes are available"}
        ],
    )
    assert kube.container_state(pending, "agent").message == "0/3 nodes are available"
    assert kube.parse_pod("") is None and kube.parse_pod("{bad") is None
    assert kube.parse_pod(json.dumps({"kind": "Pod"})) == {"kind": "Pod"}


# -- the plan and the record -------------------------------------------------------------------


def spawn_args(**kw):
    base = dict(
        name=None,
        container=True,
        runtime="kubernetes",
        agent=None,
        cmd="sleep 1",
        skip_permissions=False,
        network=None,
        allow_domain=[],
        memory=None,
        cpus=None,
        pids=None,
        gpus=None,
        image=None,
        mount_agent_config=False,
        publish=[],
        isolation=None,
        kube_workspace=None,
        env=[],
        base=None,
        branch=None,
        worktree=False,
        prompt=None,
        prompt_file=None,
    )
    return SimpleNamespace(**{**base, **kw})


def layout(tmp_path) -> Layout:
    return Layout(tmp_path, tmp_path / "state", tmp_path / "agents", tmp_path / "data", tmp_path)


def build(tmp_path, environ=None, **kw):
    return plan.build(
        spawn_args(**kw), layout(tmp_path), "/src", environ or {}, host_memory=1 << 30, host_cpus=1
    )


def test_a_kubernetes_plan(tmp_path):
    p = build(tmp_path, memory="8g", cpus="4", name="k1", kube_workspace="emptydir")
    assert (p.mode, p.runtime, p.container) == ("container", "kubernetes", "am-k1")
    # the limits are the node's to judge, not this host's (1 GiB, 1 CPU here)
    assert p.limits["memory"] == "8g"
    assert p.kube == {
        "context": None,
        "namespace": None,
        "storage": "emptydir",
        "size": "10Gi",
        "storage_class": None,
        "proxy_image": "am-proxy:2",
    }
    assert p.record(str(tmp_path))["kubernetes"] == p.kube
    env = {"AM_KUBE_CONTEXT": "dev", "AM_KUBE_NAMESPACE": "agents"}
    p = build(tmp_path, env)
    assert (p.kube["context"], p.kube["namespace"], p.kube["storage"]) == ("dev", "agents", "pvc")
    limited = build(tmp_path, network="limited")
    assert limited.proxy == f"am-{limited.id}-proxy" and limited.egress is None


@pytest.mark.parametrize(
    "kw, text",
    [
        (dict(publish=["8080:80"], network="full"), "--publish applies to docker and podman"),
        (dict(gpus="device=0"), "takes a count of GPUs"),
        (dict(name="a.b"), "cannot name Kubernetes objects"),
    ],
)
def test_what_a_pod_cannot_have_is_refused(tmp_path, kw, text):
    with pytest.raises(AmError, match=re.escape(text)):
        build(tmp_path, **kw)


def test_kube_workspace_belongs_to_kubernetes(tmp_path):
    with pytest.raises(AmError, match="--kube-workspace applies to Kubernetes agents"):
        build(tmp_path, runtime="docker", kube_workspace="pvc", memory="512m", cpus="1")
    with pytest.raises(AmError, match="applies to container agents"):
        build(tmp_path, container=False, runtime=None, kube_workspace="pvc")


def test_pids_is_not_enforced_and_says_so(tmp_path):
    assert build(tmp_path).warnings == []
    (warning,) = build(tmp_path, pids="50").warnings
    assert "not enforced on Kubernetes" in warning


def test_kubernetes_settings_in_config_are_checked(tmp_path):
    (tmp_path / "config.toml").write_text('[kubernetes]\nworkspace = "hostpath"\n')
    with pytest.raises(AmError, match="kubernetes.workspace"):
        config.load(layout(tmp_path), {})
    (tmp_path / "config.toml").write_text('[kubernetes]\nworkspace_size = "lots"\n')
    with pytest.raises(AmError, match="kubernetes.workspace_size"):
        config.load(layout(tmp_path), {})
    (tmp_path / "config.toml").write_text(
        'runtime = "kubernetes"\n[kubernetes]\nnamespace = "agents"\nstorage_class = "fast"\n'
    )
    p = plan.build(spawn_args(runtime=None), layout(tmp_path), "/src", {})
    assert (p.runtime, p.kube["namespace"], p.kube["storage_class"]) == (
        "kubernetes",
        "agents",
        "fast",
    )


def kube_record(tmp_path, **kube_fields):
    lay = layout(tmp_path)
    p = build(tmp_path, name="k1")
    p.kube.update({"context": "prod", "namespace": "team-a", "kubeconfig": None, **kube_fields})
    return p.record(str(lay.root)), lay


def test_records_of_kubernetes_agents_are_checked(tmp_path):
    record, lay = kube_record(tmp_path)
    assert records.problems(record, lay) == []
    for bad in (
        {"namespace": "Team A"},
        {"context": "--kubeconfig=/x"},
        {"storage": "hostPath"},
        {"kubeconfig": "relative/config"},
    ):
        wrong, _ = kube_record(tmp_path, **bad)
        assert records.problems(wrong, lay), bad
    missing = dict(record)
    del missing["kubernetes"]
    assert records.problems(missing, lay) == ["its Kubernetes settings are missing"]


def test_am_start_takes_a_kubernetes_record_as_untrusted_input(tmp_path):
    record, lay = kube_record(tmp_path)
    cfg = config.load(lay, {})
    args = SimpleNamespace(prompt=None, env=[], continue_=False)
    again = plan.from_record(record, args, lay, {}, cfg)
    assert again.runtime == "kubernetes" and again.kube["namespace"] == "team-a"
    assert again.seed is None  # a start never seeds the claim again
    empty, _ = kube_record(tmp_path, storage="emptydir")
    with pytest.raises(AmError, match="emptyDir of its pod"):
        plan.from_record(empty, args, lay, {}, cfg)
    bad, _ = kube_record(tmp_path, namespace="-n kube-system")
    with pytest.raises(AmError, match="invalid kubernetes settings"):
        plan.from_record(bad, args, lay, {}, cfg)


def test_push_reference():
    assert (
        image.push_reference("registry.example.com:5000", "am-agent:latest")
        == "registry.example.com:5000/am-agent:latest"
    )
    assert (
        image.push_reference("ghcr.io/team/", "localhost/am-agent:v2") == "ghcr.io/team/am-agent:v2"
    )
    assert image.push_reference("127.0.0.1:5000", "am-agent") == "127.0.0.1:5000/am-agent:latest"
    for bad in ("-reg", "reg/UPPER", "reg:port", "a b", ""):
        with pytest.raises(AmError, match="invalid --push"):
            image.push_reference(bad, "am-agent:latest")


def test_a_failed_push_names_its_fix():
    from am.backends.engine import push_hint

    plain = "pinging container registry r:5000: http: server gave HTTP response to HTTPS client"
    assert "insecure-registries" in push_hint("docker", plain, "r:5000/am-agent:latest")
    assert "registries.conf" in push_hint("podman", plain, "r:5000/am-agent:latest")
    login = "unauthorized: authentication required"
    assert push_hint("podman", login, "r:5000/x:1") == "log in first: 'podman login r:5000'"
    assert "answers" in push_hint("docker", "dial tcp: connection refused", "r:5000/x:1")

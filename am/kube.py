"""Kubernetes agents: the objects of one agent and the kubectl command lines, as pure functions.

``manifests`` is the one function that makes every object an agent needs in a cluster; it is
unit-tested, validated against Kubernetes' own schemas, and run as is by ``podman kube play``
(tests/test_kube_play.py). ``am.backends.kubernetes`` creates them with ``kubectl`` and the
user's kubeconfig, context and namespace; nothing here calls anything.

One agent ``ID`` in a namespace is:

- the pod ``am-ID``: its container ``agent`` runs the agent on a terminal (``kubectl attach``
  is the session's client), as uid 1000 with no capabilities, no privilege escalation, a
  read-only root, the RuntimeDefault seccomp profile, no service account token, and the limits
  of ``--memory`` and ``--cpus``; ``--isolation gvisor`` is its ``runtimeClassName``;
- the workspace: the PersistentVolumeClaim ``am-ID-ws`` (kept while the agent is stopped), or
  an emptyDir that lives as long as the pod (``am-keep``, a second container, then holds the
  pod and its workspace after the agent ends, for diff, snapshot and the unsaved-work check);
- on the first start, the init container ``am-seed``: it waits for the bundle am delivers
  through ``kubectl exec`` (no ConfigMap or Secret holds more than 1 MiB), checks its sha256
  against the manifest's, and makes the workspace from it;
- the ConfigMap ``am-ID-run``: the scripts the containers run. Every value am puts in them
  (the agent's arguments, its prompt, the branch) is quoted for sh there, and never placed in a
  command, an argument or an env value of the pod, where Kubernetes would expand ``$(NAME)``;
- the NetworkPolicy ``am-ID``: no ingress; no egress at all for ``--network none``, only the
  agent's proxy for ``limited``. A limited agent's proxy is the pod ``am-ID-proxy``, squid with
  am's configuration (with its ConfigMap, its Service and a NetworkPolicy that lets only the
  agent in);
- the Secret ``am-ID-env``, when ``--env`` gives values: the pod takes them by reference.

Every object carries the labels ``am.agent`` (the id), ``am.role`` and ``am.home`` (a digest
of AM_HOME: a label value cannot hold a path). am deletes objects only by a selector that names
this AM_HOME's label.
"""

import hashlib
import json
import re
import shlex

from am.valueclass import field, value_class

POD_UID = 1000  # the image's agent user (Containerfile), who owns its /home/agent
WORKSPACE = "/workspace"
HOME = "/home/agent"
RUN_DIR = "/run/am"  # the ConfigMap of scripts, read-only
SEED_DIR = "/run/am-seed"
BUNDLE = f"{SEED_DIR}/source.bundle"
AGENT, SEEDER, KEEPER = "agent", "am-seed", "am-keep"
STORAGES = ("pvc", "emptydir")
DEFAULT_SIZE = "10Gi"
SEED_WAIT = 600  # seconds the init container waits for its bundle
OP_DEADLINE = 6 * 3600  # a workspace operation's pod ends by itself after this long
PROXY_PORT = 3128
PROXY_DIR = "/etc/am-proxy"
PROXY_UID = 65534
TMPFS_SIZE = "1Gi"
# kubectl exec's command into the waiting init container: the bundle arrives on its stdin and
# appears under its final name only once whole.
DELIVER = ["sh", "-c", f"cat > {SEED_DIR}/.part && mv {SEED_DIR}/.part {BUNDLE}"]
# What a workspace operation runs: the program arrives on stdin (an argument would travel in
# the URL of the exec request, which proxies in front of API servers may cap), and commands are
# found in the image's own folders, never first in the agent's writable home.
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT = (
    "import sys; s = sys.stdin.buffer.read(); sys.argv[0] = 'wsops'; "
    "exec(compile(s, 'wsops', 'exec'))"
)
# Agent ids become object names: DNS labels, and 'am-ID-proxy' within 63 characters.
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,45}[a-z0-9])?$")
NAMESPACE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
QUANTITY_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)?(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


class Invalid(ValueError):
    """A value Kubernetes would refuse, or read otherwise than meant."""


def check_name(agent_id: str) -> str:
    if not NAME_RE.fullmatch(agent_id):
        raise Invalid(
            f"agent name {agent_id!r} cannot name Kubernetes objects: lowercase "
            "letters, digits and '-', at most 47, starting and ending with a letter "
            "or digit"
        )
    return agent_id


def check_namespace(namespace: str) -> str:
    if not NAMESPACE_RE.fullmatch(namespace or ""):
        raise Invalid(f"invalid Kubernetes namespace {namespace!r}")
    return namespace


def check_context(context: str) -> str:
    """A kubeconfig context name: any text kubectl takes as one argument, not an option."""
    if not context or context.startswith("-") or len(context) > 253 or not context.isprintable():
        raise Invalid(f"invalid kubeconfig context {context!r}")
    return context


def check_quantity(value: str, what: str) -> str:
    if not QUANTITY_RE.fullmatch(str(value)):
        raise Invalid(f"invalid {what} {value!r}: a size such as 10Gi or 500Mi")
    return str(value)


def home_label(home: str) -> str:
    """The label value that marks an AM_HOME's objects (a path is not a label value)."""
    return hashlib.sha256(home.encode()).hexdigest()[:32]


def pod_name(agent_id: str) -> str:
    return f"am-{agent_id}"


def claim_name(agent_id: str) -> str:
    return f"am-{agent_id}-ws"


def proxy_name(agent_id: str) -> str:
    return f"am-{agent_id}-proxy"


def secret_name(agent_id: str) -> str:
    return f"am-{agent_id}-env"


def run_name(agent_id: str) -> str:
    return f"am-{agent_id}-run"


def op_name(agent_id: str, token: str) -> str:
    return f"am-{agent_id}-op-{token}"


def service_host_var(agent_id: str) -> str:
    """The variable Kubernetes gives pods for the proxy Service's address (service links)."""
    return proxy_name(agent_id).upper().replace("-", "_") + "_SERVICE_HOST"


def quantity(size_bytes: int) -> str:
    """Bytes as a Kubernetes quantity, in the largest binary unit that divides them."""
    for unit, factor in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if size_bytes % factor == 0:
            return f"{size_bytes // factor}{unit}"
    return str(size_bytes)


def millicores(cpus) -> str:
    return f"{max(1, round(float(cpus) * 1000))}m"


@value_class
class Target:
    """Where an agent's objects live: a kubeconfig (None: kubectl's own choice), a context
    (None: its current one) and a namespace, as resolved at spawn and recorded."""

    namespace: str
    context: str | None = None
    kubeconfig: str | None = None

    def argv(self, *args: str) -> list[str]:
        ctx = ["--context", self.context] if self.context else []
        return ["kubectl", *ctx, "--namespace", self.namespace, *args]

    def env(self, environ: dict) -> dict:
        """ENVIRON for kubectl, with the recorded kubeconfig."""
        env = dict(environ)
        if self.kubeconfig:
            env["KUBECONFIG"] = self.kubeconfig
        return env

    def record(self) -> dict:
        return {"namespace": self.namespace, "context": self.context, "kubeconfig": self.kubeconfig}


@value_class(frozen=False)
class Spec:
    """What an agent's objects depend on (from its plan)."""

    agent_id: str
    home: str
    image: str
    command: list[str]
    limits: dict
    network: str = "none"
    isolation: str = "runc"
    storage: str = "pvc"
    size: str = DEFAULT_SIZE
    storage_class: str | None = None
    env: dict = field(default_factory=dict)  # settings the agent sees (AM_PROMPT...): not secret
    secret_names: list = field(default_factory=list)  # --env names, values in the Secret
    gpus: int | None = None
    domains: list = field(default_factory=list)
    proxy_image: str = "am-proxy:2"
    private: list = field(default_factory=list)  # allowed names that may be local addresses
    seed: dict | None = None  # first start: sha256, branch, base, origin of the bundle


# -- labels ---------------------------------------------------------------------------------------


def labels(spec: Spec, role: str, **more: str) -> dict:
    return {"am.agent": spec.agent_id, "am.home": home_label(spec.home), "am.role": role, **more}


def selector(agent_id: str, home: str, *roles: str) -> str:
    """A label selector for this AM_HOME's objects of AGENT_ID (of ROLES, if given)."""
    sel = f"am.agent={agent_id},am.home={home_label(home)}"
    if roles:
        sel += f",am.role in ({','.join(roles)})"
    return sel


def meta(spec: Spec, name: str, role: str, **more: str) -> dict:
    return {"name": name, "labels": labels(spec, role, **more)}


# -- scripts (ConfigMap data: never expanded by Kubernetes) ---------------------------------------


def _assign(name: str, value: str, export: bool = False) -> str:
    return f"{'export ' if export else ''}{name}={shlex.quote(value)}"


SEED_BODY = f"""set -eu
bundle={BUNDLE}
n=0
until [ -f "$bundle" ]; do
  n=$((n + 1))
  if [ "$n" -gt {SEED_WAIT * 5} ]; then
    echo "am-seed: no bundle arrived within {SEED_WAIT} seconds" >&2
    exit 2
  fi
  sleep 0.2
done
if ! echo "$AM_BUNDLE_SHA256  $bundle" | sha256sum --check --status; then
  echo "am-seed: the bundle's sha256 is not the one am made" >&2
  exit 3
fi
cd {WORKSPACE}
git -c init.defaultBranch=am-seed init --quiet .
git fetch --quiet --no-tags "$bundle" '+refs/heads/*:refs/remotes/origin/*' \\
  '+refs/tags/*:refs/tags/*'
git remote add origin "$AM_ORIGIN"
git switch --quiet --no-track -c "$AM_BRANCH" "$AM_BASE"
rm -f "$bundle"
echo "am-seed: workspace made at $AM_BASE on branch $AM_BRANCH"
"""


def seed_script(seed: dict) -> str:
    """The init container's script: the bundle's values (quoted), then a constant body."""
    return "\n".join(
        [
            "# am: makes the workspace from the bundle am delivers (generated)",
            _assign("AM_BUNDLE_SHA256", seed["sha256"]),
            _assign("AM_BRANCH", seed["branch"]),
            _assign("AM_BASE", seed["base"]),
            _assign("AM_ORIGIN", seed["origin"]),
            SEED_BODY,
        ]
    )


def agent_script(spec: Spec) -> str:
    """The agent container's script: its settings and arguments (quoted), a wait for am's
    client, then the agent as a child of this shell (the container's first process, which
    ignores signals it has no handler for; the agent gets Ctrl-C from its terminal)."""
    lines = [f"# am: runs agent {spec.agent_id} (generated; every value is quoted data)"]
    lines += [_assign(k, v, export=True) for k, v in sorted(spec.env.items())]
    if spec.network == "limited":
        host = service_host_var(spec.agent_id)
        url = f'"http://${{{host}}}:{PROXY_PORT}"'
        lines += [
            f"export {k}={url}" for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
        ]
        lines += [
            _assign(k, "localhost,127.0.0.1,::1", export=True) for k in ("NO_PROXY", "no_proxy")
        ]
    lines += [
        # Until am's client attaches, the terminal has no size: what the agent prints from its
        # first line on reaches the session, and so am's log.
        'while [ "$(stty size 2>/dev/null)" = "0 0" ]; do sleep 0.1; done',
        f"cd {WORKSPACE}",
        "set -- " + " ".join(shlex.quote(a) for a in spec.command),
        '"$@"',
        "exit $?",
        "",
    ]
    return "\n".join(lines)


# -- objects --------------------------------------------------------------------------------------


def _security() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security(uid: int) -> dict:
    return {
        "runAsUser": uid,
        "runAsGroup": uid,
        "runAsNonRoot": True,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_base(uid: int, grace: int, service_links: bool = False) -> dict:
    """What every pod of am has: run once, as UID, no service account token, none of the
    node's namespaces (said explicitly, for whoever audits the spec), and GRACE seconds to
    end."""
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "enableServiceLinks": service_links,
        "terminationGracePeriodSeconds": grace,
        "securityContext": _pod_security(uid),
    }


def _resources(spec: Spec) -> dict:
    from am.validate import memory_bytes

    limits = {
        "memory": quantity(memory_bytes(str(spec.limits["memory"]))),
        "cpu": millicores(spec.limits["cpus"]),
    }
    if spec.gpus:
        limits["nvidia.com/gpu"] = str(spec.gpus)
    return {"limits": limits, "requests": dict(limits)}


def _vol(spec: Spec, what: str) -> str:
    # Pod-local names in Kubernetes; podman kube play makes each emptyDir a named volume, so
    # they carry the agent's id there.
    return f"am-{spec.agent_id}-{what}"


def _memory_dir(name: str) -> dict:
    return {"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": TMPFS_SIZE}}


def _container(spec: Spec, name: str, command: list[str], mounts: list[dict], **more) -> dict:
    return {
        "name": name,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "securityContext": _security(),
        "resources": _resources(spec),
        "volumeMounts": mounts,
        **more,
    }


def workspace_volume(spec: Spec, read_only: bool = False) -> dict:
    name = _vol(spec, "ws")
    if spec.storage == "emptydir":
        return {"name": name, "emptyDir": {}}
    return {
        "name": name,
        "persistentVolumeClaim": {"claimName": claim_name(spec.agent_id), "readOnly": read_only},
    }


def claim(spec: Spec) -> dict:
    body = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": spec.size}}}
    if spec.storage_class:
        body["storageClassName"] = spec.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(spec, claim_name(spec.agent_id), "workspace"),
        "spec": body,
    }


def agent_pod(spec: Spec) -> dict:
    from am import isolation

    ws, tmp, home, run = (_vol(spec, v) for v in ("ws", "tmp", "home", "run"))
    mounts = [
        {"name": ws, "mountPath": WORKSPACE},
        {"name": tmp, "mountPath": "/tmp"},
        {"name": home, "mountPath": HOME},
        {"name": run, "mountPath": RUN_DIR, "readOnly": True},
    ]
    env = [{"name": "HOME", "value": HOME}, {"name": "TERM", "value": "xterm-256color"}]
    env += [
        {"name": n, "valueFrom": {"secretKeyRef": {"name": secret_name(spec.agent_id), "key": n}}}
        for n in spec.secret_names
    ]
    containers = [
        _container(
            spec,
            AGENT,
            ["sh", f"{RUN_DIR}/agent.sh"],
            mounts,
            env=env,
            workingDir=WORKSPACE,
            stdin=True,
            tty=True,
        )
    ]
    volumes = [
        workspace_volume(spec),
        _memory_dir(tmp),
        _memory_dir(home),
        {"name": run, "configMap": {"name": run_name(spec.agent_id), "defaultMode": 0o444}},
    ]
    if spec.storage == "emptydir":
        # Holds the pod, and so its workspace, once the agent has ended; the workspace
        # operations run here, read-only.
        ktmp = _vol(spec, "ktmp")
        keeper = _container(
            spec,
            KEEPER,
            ["sleep", "infinity"],
            [
                {"name": ws, "mountPath": WORKSPACE, "readOnly": True},
                {"name": ktmp, "mountPath": "/tmp"},
            ],
            env=[{"name": "HOME", "value": "/tmp"}],
        )
        keeper["resources"]["requests"] = {"memory": "16Mi", "cpu": "10m"}
        containers.append(keeper)
        volumes.append(_memory_dir(ktmp))
    body = {
        # Service links give a limited agent its proxy's address; nothing else needs them.
        **_pod_base(POD_UID, 5, service_links=spec.network == "limited"),
        "containers": containers,
        "volumes": volumes,
    }
    runtime_class = isolation.runtime_class(spec.isolation)
    if runtime_class:
        body["runtimeClassName"] = runtime_class
    if spec.seed is not None:
        seed = _vol(spec, "seed")
        body["initContainers"] = [
            _container(
                spec,
                SEEDER,
                ["sh", f"{RUN_DIR}/seed.sh"],
                [
                    {"name": ws, "mountPath": WORKSPACE},
                    {"name": seed, "mountPath": SEED_DIR},
                    {"name": tmp, "mountPath": "/tmp"},
                    {"name": run, "mountPath": RUN_DIR, "readOnly": True},
                ],
                env=[{"name": "HOME", "value": "/tmp"}],
            )
        ]
        volumes.append({"name": seed, "emptyDir": {}})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(spec, pod_name(spec.agent_id), "agent"),
        "spec": body,
    }


def run_config(spec: Spec) -> dict:
    data = {"agent.sh": agent_script(spec)}
    if spec.seed is not None:
        data["seed.sh"] = seed_script(spec.seed)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(spec, run_name(spec.agent_id), "agent"),
        "data": data,
    }


def agent_policy(spec: Spec) -> dict:
    """No ingress; egress: none at all, or only the agent's proxy (limited), or any (full)."""
    pod = {"matchLabels": labels(spec, "agent")}
    body = {"podSelector": pod, "policyTypes": ["Ingress"], "ingress": []}
    if spec.network in ("none", "limited"):
        body["policyTypes"].append("Egress")
        body["egress"] = (
            []
            if spec.network == "none"
            else [
                {
                    "to": [{"podSelector": {"matchLabels": labels(spec, "proxy")}}],
                    "ports": [{"protocol": "TCP", "port": PROXY_PORT}],
                }
            ]
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(spec, pod_name(spec.agent_id), "agent"),
        "spec": body,
    }


def proxy_config_text(spec: Spec) -> dict:
    """squid's configuration for a proxy pod: am's own (network.py: the allowlist, no local
    addresses but the names allowed as private, ports 80 and 443), listening on the pod's
    address instead of loopback, and logging requests to its output (``kubectl logs``)."""
    from am.backends import network

    conf = network.config_text(spec.agent_id, list(spec.domains), list(spec.private), [])
    changes = {
        f"http_port 127.0.0.1:{network.PROXY_PORT}\n": f"http_port {PROXY_PORT}\n",
        f"access_log stdio:{network.LOG_PATH} am\n": "access_log stdio:/dev/stdout am\n",
    }
    for old, new in changes.items():
        if old not in conf:
            raise Invalid(f"the proxy's configuration no longer has {old.strip()!r}")
        conf = conf.replace(old, new)
    return {network.CONF_NAME: conf}


def proxy_objects(spec: Spec) -> list[dict]:
    name = proxy_name(spec.agent_id)
    conf = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(spec, name, "proxy"),
        "data": proxy_config_text(spec),
    }
    vol = _vol(spec, "proxyconf")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(spec, name, "proxy"),
        "spec": {
            **_pod_base(PROXY_UID, 2),
            "containers": [
                {
                    "name": "proxy",
                    "image": spec.proxy_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/usr/sbin/squid", "-N", "-f", f"{PROXY_DIR}/squid.conf"],
                    "securityContext": _security(),
                    "resources": {
                        "limits": {"memory": "128Mi", "cpu": "500m"},
                        "requests": {"memory": "32Mi", "cpu": "50m"},
                    },
                    "volumeMounts": [{"name": vol, "mountPath": PROXY_DIR, "readOnly": True}],
                }
            ],
            "volumes": [{"name": vol, "configMap": {"name": name, "defaultMode": 0o444}}],
        },
    }
    from am import isolation

    if isolation.runtime_class(spec.isolation):
        pod["spec"]["runtimeClassName"] = isolation.runtime_class(spec.isolation)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(spec, name, "proxy"),
        "spec": {
            "selector": labels(spec, "proxy"),
            "ports": [{"port": PROXY_PORT, "targetPort": PROXY_PORT, "protocol": "TCP"}],
        },
    }
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(spec, name, "proxy"),
        "spec": {
            "podSelector": {"matchLabels": labels(spec, "proxy")},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": labels(spec, "agent")}}],
                    "ports": [{"protocol": "TCP", "port": PROXY_PORT}],
                }
            ],
        },
    }
    return [policy, conf, service, pod]


def env_secret(spec: Spec, values: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta(spec, secret_name(spec.agent_id), "env"),
        "stringData": {n: values[n] for n in spec.secret_names},
    }


def manifests(spec: Spec, secrets: dict | None = None) -> list[dict]:
    """Every object of one start of the agent of SPEC, in the order they must be created:
    policies before the pods they guard, what a pod mounts before the pod. With a seed (the
    first start) the workspace's claim too; SECRETS: the --env values, in a Secret only."""
    if spec.storage not in STORAGES:
        raise Invalid(f"unknown workspace storage {spec.storage!r}")
    check_name(spec.agent_id)
    objects = [agent_policy(spec)]
    if spec.network == "limited":
        objects += proxy_objects(spec)
    if spec.seed is not None and spec.storage == "pvc":
        objects.append(claim(spec))
    if spec.secret_names:
        objects.append(env_secret(spec, secrets or {}))
    objects += [run_config(spec), agent_pod(spec)]
    return objects


def op_manifests(spec: Spec, token: str) -> list[dict]:
    """A pod that reads a stopped agent's workspace claim (read-only) for one operation: the
    agent's image, user, policy and limits, no network at all, gone within OP_DEADLINE."""
    from am import isolation

    name = op_name(spec.agent_id, token)
    ws, tmp = _vol(spec, "ws"), _vol(spec, f"t{token}")
    pod_labels = labels(spec, "op", **{"am.op": token})
    container = _container(
        spec,
        "op",
        ["sleep", str(OP_DEADLINE)],
        [
            {"name": ws, "mountPath": WORKSPACE, "readOnly": True},
            {"name": tmp, "mountPath": "/tmp"},
        ],
        env=[{"name": "HOME", "value": "/tmp"}],
    )
    body = {
        **_pod_base(POD_UID, 1),
        "activeDeadlineSeconds": OP_DEADLINE,
        "containers": [container],
        "volumes": [workspace_volume(spec, read_only=True), _memory_dir(tmp)],
    }
    if isolation.runtime_class(spec.isolation):
        body["runtimeClassName"] = isolation.runtime_class(spec.isolation)
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {**meta(spec, name, "op"), "labels": pod_labels},
        "spec": {
            "podSelector": {"matchLabels": pod_labels},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [],
        },
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**meta(spec, name, "op"), "labels": pod_labels},
        "spec": body,
    }
    return [policy, pod]


def as_list(objects: list[dict]) -> str:
    """OBJECTS as one JSON document for ``kubectl create -f -``."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})


def as_yaml_stream(objects: list[dict]) -> str:
    """OBJECTS as a multi-document stream (JSON is YAML) for ``podman kube play``."""
    return "\n---\n".join(json.dumps(o) for o in objects) + "\n"


# -- kubectl command lines ------------------------------------------------------------------------

# Every kind am creates for a start of an agent; the claim is the workspace, deleted apart.
RUN_KINDS = "pods,services,configmaps,secrets,networkpolicies"


def create_argv(t: Target) -> list[str]:
    """Create the objects on stdin; fails on any that exists (never takes over another's)."""
    return t.argv("create", "--filename", "-", "--output", "name")


def get_pod_argv(t: Target, pod: str) -> list[str]:
    return t.argv("get", "pod", pod, "--ignore-not-found", "--output", "json")


def attach_argv(t: Target, pod: str) -> list[str]:
    """The session's client: the agent's own terminal."""
    return t.argv("attach", "--quiet", "--stdin", "--tty", pod, "--container", AGENT)


def exec_argv(
    t: Target, pod: str, container: str, command: list[str], stdin: bool = True
) -> list[str]:
    return t.argv(
        "exec", *(["--stdin"] if stdin else []), pod, "--container", container, "--", *command
    )


def wsops_command(args: list[str]) -> list[str]:
    """wsops in a pod's container: its program on stdin, the image's own PATH."""
    return ["/usr/bin/env", f"PATH={SANDBOX_PATH}", "python3", "-I", "-c", BOOT, *args]


def delete_argv(t: Target, kinds: str, sel: str, wait: bool = True) -> list[str]:
    return t.argv(
        "delete",
        kinds,
        "--selector",
        sel,
        "--ignore-not-found",
        f"--wait={'true' if wait else 'false'}",
        "--timeout=120s",
    )


def logs_argv(t: Target, pod: str, container: str, tail: int | None = None) -> list[str]:
    return t.argv(
        "logs", pod, "--container", container, *([f"--tail={tail}"] if tail is not None else [])
    )


def current_context_argv() -> list[str]:
    return ["kubectl", "config", "current-context"]


def context_namespace_argv(context: str | None) -> list[str]:
    ctx = ["--context", context] if context else []
    return ["kubectl", "config", "view", "--minify", *ctx, "--output", "jsonpath={..namespace}"]


def version_argv(t: Target) -> list[str]:
    ctx = ["--context", t.context] if t.context else []
    return ["kubectl", *ctx, "version", "--output", "json"]


# -- pod status (pure) ----------------------------------------------------------------------------


@value_class
class State:
    """One container's state, as the pod's status tells it."""

    phase: str  # waiting | running | terminated | missing
    reason: str = ""
    message: str = ""
    exit_code: int | None = None

    @property
    def oom(self) -> bool:
        return self.reason == "OOMKilled"


def container_state(pod: dict | None, name: str, init: bool = False) -> State:
    """The state of container NAME (an init container if INIT) in POD's status."""
    if not isinstance(pod, dict):
        return State("missing", "pod not found")
    key = "initContainerStatuses" if init else "containerStatuses"
    for status in (pod.get("status") or {}).get(key) or []:
        if not isinstance(status, dict) or status.get("name") != name:
            continue
        state = status.get("state") or {}
        for phase in ("terminated", "running", "waiting"):
            if isinstance(state.get(phase), dict):
                s = state[phase]
                code = s.get("exitCode")
                return State(
                    phase,
                    str(s.get("reason") or ""),
                    str(s.get("message") or ""),
                    code if isinstance(code, int) else None,
                )
    return State("waiting", "", pod_problem(pod))


def pod_problem(pod: dict) -> str:
    """Why POD is not running yet, as its conditions say (unschedulable, say)."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("status") == "False" and cond.get("message"):
            return str(cond["message"])
    return ""


def parse_pod(text: str) -> dict | None:
    """``kubectl get pod -o json`` output (empty with --ignore-not-found) as a dict."""
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("kind") == "Pod" else None


PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")

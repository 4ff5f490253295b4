"""Kubernetes: each agent a pod in the user's cluster, driven through ``kubectl``.

No client library: kubectl is the contract, so the user's kubeconfig, its contexts, exec
credential plugins and proxies work as configured. The context and namespace are resolved once,
at spawn, and recorded; every later call names them. The objects come from ``am.kube``'s one
pure function; this module creates them, delivers the workspace's bundle into the waiting init
container, and removes them, only ever by a label selector naming this AM_HOME.

The session's client is ``kubectl attach``; the supervisor attaches again when a connection
drops while the agent runs, and reads the exit code and an OOM kill from the pod's status.
"""

import contextlib
import hashlib
import os
import sys
import time
from pathlib import Path

from am import kube, proc
from am.backends.base import Backend
from am.errors import AmError
from am.valueclass import replace

INSTALL_HINT = (
    "install kubectl (Kubernetes' own package repository, or your cluster "
    "vendor's SDK) and set up a kubeconfig context for the cluster"
)
RBAC_HINT = (
    "ask your cluster's admin for the rights to create and delete pods, pods/exec, "
    "pods/attach, persistentvolumeclaims, configmaps, secrets, services and "
    "networkpolicies in the namespace"
)
START_TIMEOUT = 600  # seconds for a pod to be scheduled, pull its image and seed its workspace
OP_TIMEOUT = 300  # seconds for a workspace operation's pod to start
# What the session's client needs of the caller's environment at once (the rest of it comes
# through the supervisor's FIFO).
FORWARDED_ENV = ("PATH", "HOME", "KUBECONFIG")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def call(argv: list[str], *, stdin: str | None = None, timeout: float = 120) -> proc.Result:
    try:
        return proc.run(argv, stdin=stdin, timeout=timeout)
    except proc.NotFound:
        raise AmError("kubectl not found in PATH", INSTALL_HINT) from None


def explain(text: str, t: kube.Target | None = None) -> AmError:
    """Turn kubectl's failure text into one clear error with its fix."""
    low = text.lower()
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else "no output"
    where = f"namespace {t.namespace} of context {t.context}" if t and t.context else "the cluster"
    if "alreadyexists" in low or "already exists" in low:
        return AmError(
            f"{last.removeprefix('Error from server (AlreadyExists): ')} in {where}",
            "an agent of the same name from another AM_HOME, or a leftover: "
            "'am clean --containers', or choose another --name",
        )
    if "forbidden" in low:
        return AmError(f"Kubernetes refused: {last}", RBAC_HINT)
    if "doesn't have a resource type" in low:
        # An older kubectl (Debian 12's 1.20) asks for the API's resource list first and says
        # only this when the server refuses it.
        return AmError(f"Kubernetes refused kubectl the list of its resources: {last}", RBAC_HINT)
    if "cannot locate context" in low or "context was not found" in low:
        return AmError(
            f"kubectl has no context of that name: {last}",
            "'kubectl config get-contexts' lists them: fix AM_KUBE_CONTEXT "
            "(kubernetes.context in config.toml), or leave it empty for the "
            "current one",
        )
    if any(
        s in low
        for s in (
            "current-context is not set",
            "no configuration has been provided",
            "does not exist",
        )
    ):
        return AmError(
            f"kubectl has no usable context: {last}",
            "set up a kubeconfig for your cluster (~/.kube/config or KUBECONFIG, "
            "as its vendor's tools make it), then 'kubectl config use-context "
            "NAME', or set AM_KUBE_CONTEXT (kubernetes.context in config.toml)",
        )
    if any(s in low for s in ("must be logged in", "unauthorized", "provide credentials")):
        return AmError(
            f"the cluster refused kubectl's credentials: {last}",
            "log in again (your cluster vendor's login, or refresh the "
            "kubeconfig's token), then check with 'kubectl get pods'",
        )
    if any(
        s in low
        for s in (
            "unable to connect",
            "connection refused",
            "was refused",
            "no such host",
            "i/o timeout",
            "couldn't get current server api",
        )
    ):
        return AmError(
            f"cannot reach {where}: {last}", "check 'kubectl cluster-info' with the same context"
        )
    return AmError(f"kubectl failed: {last}")


def target_of(record: dict) -> kube.Target:
    k = record.get("kubernetes") or {}
    return kube.Target(k.get("namespace") or "default", k.get("context"), k.get("kubeconfig"))


def kubeconfig_path(environ=os.environ) -> str | None:
    """The caller's KUBECONFIG when it names one file (recorded, so later commands find the
    same cluster); a list of files is left to the environment."""
    value = environ.get("KUBECONFIG", "")
    if value and os.pathsep not in value:
        return os.path.abspath(os.path.expanduser(value))
    return None


def spec_of(plan, home: str) -> kube.Spec:
    k = plan.kube
    return kube.Spec(
        agent_id=plan.id,
        home=home,
        image=plan.image,
        command=plan.agent_argv(),
        limits=plan.limits,
        network=plan.network,
        isolation=plan.isolation or "runc",
        storage=k["storage"],
        size=k["size"],
        storage_class=k.get("storage_class"),
        env=dict(plan.env),
        secret_names=[n for n in plan.env_names if n in plan.secrets],
        gpus=int(plan.gpus) if plan.gpus else None,
        domains=list(plan.allow_domains),
        private=list(plan.allow_private_domains),
        proxy_image=k["proxy_image"],
        seed=getattr(plan, "seed", None),
    )


def get_pod(t: kube.Target, pod: str) -> dict | None:
    """POD's object, None if there is none; AmError when the cluster does not answer."""
    res = call(kube.get_pod_argv(t, pod), timeout=60)
    if not res.ok:
        raise explain(res.err or res.out, t)
    return kube.parse_pod(res.out)


def wait_for(
    t: kube.Target,
    pod: str,
    container: str,
    *,
    init: bool = False,
    timeout: float = START_TIMEOUT,
    quiet: bool = False,
) -> None:
    """Return once CONTAINER of POD runs; raise with the reason when it cannot."""
    deadline = time.monotonic() + timeout
    said = ""
    while True:
        state = kube.container_state(get_pod(t, pod), container, init=init)
        if state.phase == "running":
            return
        if state.phase == "missing":
            raise AmError(f"the pod {pod} is gone")
        if state.phase == "terminated":
            tail = call(kube.logs_argv(t, pod, container, tail=5), timeout=60)
            text = (tail.out or tail.err).strip().splitlines()
            raise AmError(
                f"the container {container} of pod {pod} ended ({state.reason or 'exit'}"
                f" {state.exit_code})" + (f": {text[-1]}" if text else "")
            )
        if state.reason in kube.PULL_REASONS:
            why = state.message or state.reason
            raise AmError(
                f"the cluster cannot pull the image of pod {pod}: {why}",
                "push the image to a registry the cluster reaches "
                "('am image build --push REGISTRY') and spawn with --image "
                "REGISTRY/am-agent:TAG",
            )
        now = state.reason or state.message
        if now and now != said and not quiet:
            say(f"  pod {pod}: {now}")
            said = now
        if time.monotonic() > deadline:
            raise AmError(
                f"the pod {pod} did not start within {timeout:.0f}s" + (f": {now}" if now else "")
            )
        time.sleep(0.5)


class Kubernetes(Backend):
    """Agents as pods of the cluster that kubectl's context names."""

    mode = "container"
    runtime = "kubernetes"
    title = "Kubernetes"
    network_log_live = False  # the host's network log gets the proxy pod's when the agent ends

    def check(self) -> None:
        if not proc.which("kubectl"):
            raise AmError("kubectl not found in PATH", INSTALL_HINT)

    # -- spawn and start ------------------------------------------------------------------

    def resolve(self, asked: dict) -> tuple[kube.Target, dict]:
        """The context and namespace of a new agent: the configured ones (in ASKED, the plan's
        settings), else kubectl's current context and its namespace; and the settings with
        them, which the plan takes (and records with the agent)."""
        k = dict(asked)
        if not k.get("context"):
            res = call(kube.current_context_argv(), timeout=30)
            if not res.ok or not res.out.strip():
                raise explain(res.err or "current-context is not set")
            k["context"] = res.out.strip()
        if not k.get("namespace"):
            res = call(kube.context_namespace_argv(k["context"]), timeout=30)
            if not res.ok:
                raise explain(res.err or res.out)
            k["namespace"] = res.out.strip() or "default"
        try:
            kube.check_context(k["context"])
            kube.check_namespace(k["namespace"])
        except kube.Invalid as e:
            raise AmError(str(e)) from None
        k.setdefault("kubeconfig", kubeconfig_path(self.environ))
        return kube.Target(k["namespace"], k["context"], k.get("kubeconfig")), k

    def prepare(self, plan):
        self.check()
        t, settings = self.resolve(plan.kube)
        plan = replace(plan, kube=settings)
        res = call(
            t.argv(
                "get", "pods", "--selector", "am.agent", "--output", "name", "--request-timeout=30s"
            ),
            timeout=60,
        )
        if not res.ok:
            raise explain(res.err or res.out, t)
        if "/" not in plan.image.split(":")[0] and not plan.image.startswith("localhost"):
            say(
                f"am: note: image {plan.image} names no registry: the cluster's nodes must "
                "have it already (else push one: 'am image build --push REGISTRY', then "
                "--image REGISTRY/am-agent:TAG)"
            )
        return plan

    def make_seed(self, plan, undo, layout):
        """The bundle the pod's workspace is made from: the source's branches and tags and
        the base commit, from the user's own repository (or am's cache mirror of a URL), on
        this host. Returns the base commit and PLAN with its seed and bundle."""
        from am import cache, git

        if git.is_url(plan.source):
            mirror = cache.mirror_path(plan.cache_dir, plan.source)
            with cache.locked(mirror):
                cache.update(plan.source, mirror)
                base, bundle, seed = self._bundle(plan, mirror, undo, layout)
        else:
            base, bundle, seed = self._bundle(plan, Path(plan.source), undo, layout)
        return base, replace(plan, bundle=bundle, seed=seed)

    def _bundle(self, plan, repo: Path, undo, layout) -> tuple[str, Path, dict]:
        """Bundle REPO for PLAN: (its base commit, the bundle's path, the seed it is for)."""
        from am import git

        env = git.source_env()
        base = None
        for ref in ["HEAD"] if plan.base is None else [f"refs/heads/{plan.base}", plan.base]:
            res = proc.run(
                [
                    "git",
                    "-C",
                    str(repo),
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    "--end-of-options",
                    f"{ref}^{{commit}}",
                ],
                env=env,
            )
            if res.ok:
                base = res.out.strip()
                break
        if base is None:
            raise AmError(
                "the source has no commits to start from"
                if plan.base is None
                else f"base {plan.base!r} is not a branch, tag or commit of the source"
            )
        layout.run.mkdir(parents=True, exist_ok=True)
        path = layout.run / f"{plan.id}.bundle"
        undo.push(_unlink, path)
        head = proc.run(
            ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", "HEAD"], env=env
        ).ok
        res = proc.run(
            [
                "git",
                "-C",
                str(repo),
                "bundle",
                "create",
                "--quiet",
                str(path),
                "--branches",
                "--tags",
                *(["HEAD"] if head else []),
                base,
            ],
            env=env,
        )
        if not res.ok:
            raise AmError(f"cannot bundle {plan.source}: {res.brief()}")
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        seed = {
            "sha256": digest.hexdigest(),
            "branch": plan.branch,
            "base": base,
            "origin": plan.source,
        }
        say(f"Bundled {path.stat().st_size / 1e6:.1f} MB of {plan.source} for the pod")
        return base, path, seed

    def before_start(self, plan):
        """Create the agent's objects, seed its workspace on the first start, and return once
        the agent's container runs (its agent waits for the session's client); returns PLAN
        with the environment the session's client gets."""
        home = str(self.layout.root)
        t, _ = self.resolve(plan.kube)
        pod = kube.pod_name(plan.id)
        try:
            objects = kube.manifests(spec_of(plan, home), plan.secrets)
        except kube.Invalid as e:
            raise AmError(str(e)) from None
        say(f"Creating pod {pod} in namespace {t.namespace} of context {t.context} ...")
        res = call(kube.create_argv(t), stdin=kube.as_list(objects))
        if not res.ok:
            raise explain(res.err or res.out, t)
        if plan.seed:
            wait_for(t, pod, kube.SEEDER, init=True)
            res = proc.run_file(
                kube.exec_argv(t, pod, kube.SEEDER, kube.DELIVER), plan.bundle, timeout=3600
            )
            if not res.ok:
                raise AmError(
                    f"cannot deliver the workspace's bundle to pod {pod}: "
                    f"{explain(res.err or res.out, t).message}"
                )
            _unlink(plan.bundle)
        wait_for(t, pod, kube.AGENT)
        # The session's kubectl runs as the caller does: their whole environment (a cloud
        # credential plugin's variables too), handed to the supervisor through the FIFO as a
        # tmux agent's is, never written to a file. The agent's own values are in the Secret.
        from am.plan import inherited_env

        return replace(plan, secrets={**inherited_env(dict(self.environ)), **plan.secrets})

    def launch_spec(self, plan):
        from am.launchspec import KubeSpec, LaunchSpec

        t, _ = self.resolve(plan.kube)
        folder = self.layout.run / plan.id
        folder.mkdir(parents=True, exist_ok=True)
        env = {k: self.environ[k] for k in FORWARDED_ENV if k in self.environ}
        return LaunchSpec(
            argv=kube.attach_argv(t, kube.pod_name(plan.id)),
            cwd=str(folder),
            env=env,
            log=str(plan.log),
            kubernetes=KubeSpec(
                **t.record(),
                pod=kube.pod_name(plan.id),
                agent=plan.id,
                home=str(self.layout.root),
                storage=plan.kube["storage"],
                network_log=str(plan.network_files.log) if plan.network == "limited" else None,
            ),
        )

    def after_start(self, plan, session_alive) -> None:
        if not session_alive():
            raise AmError(f"the session of agent {plan.id} ended at once; see 'am logs {plan.id}'")

    def figures(self, views: list[dict]) -> dict[str, tuple[dict | None, str | None]]:
        """None: a cluster gives a pod's figures only through its metrics server, which many
        clusters lack."""
        why = "a cluster gives a pod's figures only through its metrics server ('kubectl top')"
        return {v["id"]: (None, why) for v in views}

    def proxy_log(self, record: dict) -> str:
        """The output of the agent's proxy pod."""
        t = target_of(record)
        res = call(kube.logs_argv(t, kube.proxy_name(record["id"]), "proxy"))
        if not res.ok:
            raise explain(res.err or res.out, t)
        return res.out

    # -- stop and remove ------------------------------------------------------------------

    def stop(self, record: dict) -> None:
        """End the agent. A claim-backed agent: delete its pod and what came with it (the
        claim, its workspace, stays). An emptyDir agent: kill the agent's processes, keeping
        the pod, whose second container holds the workspace."""
        t = target_of(record)
        home = str(self.layout.root)
        storage = (record.get("kubernetes") or {}).get("storage")
        try:
            if storage == "emptydir":
                pod = get_pod(t, kube.pod_name(record["id"]))
                if (
                    pod
                    and kube.home_label(home) == pod["metadata"].get("labels", {}).get("am.home")
                    and kube.container_state(pod, kube.AGENT).phase == "running"
                ):
                    call(
                        kube.exec_argv(
                            t,
                            kube.pod_name(record["id"]),
                            kube.AGENT,
                            ["kill", "-KILL", "-1"],
                            stdin=False,
                        )
                    )
                sel = kube.selector(record["id"], home, "proxy", "env")
            else:
                sel = kube.selector(record["id"], home)
            res = call(kube.delete_argv(t, kube.RUN_KINDS, sel), timeout=180)
            if not res.ok:
                raise explain(res.err or res.out, t)
        except AmError as e:
            say(
                f"am: warning: could not stop pod {kube.pod_name(record['id'])} in namespace "
                f"{t.namespace}: {e.message}; it may still run: 'am stop {record['id']}' again "
                "once the cluster answers"
            )
            raise

    def delete_workspace(self, record: dict) -> None:
        """Delete everything of the agent in the cluster, its workspace (claim) included:
        only objects labelled for this AM_HOME."""
        t = target_of(record)
        sel = kube.selector(record["id"], str(self.layout.root))
        res = call(
            kube.delete_argv(t, f"{kube.RUN_KINDS},persistentvolumeclaims", sel), timeout=180
        )
        if not res.ok:
            raise explain(res.err or res.out, t)


def _unlink(path) -> None:
    if path:
        with contextlib.suppress(FileNotFoundError):
            Path(path).unlink()


def recorded_spec(record: dict, home: str) -> kube.Spec:
    """What a workspace operation's pod takes of a (checked) record: the agent's image,
    limits, isolation and workspace."""
    from am import validate

    k = record.get("kubernetes") or {}
    return kube.Spec(
        agent_id=record["id"],
        home=home,
        image=record.get("image") or validate.DEFAULT_IMAGE,
        command=[],
        limits=record.get("limits") or validate.DEFAULT_LIMITS,
        isolation=record.get("isolation") or "runc",
        storage=k.get("storage") or "pvc",
    )

"""Kernel isolation of container agents: ``runc`` shares the host's kernel, ``gvisor`` puts
gVisor's user-space kernel (``runsc``) between the agent and the host's.

Composition only (pure, unit-tested): the start of a ``run`` command line for an isolation and
a network policy, and the process limit, which gVisor enforces inside its own kernel. Every
container am starts for an agent composes its command line here, so anything run in an agent's
name (its container, a throwaway container over its workspace) gets the agent's isolation.

Why the flags (docs/security.md, "Kernel isolation"):

- ``network=none`` for ``none`` and ``limited``: gVisor's own loopback and nothing else. Its
  own network stack over the container's interfaces (``network=sandbox``) cannot start on
  these hosts: the 2022 runsc takes every network namespace for the host's on Linux 5.x and
  later ("cannot run with network enabled in root network namespace").
- ``network=host`` for ``full``: gVisor passes the agent's sockets to the host kernel, inside
  the container's own network namespace (its bridge interface, not the host's).
- ``host-uds=all`` for ``limited`` only: the relay inside the agent connects to its proxy's
  unix socket, a host socket in a bind-mounted folder, and with ``--publish`` makes the
  sockets the proxy connects to; gVisor refuses both by default. (A runc container may always
  do both in its mounts.)
- A limited agent's proxy (``proxy``) parses whatever the agent sends, so it runs under the
  agent's isolation too: ``network=host`` for its outside network, and ``host-uds=all`` to
  serve its socket in the folder the agent mounts and reach the agent's published ones.

Podman takes runsc and these flags per container (``--runtime``, ``--runtime-flag``). Docker
takes only a runtime's name, so ``scripts/engines-up.sh`` registers one runtime per network
policy (and one for proxies) in dockerd's configuration (``docker_runtimes``).
"""

ISOLATIONS = ("runc", "gvisor")
DEFAULT = "runc"
RUNSC = "runsc"
RUNSC_FLAGS = {
    "none": ("network=none",),
    "limited": ("network=none", "host-uds=all"),
    "full": ("network=host",),
    "proxy": ("network=host", "host-uds=all"),  # a limited agent's proxy
}
# Kubernetes: the RuntimeClass a pod of this isolation names (None: the cluster's default).
RUNTIME_CLASSES = {"runc": None, "gvisor": "gvisor"}
# Host tasks the sandbox itself runs (gVisor's kernel and file proxy threads) beyond its agent's
# processes, and how many host tasks each agent process may cost (the ptrace platform's stub
# threads, up to about one per host CPU). Measured on 2 cores: ~45, then ~5 per process.
SANDBOX_TASKS = 256
TASKS_PER_PROCESS = 4


def docker_runtime(network: str) -> str:
    """The name dockerd knows gVisor by for an agent with network policy NETWORK (or for a
    limited agent's proxy: ``proxy``)."""
    return f"am-runsc-{network}"


def docker_runtimes(path: str) -> dict[str, dict]:
    """dockerd's ``runtimes`` entries for gVisor, one per network policy and one for proxies,
    runsc at PATH."""
    return {
        docker_runtime(net): {"path": path, "runtimeArgs": [f"--{f}" for f in flags]}
        for net, flags in RUNSC_FLAGS.items()
    }


def runtime_class(isolation: str) -> str | None:
    """The Kubernetes ``runtimeClassName`` of a pod with ISOLATION."""
    return RUNTIME_CLASSES[isolation]


def run_head(engine: str, isolation: str, network: str) -> list[str]:
    """The start of a ``run`` command line on ENGINE (docker or podman) for a container of
    ISOLATION with network policy NETWORK (``proxy``: a limited agent's proxy), up to and
    including the run's own runtime option: ``[engine, ..., "run", ...]``."""
    if isolation == "runc":
        # The engine's own runtime (runc, or crun where that is the default).
        return [engine, "run"]
    if isolation != "gvisor":
        raise ValueError(f"unknown isolation {isolation!r}")
    if engine == "podman":
        flags = [a for f in RUNSC_FLAGS[network] for a in ("--runtime-flag", f)]
        return [engine, "--runtime", RUNSC, *flags, "run"]
    return [engine, "run", "--runtime", docker_runtime(network)]


def engine_options(engine: str, isolation: str, network: str) -> list[str]:
    """The engine's own options before its command (podman's gVisor runtime and its flags),
    which podman needs on every call that runs the container's runtime (init, start), not only
    on the one that made it."""
    head = run_head(engine, isolation, network)
    return head[1 : head.index("run")]


def pids_args(isolation: str, pids: int, host_cpus: int) -> list[str]:
    """The process limit PIDS as run options.

    runc: the container's pids cgroup. gVisor: the cgroup holds gVisor's own kernel, whose
    threads and per-process stubs count there too, and which crashes as a whole when a fork of
    its own is refused. So gVisor's kernel enforces PIDS itself (RLIMIT_NPROC of the agent's
    user, which counts every process and thread of the agent), and the cgroup keeps a ceiling
    on what the whole sandbox may run on the host.
    """
    if isolation == "runc":
        return ["--pids-limit", str(pids)]
    ceiling = SANDBOX_TASKS + pids * (TASKS_PER_PROCESS + max(1, host_cpus))
    return ["--pids-limit", str(ceiling), "--ulimit", f"nproc={pids}:{pids}"]

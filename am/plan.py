"""The spawn plan: every decision ``am spawn`` makes, taken before anything is created.

``build`` is pure apart from reading the environment it is given, so it is unit-tested directly;
``am.commands.spawn`` then carries the plan out.
"""

import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from am import ids, profiles
from am.errors import AmError
from am.git import is_url
from am.paths import Layout

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)([bkmg]?)$", re.IGNORECASE)
UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
DEFAULT_LIMITS = {"memory": "2g", "cpus": "2", "pids": "100"}
DEFAULT_IMAGE = "am-agent:latest"


@dataclass
class Plan:
    id: str
    mode: str
    runtime: str | None
    source: str
    worktree: bool
    base: str | None
    branch: str
    workspace: Path
    session: str
    container: str | None
    agent: str
    command: list[str]
    log: Path
    exit_file: Path
    limits: dict
    network: str
    allow_domains: list[str]
    image: str | None
    gpus: str | None
    env_names: list[str]
    cache_dir: Path | None = None
    mirror: Path | None = None  # the cache mirror a URL clone borrows objects from
    egress: str | None = None  # limited: the outside network its proxy joins
    managed_egress: str | None = None  # limited: am's own outside network of this AM_HOME
    extra_mounts: list = field(default_factory=list)  # (host path, container path, read-only)
    env: dict[str, str] = field(default_factory=dict)  # non-secret settings for the supervisor
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # --env values

    @property
    def network_name(self) -> str:
        """The engine network the container joins; a limited agent has only loopback too and
        reaches its proxy through a socket (docs/network.md)."""
        return {"none": "none", "full": "bridge"}.get(self.network or "none", "none")

    @property
    def network_files(self):
        """A limited agent's proxy files, beside its exit file and its log."""
        from am import network

        return network.files(self.exit_file.parent, self.log.parent, self.id)

    @property
    def proxy(self) -> str | None:
        from am import network

        return network.proxy_name(self.id) if self.network == "limited" else None

    def record(self, home: str) -> dict:
        """The initial state record (no secret values, ever)."""
        return {
            "id": self.id,
            "name": self.id,
            "mode": self.mode,
            "runtime": self.runtime,
            "status": "starting",
            "source": self.source,
            "worktree": self.worktree,
            "branch": self.branch,
            "base_commit": None,
            "workspace": str(self.workspace),
            "container": self.container,
            "session": self.session,
            "agent": self.agent,
            "command": self.command,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "exit_code": None,
            "oom_killed": False,
            "network": self.network,
            "allow_domains": self.allow_domains,
            "limits": self.limits,
            "log": str(self.log),
            "image": self.image,
            "gpus": self.gpus,
            "env_names": self.env_names,
            "home": home,
            "spawn_pid": os.getpid(),
            **({"proxy": self.proxy, "egress_network": self.egress,
                "network_log": str(self.network_files.log),
                "managed_egress": self.egress == self.managed_egress}
               if self.network == "limited" else {}),
        }

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("secrets")
        return d


def memory_bytes(value: str) -> int:
    m = MEMORY_RE.match(value.strip())
    if not m or float(m.group(1)) <= 0:
        raise AmError(f"invalid --memory {value!r}", "a positive size such as 512m or 2g")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def check_limits(
    memory: str, cpus: str, pids: str, host_memory: int | None = None, host_cpus: int | None = None
) -> dict:
    """Validate container limits before anything starts."""
    size = memory_bytes(memory)
    if size < 6 * 1024**2:
        raise AmError(f"--memory {memory!r} is too small", "engines need at least 6m")
    if host_memory and size > host_memory:
        raise AmError(
            f"--memory {memory!r} is more than this host has ({host_memory / 1024**3:.1f}g)"
        )
    try:
        ncpus = float(cpus)
    except ValueError:
        raise AmError(f"invalid --cpus {cpus!r}", "a positive number such as 0.5 or 2") from None
    if not ncpus > 0:
        raise AmError(f"invalid --cpus {cpus!r}", "a positive number such as 0.5 or 2")
    if host_cpus and ncpus > host_cpus:
        raise AmError(f"--cpus {cpus!r} is more than this host has ({host_cpus})")
    if not re.fullmatch(r"\d+", str(pids)) or int(pids) < 1:
        raise AmError(f"invalid --pids {pids!r}", "a whole number of processes such as 100")
    return {"memory": memory.lower(), "cpus": cpus, "pids": int(pids)}


def parse_env(items: list[str], environ: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """--env NAME[=VALUE] items -> (names, values); a bare NAME takes the caller's value."""
    names, values = [], {}
    for item in items:
        name, eq, value = item.partition("=")
        if not ENV_NAME_RE.fullmatch(name):
            raise AmError(
                f"invalid --env name {name!r}", "letters, digits and '_', not first a digit"
            )
        if not eq:
            if name not in environ:
                raise AmError(f"--env {name}: {name} is not set in this environment")
            value = environ[name]
        names.append(name)
        values[name] = value
    return names, values


def check_domain(domain: str) -> str:
    d = domain.strip().lower()
    label = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    if not re.fullmatch(rf"(\*\.)?{label}(\.{label})*", d):
        raise AmError(
            f"invalid --allow-domain {domain!r}", "a host name such as example.com or *.example.com"
        )
    return d


def build(
    args,
    layout: Layout,
    source: str,
    environ: dict[str, str],
    host_memory: int | None = None,
    host_cpus: int | None = None,
) -> Plan:
    """Decide everything about a spawn from its arguments (SOURCE already checked)."""
    agent_id = ids.validate_name(args.name) if args.name is not None else ids.new_id()
    mode = "container" if args.container else "tmux"
    if args.cmd is not None:
        if args.skip_permissions and not args.agent:
            raise AmError("--skip-permissions needs an agent profile, not --cmd")
        command = profiles.command_argv(args.cmd)
        agent = args.agent or "custom"
    else:
        agent = args.agent or "claude"
        command = profiles.get(agent).argv(args.skip_permissions)
    if args.worktree and is_url(source):
        raise AmError("--worktree needs a local repository path, not a URL")
    names, values = parse_env(args.env, environ)
    if not args.container:
        # A tmux agent runs as the user, so it gets the caller's whole environment (through
        # the same FIFO as --env values), not whatever the tmux server happened to start with.
        inherited = {k: v for k, v in environ.items() if k not in ("TMUX", "TMUX_PANE")}
        values = {**inherited, **values}
    domains = [check_domain(d) for d in args.allow_domain]
    network = args.network or "none"
    if mode == "tmux":
        for flag, value in (
            ("--network", args.network),
            ("--allow-domain", domains),
            ("--memory", args.memory),
            ("--cpus", args.cpus),
            ("--pids", args.pids),
            ("--gpus", args.gpus),
            ("--image", args.image),
            ("--runtime", args.runtime),
        ):
            if value:
                raise AmError(f"{flag} applies to container agents", "add --container")
        limits, network = None, None
    else:
        limits = check_limits(
            args.memory or DEFAULT_LIMITS["memory"],
            args.cpus or DEFAULT_LIMITS["cpus"],
            args.pids or DEFAULT_LIMITS["pids"],
            host_memory,
            host_cpus,
        )
        if domains and network != "limited":
            raise AmError("--allow-domain needs --network limited")
        if network == "limited":
            from am import network as net

            domains = net.allowed_domains(agent, domains)
            managed = net.default_egress(str(layout.root))
            egress = environ.get(net.EGRESS_ENV) or managed
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", egress):
                raise AmError(f"invalid {net.EGRESS_ENV} {egress!r}", "the name of a network")
    if network != "limited":
        egress = managed = None
    branch = args.branch or f"am/{agent_id}"
    name = ids.session_name(agent_id)
    return Plan(
        id=agent_id,
        mode=mode,
        runtime=None,
        source=source,
        worktree=bool(args.worktree),
        base=args.base,
        branch=branch,
        workspace=layout.workspace(agent_id),
        session=name,
        container=name if mode == "container" else None,
        agent=agent,
        command=command,
        log=layout.log_file(agent_id),
        exit_file=layout.exit_file(agent_id),
        limits=limits,
        network=network,
        allow_domains=domains,
        image=(args.image or DEFAULT_IMAGE) if mode == "container" else None,
        gpus=args.gpus,
        env_names=names,
        secrets=values,
        cache_dir=layout.cache,
        egress=egress,
        managed_egress=managed,
    )

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
from am.git import check_branch, is_url
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
    agent_clis: list[str] = field(default_factory=list)  # what a first-use image build holds
    cache_dir: Path | None = None
    mirror: Path | None = None  # the cache mirror a URL clone borrows objects from
    egress: str | None = None  # limited: the outside network its proxy joins
    managed_egress: str | None = None  # limited: am's own outside network of this AM_HOME
    extra_mounts: list = field(default_factory=list)  # (host path, container path, read-only)
    config_copies: list[str] = field(default_factory=list)  # --mount-agent-config, home-relative
    env: dict[str, str] = field(default_factory=dict)  # non-secret settings for the supervisor
    warnings: list[str] = field(default_factory=list)  # printed by spawn, on stderr
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
        if self.network != "limited":
            return None
        from am import network

        return network.proxy_name(self.id)

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


FLAG_LABELS = {"memory": "--memory", "cpus": "--cpus", "pids": "--pids"}


def memory_bytes(value: str, label: str = "--memory") -> int:
    m = MEMORY_RE.match(value.strip())
    if not m or float(m.group(1)) <= 0:
        raise AmError(f"invalid {label} {value!r}", "a positive size such as 512m or 2g")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def check_memory(value: str, label: str = "--memory", host_memory: int | None = None) -> int:
    size = memory_bytes(value, label)
    if size < 6 * 1024**2:
        raise AmError(f"{label} {value!r} is too small", "engines need at least 6m")
    if host_memory and size > host_memory:
        raise AmError(
            f"{label} {value!r} is more than this host has ({host_memory / 1024**3:.1f}g)"
        )
    return size


def check_cpus(value: str, label: str = "--cpus", host_cpus: int | None = None) -> float:
    try:
        ncpus = float(value)
    except ValueError:
        raise AmError(f"invalid {label} {value!r}", "a positive number such as 0.5 or 2") from None
    if not ncpus > 0 or ncpus == float("inf"):
        raise AmError(f"invalid {label} {value!r}", "a positive number such as 0.5 or 2")
    if host_cpus and ncpus > host_cpus:
        raise AmError(f"{label} {value!r} is more than this host has ({host_cpus})")
    return ncpus


def check_limits(
    memory: str,
    cpus: str,
    pids: str,
    host_memory: int | None = None,
    host_cpus: int | None = None,
    labels: dict[str, str] | None = None,
) -> dict:
    """Validate container limits before anything starts; LABELS name where each came from."""
    labels = {**FLAG_LABELS, **(labels or {})}
    check_memory(memory, labels["memory"], host_memory)
    check_cpus(cpus, labels["cpus"], host_cpus)
    if not re.fullmatch(r"\d+", str(pids)) or int(pids) < 1:
        raise AmError(f"invalid {labels['pids']} {pids!r}",
                      "a whole number of processes such as 100")
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


IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")


def check_image(image: str) -> str:
    """An image reference that cannot be read as an option or carry extra text."""
    if not IMAGE_RE.fullmatch(image):
        raise AmError(f"invalid --image {image!r}", "an image reference such as am-agent:latest")
    return image


def check_base(base: str) -> str:
    if not base or base.startswith("-") or any(ord(c) < 32 or c == "\x7f" for c in base):
        raise AmError(f"invalid --base {base!r}", "a branch, tag or commit of the source")
    return base


def check_domain(domain: str) -> str:
    d = domain.strip().lower()
    label = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    if not re.fullmatch(rf"(\*\.)?{label}(\.{label})*", d):
        raise AmError(
            f"invalid --allow-domain {domain!r}", "a host name such as example.com or *.example.com"
        )
    return d


GPUS_RE = re.compile(r"^(all|[1-9][0-9]*|(device=)?[A-Za-z0-9][A-Za-z0-9:._-]*"
                     r"(,[A-Za-z0-9][A-Za-z0-9:._-]*)*)$")


def check_gpus(value: str) -> str:
    """``all``, a count, or device ids (``0,1``, ``GPU-<uuid>``, ``device=0``)."""
    ids = value.removeprefix("device=").split(",")
    if not GPUS_RE.fullmatch(value) or value == "0" or ("all" in ids and value != "all"):
        raise AmError(f"invalid --gpus {value!r}",
                      "all, a count such as 2, or device ids such as device=0 or 0,1")
    return value


def credentials(profile, names: list[str], values: dict, environ: dict, mode: str,
                mounted: bool) -> str | None:
    """Add the profile's variables that are set here (passed by name, like --env NAME);
    return a warning when none of them reaches the agent."""
    for name in profile.env_names:
        if name not in names and environ.get(name):
            names.append(name)
            values[name] = environ[name]
    if not profile.env_names or any(n in names for n in profile.env_names) or mounted:
        return None
    home = Path(environ.get("HOME") or Path.home())
    if mode == "tmux" and any((home / p).exists() for p in profile.config_paths):
        return None  # a tmux agent runs as you: it finds its own login in your home
    hint = "set one, or pass it with --env NAME=VALUE"
    if mode == "container" and profile.config_paths:
        hint += ", or use --mount-agent-config"
    return (f"none of {', '.join(profile.env_names)} is set: the {profile.name} agent may not be "
            f"able to authenticate ({hint})")


def unreachable_model(profile) -> str | None:
    """A warning when PROFILE's CLI needs its model's API but gets no network at all (the
    default); None for --cmd agents and profiles that name no domains."""
    if profile is None or not profile.api_domains:
        return None
    return (f"the {profile.name} agent needs {', '.join(profile.api_domains)} to reach its "
            "model, and --network none (the default) gives it no network: it will not get "
            "far (--network limited allows exactly those domains; --network none silences "
            "this)")


def agent_config_mounts(profile, environ: dict) -> tuple[list, list[str]]:
    """Read-only mounts of the profile's credential files from the caller's home (opt-in), at
    CONFIG_STAGE, never in the agent's home; and their paths relative to the home, which the
    container's command copies into its own writable home before the agent starts."""
    from am.backends.engine import CONFIG_STAGE

    home = Path(environ.get("HOME") or Path.home())
    found = [p for p in profile.config_paths if (home / p).exists()]
    if not found:
        looked = ", ".join(f"~/{p}" for p in profile.config_paths) or "nothing: the profile " \
            "names no config_paths"
        raise AmError(f"--mount-agent-config: no {profile.name} credentials in {home}",
                      f"looked for {looked}")
    return [(home / p, f"{CONFIG_STAGE}/{p}", True) for p in found], found


def build(
    args,
    layout: Layout,
    source: str,
    environ: dict[str, str],
    host_memory: int | None = None,
    host_cpus: int | None = None,
    cfg=None,
) -> Plan:
    """Decide everything about a spawn from its arguments (SOURCE already checked).

    Flags win over AM_* variables, which win over the config file, then built-in defaults."""
    from am import config as configuration

    cfg = cfg or configuration.load(layout, environ)
    s = cfg.resolve(args)
    agent_id = ids.validate_name(args.name) if args.name is not None else ids.new_id()
    mode = "container" if args.container else "tmux"
    mount_config = bool(getattr(args, "mount_agent_config", False))
    profile = None
    if args.cmd is not None:
        if args.skip_permissions and not args.agent:
            raise AmError("--skip-permissions needs an agent profile, not --cmd")
        command = profiles.command_argv(args.cmd)
        agent = args.agent or "custom"
        if args.agent:
            profile = cfg.profile(args.agent)
    else:
        agent = s["agent"].value
        profile = cfg.profile(agent)
        command = profile.argv(args.skip_permissions)
    if args.worktree and is_url(source):
        raise AmError("--worktree needs a local repository path, not a URL")
    names, values = parse_env(args.env, environ)
    warnings = []
    if profile and args.cmd is None:
        warning = credentials(profile, names, values, environ, mode, mount_config)
        if warning:
            warnings.append(warning)
    if not args.container:
        # A tmux agent runs as the user, so it gets the caller's whole environment (through
        # the same FIFO as --env values), not whatever the tmux server happened to start with.
        inherited = {k: v for k, v in environ.items() if k not in ("TMUX", "TMUX_PANE")}
        values = {**inherited, **values}
    domains = [check_domain(d) for d in args.allow_domain]
    network = args.network or "none"
    mounts, copies = [], []
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
            ("--mount-agent-config", mount_config),
        ):
            if value:
                raise AmError(f"{flag} applies to container agents", "add --container")
        limits, network, runtime = None, None, None
    else:
        labels = {k: s[f"limits.{k}"].label(f"limits.{k}") for k in FLAG_LABELS}
        limits = check_limits(
            str(s["limits.memory"].value),
            str(s["limits.cpus"].value),
            str(s["limits.pids"].value),
            host_memory,
            host_cpus,
            labels,
        )
        network, runtime = s["network"].value, s["runtime"].value
        if domains and network != "limited":
            raise AmError("--allow-domain needs --network limited")
        if network == "limited":
            from am import network as net

            # The file's allow_domains count only with a limited network; then the profile's.
            domains = [check_domain(d) for d in s["allow_domains"].value]
            domains = net.allowed_domains(agent, domains)
            managed = net.default_egress(str(layout.root))
            egress = environ.get(net.EGRESS_ENV) or managed
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", egress):
                raise AmError(f"invalid {net.EGRESS_ENV} {egress!r}", "the name of a network")
        if network == "full":
            warnings.append("--network full gives the agent the engine's ordinary bridge "
                            "network: it can reach the internet and your local network")
        if network == "none" and s["network"].source == "default":
            warning = unreachable_model(profile if args.cmd is None else None)
            if warning:
                warnings.append(warning)
        if args.gpus:
            check_gpus(args.gpus)
        if mount_config:
            if profile is None:
                raise AmError("--mount-agent-config needs an agent profile", "add --agent NAME")
            mounts, copies = agent_config_mounts(profile, environ)
    if network != "limited":
        egress = managed = None
    branch = check_branch(args.branch) if args.branch is not None else f"am/{agent_id}"
    if args.base is not None:
        check_base(args.base)
    if args.image is not None:
        check_image(args.image)
    name = ids.session_name(agent_id)
    return Plan(
        id=agent_id,
        mode=mode,
        runtime=runtime,
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
        image=s["image"].value if mode == "container" else None,
        gpus=args.gpus,
        env_names=names,
        agent_clis=list(s["agent_clis"].value) if mode == "container" else [],
        extra_mounts=mounts,
        config_copies=copies,
        warnings=warnings,
        secrets=values,
        cache_dir=layout.cache,
        egress=egress,
        managed_egress=managed,
    )

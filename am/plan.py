"""The spawn plan: every decision ``am spawn`` makes, taken before anything is created.

``build`` is pure apart from reading the environment it is given, so it is unit-tested directly;
``am.commands.spawn`` then carries the plan out.
"""

import os
import re
from pathlib import Path

from am import ids, profiles, validate
from am.errors import AmError
from am.git import check_branch, is_url
from am.paths import Layout
from am.record import Mode, Record, word
from am.request import Request
from am.validate import (  # noqa: F401 (re-exported)
    DEFAULT_IMAGE,
    DEFAULT_LIMITS,
    DEFAULT_LOG_MAX,
    DEFAULT_LOG_MAX_SIZE,
    ENV_NAME_RE,
    memory_bytes,
    publish_parts,
)
from am.valueclass import field, replace, value_class

# A prompt is one argument of the agent's command line (Linux takes up to 128 KiB in one) and
# is kept in the state record, which every 'am list' reads.
PROMPT_MAX = 64 * 1024
PROMPT_ENV = "AM_PROMPT"  # a --cmd agent's prompt
CONTINUE_ENV = "AM_CONTINUE"  # set to 1 for a --cmd agent started with --continue
AM_ENV = (PROMPT_ENV, CONTINUE_ENV)


@value_class
class Plan:
    """Frozen: an execution step that learns something (the mirror a clone borrows from,
    the engine's volume) returns a new plan made with ``valueclass.replace``."""

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
    allow_private_domains: list[str] = field(default_factory=list)  # limited: may be local
    isolation: str | None = None  # container agents: runc or gvisor (am/isolation.py)
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
    prompt: str | None = None  # the agent's task
    prompt_args: list[str] | None = None  # how the profile takes it (None: AM_PROMPT or none)
    resume_args: list[str] = field(default_factory=list)  # the profile's continue flag
    custom: bool = False  # the command is the user's --cmd
    mount_agent_config: bool = False
    publish: list[str] = field(default_factory=list)  # ADDR:HOST_PORT:PORT, checked
    worktree_gitdir: Path | None = None  # a worktree's own folder in the source's git folder
    log_max: int = DEFAULT_LOG_MAX  # bytes of the host log before it rotates (logs.max_size)
    volume: str | None = None  # a remote engine's volume that holds the workspace
    # --runtime kubernetes: where its objects live and how its workspace is kept (the context
    # and namespace are resolved by the backend before the record is made)
    kube: dict | None = None
    seed: dict | None = None  # the first start's bundle: sha256, branch, base, origin
    bundle: Path | None = None
    volume_made: bool = False  # this start made the engine volume that holds the workspace

    @property
    def disk(self) -> str | None:
        """The cap of the workspace's size (--disk), if any (am/disk.py)."""
        return (self.limits or {}).get("disk")

    def agent_argv(self) -> list[str]:
        """The agent's command line: its command, the continue flag, then the prompt."""
        argv = [*self.command, *self.resume_args]
        if self.prompt is not None and self.prompt_args:
            argv += profiles.prompt_argv(self.prompt_args, self.prompt)
        return argv

    @property
    def network_name(self) -> str:
        """The engine network the container joins; a limited agent has only loopback too and
        reaches its proxy through a socket (docs/network.md)."""
        return {"none": "none", "full": "bridge"}.get(self.network or "none", "none")

    @property
    def network_files(self):
        """A limited agent's proxy files, beside its exit file and its log."""
        from am.backends import network

        return network.files(self.exit_file.parent, self.log.parent, self.id)

    @property
    def proxy(self) -> str | None:
        if self.network != "limited":
            return None
        if self.runtime == "kubernetes":
            from am import kube

            return kube.proxy_name(self.id)
        from am.backends import network

        return network.proxy_name(self.id)

    def record(self, home: str) -> dict:
        """The initial state record (no secret values, ever)."""
        return Record(
            self.id,
            str(self.workspace),
            str(self.log),
            home,
            mode=word(self.mode, Mode.ALL),
            runtime=self.runtime,
            source=self.source,
            worktree=self.worktree,
            branch=self.branch,
            agent=self.agent,
            command=self.command,
            network=self.network,
            allow_domains=self.allow_domains,
            limits=self.limits,
            extra={
                "image": self.image,
                "gpus": self.gpus,
                "env_names": self.env_names,
                "prompt": self.prompt,
                "prompt_args": self.prompt_args,
                "custom": self.custom,
                "mount_agent_config": self.mount_agent_config,
                "publish": self.publish,
                # A Kubernetes backend maps it to a runtimeClassName (isolation.runtime_class).
                "isolation": self.isolation,
                "volume": self.volume,
                **({"kubernetes": self.kube} if self.kube else {}),
                "spawn_pid": os.getpid(),
                **(
                    {
                        "proxy": self.proxy,
                        "egress_network": self.egress,
                        "allow_private_domains": self.allow_private_domains,
                        "network_log": str(self.network_files.log),
                        "managed_egress": self.egress == self.managed_egress,
                    }
                    if self.network == "limited"
                    else {}
                ),
            },
        ).as_dict()


FLAG_LABELS = {"memory": "--memory", "cpus": "--cpus", "pids": "--pids", "disk": "--disk"}
TMUX_DISK = (
    "--disk applies to container agents: a tmux agent runs as you and can write "
    "wherever you can, so a cap on its workspace would bound nothing"
)
WORKTREE_CONTAINER = (
    "--worktree cannot be combined with --container: to commit, the agent would write your "
    "repository's shared git folder (objects, refs, logs), where it can plant links and "
    "alternates that your own git and am follow later (docs/security.md)"
)


def _refused(label: str, value, e: validate.Invalid) -> AmError:
    return AmError(
        f"{label} {value!r} {e.problem}" if e.problem else f"invalid {label} {value!r}", e.hint
    )


def check_memory(value: str, label: str = "--memory", host_memory: int | None = None) -> int:
    try:
        return validate.memory(value, host_memory)
    except validate.Invalid as e:
        raise _refused(label, value, e) from None


def check_cpus(value: str, label: str = "--cpus", host_cpus: int | None = None) -> float:
    try:
        return validate.cpus(value, host_cpus)
    except validate.Invalid as e:
        raise _refused(label, value, e) from None


def check_limits(
    memory: str,
    cpus: str,
    pids: str,
    host_memory: int | None = None,
    host_cpus: int | None = None,
    labels: dict[str, str] | None = None,
    disk: str | None = None,
) -> dict:
    """Validate container limits before anything starts; LABELS name where each came from."""
    labels = {**FLAG_LABELS, **(labels or {})}
    check_memory(memory, labels["memory"], host_memory)
    check_cpus(cpus, labels["cpus"], host_cpus)
    try:
        pids_limit = validate.pids(pids)
    except validate.Invalid as e:
        raise _refused(labels["pids"], pids, e) from None
    if validate.no_disk_cap(disk):
        disk = None  # as for most agents: am.disk is not imported
    else:
        from am import disk as disks

        disk = disks.check_size(str(disk), labels["disk"])
    return {"memory": memory.lower(), "cpus": cpus, "pids": pids_limit, "disk": disk}


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
                raise AmError(
                    f"--env {name}: {name} is not set in this environment",
                    f"export {name} first, or give its value: --env {name}=VALUE",
                )
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


def check_domain(domain: str, label: str = "--allow-domain", suffixes: bool = True) -> str:
    """An allowlist entry, checked (am/domains.py)."""
    from am import domains

    return domains.check(domain, label, suffixes)


# Compiled where used (re's cache), not at import: most spawns pass no --gpus or --publish.
GPUS = (
    r"^(all|[1-9][0-9]*|(device=)?[A-Za-z0-9][A-Za-z0-9:._-]*"
    r"(,[A-Za-z0-9][A-Za-z0-9:._-]*)*)$"
)


def check_gpus(value: str) -> str:
    """``all``, a count, or device ids (``0,1``, ``GPU-<uuid>``, ``device=0``)."""
    ids = value.removeprefix("device=").split(",")
    if not re.fullmatch(GPUS, value) or value == "0" or ("all" in ids and value != "all"):
        raise AmError(
            f"invalid --gpus {value!r}",
            "all, a count such as 2, or device ids such as device=0 or 0,1",
        )
    return value


def check_prompt(text: str, label: str = "--prompt") -> str:
    """A prompt that can reach the agent unchanged, as one argument or environment value."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise AmError(f"{label} is not valid UTF-8 text") from None
    if "\0" in text:
        raise AmError(
            f"{label} holds a NUL character", "no command line or environment can carry one"
        )
    if not text.strip():
        raise AmError(f"{label} is empty", "give the agent's task as text")
    if size > PROMPT_MAX:
        raise AmError(
            f"{label} is {size} bytes, more than {PROMPT_MAX}",
            "put the long part in a file in the repository and point the agent to it",
        )
    return text


def read_prompt(prompt: str | None, path: str | None, stdin=None) -> str | None:
    """The text of --prompt, or of --prompt-file PATH (a path, or '-' for standard input)."""
    if path is None:
        return prompt
    import sys

    try:
        if path == "-":
            data = (stdin or sys.stdin.buffer).read(PROMPT_MAX + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(PROMPT_MAX + 1)
    except OSError as e:
        raise AmError(f"cannot read --prompt-file {path}: {e.strerror}") from None
    if len(data) > PROMPT_MAX:
        raise AmError(
            f"--prompt-file {path} is more than {PROMPT_MAX} bytes",
            "put the long part in a file in the repository and point the agent to it",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AmError(f"--prompt-file {path} is not UTF-8 text") from None


def task(prompt: str | None, profile, agent: str) -> tuple[list[str] | None, dict[str, str]]:
    """How PROMPT reaches the agent: the arguments of PROFILE (the CLI's own way), or, for a
    --cmd agent (no PROFILE), the variable AM_PROMPT. Returns (prompt_args, environment)."""
    if prompt is None:
        return None, {}
    if profile is None:
        return None, {PROMPT_ENV: prompt}
    if not profile.prompt_args:
        raise AmError(
            f"agent {agent!r} takes no initial prompt",
            f"set prompt_args in [agents.{agent}] of config.toml, or give it the task "
            "with 'am send ID TEXT' once it runs",
        )
    if profiles.PROMPT in profile.prompt_args and re.fullmatch(r"[a-z][a-z0-9-]*", prompt):
        # A bare argument of one lowercase word is what CLIs read as a subcommand: 'claude --
        # update' runs 'claude update', '--' or not.
        raise AmError(
            f"the prompt {prompt!r} is a single word that {agent} could take for a "
            "subcommand of that name",
            "write the task as a sentence",
        )
    return list(profile.prompt_args), {}


PUBLISH = r"(?:(\[[0-9A-Fa-f:.]+\]|[0-9.]+):)?([0-9]{1,5}):([0-9]{1,5})"


def check_publish(value: str) -> str:
    """``[ADDR:]HOST_PORT:PORT`` as ``ADDR:HOST_PORT:PORT``; ADDR defaults to 127.0.0.1."""
    import ipaddress

    m = re.fullmatch(PUBLISH, value.strip())
    bad = AmError(
        f"invalid --publish {value!r}",
        "[ADDR:]HOST_PORT:PORT such as 8080:3000 or 0.0.0.0:8080:3000",
    )
    if not m:
        raise bad
    addr, host, port = m.group(1) or "127.0.0.1", int(m.group(2)), int(m.group(3))
    try:
        ip = ipaddress.ip_address(addr.strip("[]"))
    except ValueError:
        raise bad from None
    if (ip.version == 6) != addr.startswith("[") or not (0 < host < 65536 and 0 < port < 65536):
        raise bad
    return f"{ip if ip.version == 4 else f'[{ip}]'}:{host}:{port}"


def credentials(
    profile, names: list[str], values: dict, environ: dict, mode: str, mounted: bool
) -> str | None:
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
    return (
        f"none of {', '.join(profile.env_names)} is set: the {profile.name} agent may not be "
        f"able to authenticate ({hint})"
    )


def unreachable_model(profile) -> str | None:
    """A warning when PROFILE's CLI needs its model's API but gets no network at all (the
    default); None for --cmd agents and profiles that name no domains."""
    if profile is None or not profile.api_domains:
        return None
    return (
        f"the {profile.name} agent needs {', '.join(profile.api_domains)} to reach its "
        "model, and --network none (the default) gives it no network: it will not get "
        "far (--network limited allows exactly those domains; --network none silences "
        "this)"
    )


def agent_config_mounts(profile, environ: dict) -> tuple[list, list[str]]:
    """Read-only mounts of the profile's credential files from the caller's home (opt-in), at
    CONFIG_STAGE, never in the agent's home; and their paths relative to the home, which the
    container's command copies into its own writable home before the agent starts."""
    from am.backends.engine import CONFIG_STAGE

    home = Path(environ.get("HOME") or Path.home())
    found = [p for p in profile.config_paths if (home / p).exists()]
    if not found:
        looked = (
            ", ".join(f"~/{p}" for p in profile.config_paths)
            or "nothing: the profile names no config_paths"
        )
        raise AmError(
            f"--mount-agent-config: no {profile.name} credentials in {home}", f"looked for {looked}"
        )
    return [(home / p, f"{CONFIG_STAGE}/{p}", True) for p in found], found


def build(
    args: Request,
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
    # The flags' entries first, each with its own error (the settings check them as a list).
    domains = [check_domain(d) for d in args.allow_domain]
    private = [check_domain(d, "--allow-private-domain") for d in args.allow_private_domain]
    s = cfg.resolve(args)
    agent_id = ids.validate_name(args.name) if args.name is not None else ids.new_id()
    mode = "container" if args.container else "tmux"
    mount_config = args.mount_agent_config
    agent, profile, command = agent_command(args, cfg, s)
    if args.worktree and is_url(source):
        raise AmError("--worktree needs a local repository path, not a URL")
    if args.worktree and args.container:
        raise AmError(
            WORKTREE_CONTAINER,
            "leave out --worktree: a clone keeps the agent's "
            "commits in its workspace; review them with 'am diff ID', then bring "
            "its branch into your repository with 'am pull ID'",
        )
    prompt = args.prompt
    if prompt is not None:
        check_prompt(prompt, "--prompt-file" if args.prompt_file else "--prompt")
    prompt_args, env = task(prompt, None if args.cmd is not None else profile, agent)
    names, values = parse_env(args.env, environ)
    clash = [n for n in names if n in env]
    if clash:
        raise AmError(
            f"--env {clash[0]} would replace the prompt, which a --cmd agent gets as {clash[0]}",
            f"leave out --env {clash[0]}",
        )
    warnings = []
    if profile and args.cmd is None:
        warning = credentials(profile, names, values, environ, mode, mount_config)
        if warning:
            warnings.append(warning)
    if not args.container:
        # A tmux agent runs as the user, so it gets the caller's whole environment (through
        # the same FIFO as --env values), not whatever the tmux server happened to start with.
        values = {**inherited_env(environ), **values}
    publish = [check_publish(v) for v in args.publish]
    if mode == "tmux":
        refuse_container_flags(args, domains, private, mount_config, publish)
        c = Container(domains=domains, gpus=args.gpus, publish=publish)
    else:
        c = container(
            args,
            s,
            layout,
            environ,
            agent_id,
            agent,
            profile,
            domains,
            private,
            publish,
            mount_config,
            host_memory,
            host_cpus,
            warnings,
        )
    branch = check_branch(args.branch) if args.branch is not None else f"am/{agent_id}"
    if args.base is not None:
        check_base(args.base)
    if args.image is not None:
        check_image(args.image)
    return assemble(
        agent_id,
        mode,
        layout,
        c,
        source=source,
        worktree=bool(args.worktree),
        base=args.base,
        branch=branch,
        agent=agent,
        command=command,
        env_names=names,
        warnings=warnings,
        secrets=values,
        env=env,
        prompt=prompt,
        prompt_args=prompt_args,
        custom=args.cmd is not None,
        mount_agent_config=mount_config,
        log_max=memory_bytes(s["logs.max_size"].value),
    )


def assemble(agent_id: str, mode: str, layout: Layout, c: "Container", **fields) -> Plan:
    """The one way a Plan is made: its names and paths from the agent's id and LAYOUT, its
    container settings from C (empty for a tmux agent), the rest from FIELDS."""
    return Plan(
        id=agent_id,
        mode=mode,
        runtime=c.runtime,
        workspace=layout.workspace(agent_id),
        session=ids.session_name(agent_id),
        container=ids.container_name(agent_id) if mode == "container" else None,
        log=layout.log_file(agent_id),
        exit_file=layout.exit_file(agent_id),
        cache_dir=layout.cache,
        limits=c.limits,
        network=c.network,
        allow_domains=c.domains,
        allow_private_domains=c.private,
        image=c.image,
        gpus=c.gpus,
        isolation=c.isolation,
        agent_clis=c.clis,
        mirror=c.mirror,
        egress=c.egress,
        managed_egress=c.managed,
        extra_mounts=c.mounts,
        config_copies=c.copies,
        publish=c.publish,
        kube=c.kube,
        **fields,
    )


def agent_command(args: Request, cfg, s: dict) -> tuple[str, object, list[str]]:
    """The agent's name, its profile (None for a --cmd agent named by no --agent) and its
    command line."""
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
    return agent, profile, command


def refuse_container_flags(args: Request, domains, private, mount_config: bool, publish) -> None:
    """A tmux spawn takes no container setting: each flag given is refused by name."""
    if args.disk:
        raise AmError(TMUX_DISK, "add --container")
    for flag, value in (
        ("--network", args.network),
        ("--allow-domain", domains),
        ("--allow-private-domain", private),
        ("--memory", args.memory),
        ("--cpus", args.cpus),
        ("--pids", args.pids),
        ("--gpus", args.gpus),
        ("--image", args.image),
        ("--runtime", args.runtime),
        ("--isolation", args.isolation),
        ("--mount-agent-config", mount_config),
        ("--publish", publish),
        ("--kube-workspace", args.kube_workspace),
    ):
        if value:
            raise AmError(f"{flag} applies to container agents", "add --container")


@value_class(frozen=False)
class Container:
    """A container agent's settings, decided by ``container`` (a tmux agent has none)."""

    limits: dict | None = None
    network: str | None = None
    runtime: str | None = None
    isolation: str | None = None
    domains: list[str] = field(default_factory=list)
    private: list[str] = field(default_factory=list)
    egress: str | None = None  # limited: the outside network its proxy joins
    managed: str | None = None  # limited: am's own outside network of this AM_HOME
    kube: dict | None = None
    mounts: list = field(default_factory=list)
    copies: list[str] = field(default_factory=list)
    image: str | None = None
    gpus: str | None = None
    publish: list[str] = field(default_factory=list)
    mirror: Path | None = None
    clis: list[str] = field(default_factory=list)


def container(
    args: Request,
    s: dict,
    layout: Layout,
    environ: dict[str, str],
    agent_id: str,
    agent: str,
    profile,
    domains: list[str],
    private: list[str],
    publish: list[str],
    mount_config: bool,
    host_memory: int | None,
    host_cpus: int | None,
    warnings: list[str],
) -> Container:
    """A container spawn's settings from S (flags, variables, file, defaults), each checked;
    may add to WARNINGS."""
    c = Container(
        network=s["network"].value,
        runtime=s["runtime"].value,
        domains=domains,
        private=private,
        image=s["image"].value,
        gpus=args.gpus,
        publish=publish,
        clis=list(s["agent_clis"].value),
    )
    if c.runtime == "kubernetes":
        host_memory = host_cpus = None  # a node's, not this host's
    labels = {k: s[f"limits.{k}"].label(f"limits.{k}") for k in FLAG_LABELS}
    c.limits = check_limits(
        str(s["limits.memory"].value),
        str(s["limits.cpus"].value),
        str(s["limits.pids"].value),
        host_memory,
        host_cpus,
        labels,
        s["limits.disk"].value,
    )
    c.isolation = s["isolation"].value
    if c.isolation == "gvisor" and args.gpus:
        raise AmError(
            f"--gpus cannot be used with {s['isolation'].label('isolation')} "
            "gvisor: this runsc gives its sandboxes no GPUs",
            "leave out --gpus, or spawn this agent with --isolation runc",
        )
    for flag, given in (("--allow-domain", domains), ("--allow-private-domain", private)):
        if given and c.network != "limited":
            raise AmError(f"{flag} needs --network limited", "add --network limited")
    check_published(publish, c.network, s["network"].label("network"))
    if c.network == "limited":
        limited_network(c, s, agent, layout, environ)
    if c.network == "full":
        warnings.append(
            "--network full gives the agent "
            + (
                "the cluster's pod network"
                if c.runtime == "kubernetes"
                else "the engine's ordinary bridge network"
            )
            + ": it can reach the internet and your local network"
        )
    if c.network == "none" and s["network"].source == "default":
        warning = unreachable_model(profile if args.cmd is None else None)
        if warning:
            warnings.append(warning)
    if c.runtime == "kubernetes":
        if c.limits.get("disk"):
            raise AmError(
                f"{labels['disk']} caps a workspace on this host; a Kubernetes "
                "agent's is a claim in its cluster",
                "size it with kubernetes.workspace_size, and leave out --disk",
            )
        c.kube = kubernetes_settings(agent_id, s, args, publish, mount_config, warnings)
    elif args.kube_workspace:
        raise AmError("--kube-workspace applies to Kubernetes agents", "add --runtime kubernetes")
    if args.gpus:
        check_gpus(args.gpus)
    if mount_config:
        if profile is None:
            raise AmError("--mount-agent-config needs an agent profile", "add --agent NAME")
        c.mounts, c.copies = agent_config_mounts(profile, environ)
    if c.network != "limited" or c.runtime == "kubernetes":
        c.egress = c.managed = None  # a Kubernetes agent's proxy is in its pod
        c.private = []
    return c


def limited_network(
    c: Container, s: dict, agent: str, layout: Layout, environ: dict[str, str]
) -> None:
    """A limited agent's allowlists and the outside network its proxy joins, into C."""
    from am.backends import network as net

    # The file's lists count only with a limited network; then the profile's. Checked
    # again in full here: loading the file skips the public suffix list (its cost).
    domains = [
        check_domain(d, s["allow_domains"].label("allow_domains")) for d in s["allow_domains"].value
    ]
    c.domains = net.allowed_domains(agent, domains)
    c.private = [
        check_domain(d, s["allow_private_domains"].label("allow_private_domains"))
        for d in s["allow_private_domains"].value
    ]
    c.managed = net.default_egress(str(layout.root))
    c.egress = environ.get(net.EGRESS_ENV) or c.managed
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", c.egress):
        raise AmError(f"invalid {net.EGRESS_ENV} {c.egress!r}", "the name of a network")


KUBE_KEYS = ("context", "namespace", "workspace", "workspace_size", "storage_class", "proxy_image")


def kubernetes_settings(
    agent_id: str, s: dict, args: Request, publish: list, mount_config: bool, warnings: list
) -> dict:
    """A Kubernetes agent's own settings (its context and namespace, if not configured, are
    kubectl's current ones: the backend resolves them); refuse what a pod cannot have."""
    from am import kube as k8s

    try:
        k8s.check_name(agent_id)
    except k8s.Invalid as e:
        raise AmError(str(e), "give --name such a name (generated ids are)") from None
    if publish:
        raise AmError(
            "--publish applies to docker and podman agents, not Kubernetes ones",
            "reach a port of the agent's pod with 'kubectl port-forward pod/am-ID "
            "PORT' in its context and namespace",
        )
    if mount_config:
        raise AmError(
            "--mount-agent-config mounts files of this host, which a pod in a cluster cannot have",
            "pass the agent's token with --env NAME (kept in "
            "a Secret of the namespace while the agent runs)",
        )
    if args.gpus and not args.gpus.isdigit():
        raise AmError(
            f"--gpus {args.gpus!r}: a Kubernetes agent takes a count of GPUs "
            "(the nvidia.com/gpu resource)",
            "--gpus 1",
        )
    if s["limits.pids"].source != "default":
        warnings.append(
            f"{s['limits.pids'].label('limits.pids')} is not enforced on "
            "Kubernetes: a pod has no process limit of its own (the kubelet's "
            "podPidsLimit applies)"
        )
    out = {key: s[f"kubernetes.{key}"].value or None for key in KUBE_KEYS}
    out["storage"] = out.pop("workspace")
    out["size"] = out.pop("workspace_size")
    try:
        if out["context"]:
            k8s.check_context(out["context"])
        if out["namespace"]:
            k8s.check_namespace(out["namespace"])
        k8s.check_quantity(
            out["size"], s["kubernetes.workspace_size"].label("kubernetes.workspace_size")
        )
    except k8s.Invalid as e:
        raise AmError(str(e)) from None
    if out["proxy_image"]:
        check_image(out["proxy_image"])
    return out


def inherited_env(environ: dict[str, str]) -> dict[str, str]:
    """What a tmux agent inherits of the caller's environment: all of it but tmux's own
    variables and am's (which am sets for the agent)."""
    return {k: v for k, v in environ.items() if k not in ("TMUX", "TMUX_PANE", *AM_ENV)}


def check_published(publish: list[str], network: str, label: str) -> None:
    """Ports can be published only where the host can reach the agent; once each."""
    if publish and network == "none":
        raise AmError(
            f"--publish needs a network, and the agent's is none ({label}): a "
            "container with only loopback has no port the host can reach",
            "add --network full, or --network limited",
        )
    seen = set()
    for spec in publish:
        addr, host, _ = publish_parts(spec)
        if (addr, host) in seen:
            raise AmError(f"--publish {spec}: host port {host} is published twice")
        seen.add((addr, host))


# --- am start: the plan of an agent that exists ------------------------------------------------

# The flags of a spawn that choose how an agent runs; am start takes them only for an agent that
# has no settings yet (made by am restore or adopted by am doctor).
RUN_SETTINGS = (
    "agent",
    "cmd",
    "skip_permissions",
    "container",
    "runtime",
    "network",
    "allow_domain",
    "memory",
    "cpus",
    "pids",
    "gpus",
    "image",
    "mount_agent_config",
    "publish",
    "isolation",
    "kube_workspace",
)


def _bad_record(agent_id: str, what: str) -> AmError:
    return AmError(
        f"the record of agent {agent_id} has an invalid {what}",
        "the state file was changed by hand; repair it, or 'am rm' the agent",
    )


def _strings(value, agent_id: str, what: str, nonempty: bool = False) -> list[str]:
    if (
        not isinstance(value, list)
        or not all(isinstance(v, str) for v in value)
        or (nonempty and not value)
    ):
        raise _bad_record(agent_id, what)
    return list(value)


def continuation(continuing: bool, profile, agent: str) -> tuple[list[str], dict[str, str]]:
    """What --continue adds: PROFILE's continue_args, or for a --cmd agent (no PROFILE) the
    variable AM_CONTINUE=1. Returns (arguments, environment)."""
    if not continuing:
        return [], {}
    if profile is None:
        return [], {CONTINUE_ENV: "1"}
    if not profile.continue_args:
        raise AmError(
            f"agent {agent!r} has no way to continue its last conversation",
            f"set continue_args in [agents.{agent}] of config.toml, or start it without --continue",
        )
    return list(profile.continue_args), {}


def from_record(record: dict, args: Request, layout: Layout, environ: dict[str, str], cfg) -> Plan:
    """The plan that starts a kept agent again with the settings it was spawned with.

    The record is read as untrusted input: every setting is checked as a spawn checks its
    flags, and paths come from the layout, never from the record. Only the prompt (--prompt,
    else the recorded one; none with --continue), the continue flag and --env values are new.
    """
    agent_id = ids.validate_name(str(record.get("id")))
    workspace = layout.workspace(agent_id)
    if record.get("workspace") != str(workspace):
        raise _bad_record(agent_id, f"workspace ({record.get('workspace')}, not {workspace})")
    mode = record.get("mode")
    if mode not in ("tmux", "container"):
        raise _bad_record(agent_id, "mode")
    if mode == "container" and record.get("worktree"):
        # made by an earlier am, which shared the repository's git folder with the container
        raise AmError(
            WORKTREE_CONTAINER,
            f"'am snapshot {agent_id}', then 'am restore' the "
            "snapshot: without --source it is a standalone agent, which may run in "
            "a container",
        )
    command = _strings(record.get("command"), agent_id, "command", nonempty=True)
    custom = bool(record.get("custom", command[:2] == ["sh", "-c"]))
    agent = str(record.get("agent") or "custom")
    profile = cfg.profile(agent) if agent != "custom" else None
    if profile is None and not custom:
        raise _bad_record(agent_id, "agent")
    prompt, prompt_args, resume, env = recorded_task(
        record, args, agent_id, agent, None if custom else profile
    )
    names, values, warnings = recorded_env(record, args, environ, env, mode, agent_id)
    c = (
        recorded_container(record, agent_id, layout, environ, cfg, profile)
        if mode == "container"
        else Container()
    )
    branch = record.get("branch")
    return assemble(
        agent_id,
        mode,
        layout,
        c,
        source=str(record.get("source") or ""),
        worktree=bool(record.get("worktree")),
        base=None,
        branch=check_branch(branch) if branch else "",
        agent=agent,
        command=command,
        env_names=names,
        env=env,
        warnings=warnings,
        secrets=values,
        prompt=prompt,
        prompt_args=prompt_args,
        resume_args=resume,
        custom=custom,
        mount_agent_config=bool(c.mounts),
        log_max=memory_bytes(cfg.resolve()["logs.max_size"].value),
        # checked against the agent's id (records.problems): only ever its own volume
        volume=record.get("volume") if mode == "container" else None,
    )


def recorded_task(record: dict, args: Request, agent_id: str, agent: str, profile):
    """(prompt, prompt_args, continue arguments, environment) of a start: --prompt, else the
    recorded task given as it was given then (none with --continue). PROFILE is None for a
    --cmd agent."""
    continuing = args.continue_
    resume, env = continuation(continuing, profile, agent)
    prompt = args.prompt
    recorded = record.get("prompt")
    if prompt is not None:
        check_prompt(prompt, "--prompt-file" if args.prompt_file else "--prompt")
        prompt_args, more = task(prompt, profile, agent)
    elif recorded is not None and not continuing:
        prompt = check_prompt(str(recorded), f"recorded prompt of {agent_id}")
        template = record.get("prompt_args")
        if profile is None or not template:
            prompt_args, more = task(prompt, profile, agent)
        else:
            prompt_args = _strings(template, agent_id, "prompt_args")
            more = {}
    else:
        prompt, prompt_args, more = None, None, {}
    env.update(more)
    return prompt, prompt_args, resume, env


def recorded_env(
    record: dict,
    args: Request,
    environ: dict[str, str],
    env: dict[str, str],
    mode: str,
    agent_id: str,
) -> tuple[list[str], dict[str, str], list[str]]:
    """(names, values, warnings) of the variables a start hands the agent: those it was
    spawned with (whose values am never stored) and --env's."""
    names = [
        n
        for n in _strings(record.get("env_names") or [], agent_id, "env_names")
        if ENV_NAME_RE.fullmatch(n)
    ]
    given_names, given = parse_env(list(args.env), environ)
    names += [n for n in given_names if n not in names]
    if any(n in env for n in given_names):
        raise AmError(
            f"--env {next(n for n in given_names if n in env)} would replace what am "
            "sets for the agent"
        )
    missing = [n for n in names if n not in given and n not in environ]
    warnings = []
    if missing:
        what = (
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: agent "
            f"{agent_id} was spawned with {'it' if len(missing) == 1 else 'them'} (--env, or "
            "its profile's credentials) and am never stores a value"
        )
        if mode == "container":
            raise AmError(what, "set it in this shell, or pass --env NAME=VALUE to am start")
        warnings.append(what)
    values = {n: given.get(n, environ.get(n)) for n in names if n not in missing}
    if mode == "tmux":
        values = {**inherited_env(environ), **values}
        names = [n for n in names if n not in missing]
    return names, values, warnings


def recorded_container(
    record: dict, agent_id: str, layout: Layout, environ: dict[str, str], cfg, profile
) -> Container:
    """A container agent's recorded settings, each checked as a spawn checks its flags."""
    c = Container(runtime=record.get("runtime"))
    if c.runtime not in ("docker", "podman", "kubernetes"):
        raise _bad_record(agent_id, "runtime")
    if c.runtime == "kubernetes":
        c.kube = recorded_kubernetes(record, agent_id)
    # Records from before --isolation ran on runc.
    c.isolation = record.get("isolation") or "runc"
    if c.isolation not in ("runc", "gvisor"):
        raise _bad_record(agent_id, "isolation")
    lim = record.get("limits")
    if not isinstance(lim, dict):
        raise _bad_record(agent_id, "limits")
    c.limits = check_limits(
        str(lim.get("memory")), str(lim.get("cpus")), str(lim.get("pids")), disk=lim.get("disk")
    )
    c.network = record.get("network")
    if c.network not in ("none", "limited", "full"):
        raise _bad_record(agent_id, "network")
    c.domains = [
        check_domain(d)
        for d in _strings(record.get("allow_domains") or [], agent_id, "allow_domains")
    ]
    c.private = [
        check_domain(d, "--allow-private-domain")
        for d in _strings(
            record.get("allow_private_domains") or [], agent_id, "allow_private_domains"
        )
    ]
    c.image = check_image(str(record.get("image") or DEFAULT_IMAGE))
    c.gpus = check_gpus(str(record["gpus"])) if record.get("gpus") else None
    if c.gpus and c.isolation == "gvisor":
        raise _bad_record(agent_id, "gpus (gVisor gives its sandboxes none)")
    c.publish = [
        check_publish(p) for p in _strings(record.get("publish") or [], agent_id, "publish")
    ]
    check_published(c.publish, c.network, "recorded")
    if c.network == "limited" and c.runtime != "kubernetes":
        from am.backends import network as net

        c.managed = net.default_egress(str(layout.root))
        c.egress = str(record.get("egress_network") or c.managed)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", c.egress):
            raise _bad_record(agent_id, "egress_network")
    if record.get("mount_agent_config"):
        if profile is None:
            raise _bad_record(agent_id, "mount_agent_config")
        c.mounts, c.copies = agent_config_mounts(profile, environ)
    c.clis = list(cfg.resolve()["agent_clis"].value)  # should its image need a first build
    if record.get("mirror"):
        # Mounted read-only into the container: only ever a mirror of am's own cache.
        c.mirror = Path(str(record["mirror"]))
        if not c.mirror.resolve().is_relative_to(layout.cache.resolve()):
            raise _bad_record(agent_id, "mirror")
    return c


def recorded_kubernetes(record: dict, agent_id: str) -> dict:
    """A Kubernetes agent's recorded settings, checked as untrusted input. An emptyDir
    workspace went with its first pod's agent: it cannot run a second one."""
    from am import kube as k8s

    k = record.get("kubernetes")
    if not isinstance(k, dict):
        raise _bad_record(agent_id, "kubernetes settings")
    if k.get("storage") == "emptydir":
        raise AmError(
            f"agent {agent_id}'s workspace is an emptyDir of its pod, which cannot "
            "run an agent again",
            f"'am snapshot {agent_id}' keeps its work; spawn "
            'with kubernetes.workspace = "pvc" for agents that stop and start',
        )
    try:
        k8s.check_name(agent_id)
        k8s.check_namespace(str(k.get("namespace")))
        k8s.check_context(str(k.get("context")))
        k8s.check_quantity(str(k.get("size")), "workspace size")
    except k8s.Invalid:
        raise _bad_record(agent_id, "kubernetes settings") from None
    if k.get("storage") != "pvc" or not (
        k.get("kubeconfig") is None
        or isinstance(k["kubeconfig"], str)
        and os.path.isabs(k["kubeconfig"])
    ):
        raise _bad_record(agent_id, "kubernetes settings")
    check_image(str(k.get("proxy_image") or DEFAULT_IMAGE))
    if k.get("storage_class") is not None and not isinstance(k["storage_class"], str):
        raise _bad_record(agent_id, "kubernetes settings")
    return {
        key: k.get(key)
        for key in (
            "context",
            "namespace",
            "kubeconfig",
            "storage",
            "size",
            "storage_class",
            "proxy_image",
        )
    }


def first_start(
    record: dict,
    args: Request,
    layout: Layout,
    environ: dict[str, str],
    host_memory: int | None = None,
    host_cpus: int | None = None,
    cfg=None,
) -> Plan:
    """The plan of the first start of an agent that has no settings yet (restored from a
    snapshot, or adopted): decided from am start's flags as a spawn decides them. Its agent
    profile defaults to the snapshot's; a snapshot of a container agent runs in a container."""
    from am import config as configuration

    cfg = cfg or configuration.load(layout, environ)
    agent_id = ids.validate_name(str(record.get("id")))
    if record.get("workspace") != str(layout.workspace(agent_id)):
        raise _bad_record(agent_id, "workspace")
    ns = replace(args, name=agent_id, base=None, branch=None, worktree=bool(record.get("worktree")))
    if ns.cmd is None and ns.agent is None:
        known = record.get("agent")
        if not known or known == "custom" or known not in {**profiles.BUILTIN, **cfg.agents}:
            raise AmError(
                f"agent {agent_id} has never run here, so it has no command yet"
                + (" (restored from a snapshot)" if record.get("restored_from") else ""),
                "give one: 'am start ID --agent NAME' or 'am start ID --cmd COMMAND'",
            )
        ns = replace(ns, agent=known)
    if record.get("snapshot_mode") == "container":
        ns = replace(ns, container=True)  # never less isolated than it was
    # 'am restore --disk' made its workspace a file system of that size: it runs in a
    # container (a cap means nothing to a tmux agent), with that cap, whatever the config says.
    lim = record.get("limits")
    made = lim.get("disk") if isinstance(lim, dict) else None
    if made is not None:
        from am import disk as disks

        made = disks.check_size(str(made), f"recorded disk of {agent_id}")
        ns = replace(ns, container=True)
    plan = build(ns, layout, str(record.get("source") or ""), environ, host_memory, host_cpus, cfg)
    if plan.runtime == "kubernetes":
        raise AmError(
            f"agent {agent_id}'s workspace is on this host, and a Kubernetes agent's "
            "is made in its cluster from a source",
            "start it with --runtime docker "
            "or podman, or spawn a new agent from the source or from its branch",
        )
    resume, more = continuation(
        args.continue_, None if plan.custom else cfg.profile(plan.agent), plan.agent
    )
    branch = record.get("branch")
    return replace(
        plan,
        limits=None if plan.limits is None else {**plan.limits, "disk": made},
        resume_args=resume,
        env={**plan.env, **more},
        branch=check_branch(branch) if branch else "",
    )

"""Podman: the engine's CLI, with rootless user mapping, CDI GPUs and podman's error hints."""

import os
from pathlib import Path

from am import files
from am.backends.engine import IMAGE_UID, Engine, agent_uid
from am.errors import AmError

# Where containers-common puts the engine's default seccomp profile (containers.conf's
# seccomp_profile wins). Docker's default profile refuses new namespaces to a process without
# CAP_SYS_ADMIN (so `unshare -r`, a user namespace with uid 0 in it, fails); podman's allows
# them. Agents get podman's own profile with docker's rule for clone, clone3 and unshare.
SECCOMP_DEFAULTS = ("/usr/share/containers/seccomp.json", "/etc/containers/seccomp.json")
NEW_NAMESPACES = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
ENOSYS, EPERM = 38, 1
CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
RUNSC_PATHS = (
    "/usr/bin/runsc",
    "/usr/sbin/runsc",
    "/usr/local/bin/runsc",
    "/usr/local/sbin/runsc",
    "/bin/runsc",
    "/sbin/runsc",
)  # podman's defaults
CDI_KIND = "nvidia.com/gpu"
CDI_HINT = (
    "generate a CDI specification: 'sudo nvidia-ctk cdi generate --output="
    "/etc/cdi/nvidia.yaml' (NVIDIA Container Toolkit); or leave out --gpus"
)


def may_set(data: bytes, key: str) -> bool:
    """Whether the TOML text DATA may set KEY: a line that is not a comment names it, or
    holds an escape (a quoted key may spell KEY with ``\\u``). Most containers.conf files
    name their keys only in comments, and a spawn need not import tomllib and parse 24 kB to
    learn that (about 10 ms of a podman spawn)."""
    marks = (key.encode(), b"\\u", b"\\U")
    return any(
        not ln.lstrip().startswith(b"#") and any(m in ln for m in marks) for ln in data.splitlines()
    )


def conf_setting(conf: str, section: str, key: str):
    """KEY of the table SECTION in the containers.conf file CONF; None when there is no such
    file, table or key, or the file does not parse. Parsed only where a line may set KEY."""
    try:
        with open(conf, "rb") as f:
            data = f.read()
        if not may_set(data, key):
            return None
        import tomllib

        table = tomllib.loads(data.decode()).get(section)
    except (OSError, ValueError):
        return None
    return table.get(key) if isinstance(table, dict) else None


def _conf_value(section: str, key: str):
    """A value of containers.conf (the user's, then the system's), or None."""
    confs = [
        os.environ.get("CONTAINERS_CONF"),
        str(Path.home() / ".config/containers/containers.conf"),
        "/etc/containers/containers.conf",
        "/usr/share/containers/containers.conf",
    ]
    for conf in filter(None, confs):
        value = conf_setting(conf, section, key)
        if value is not None:
            return value
    return None


def default_seccomp() -> Path | None:
    """The engine's own default seccomp profile on this host."""
    conf = _conf_value("containers", "seccomp_profile")
    for candidate in ([conf] if isinstance(conf, str) else []) + list(SECCOMP_DEFAULTS):
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def no_new_namespaces(profile: dict) -> dict:
    """PROFILE with docker's rule: clone and unshare only without namespace flags, clone3
    ENOSYS (so the C library falls back to clone, whose flags seccomp can see)."""
    out = dict(profile)
    rules = []
    for rule in profile.get("syscalls", []):
        names = [n for n in rule.get("names", []) if n not in ("clone", "clone3", "unshare")]
        if names:
            rules.append({**rule, "names": names})
    flags = {"value": NEW_NAMESPACES, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    s390 = ["s390", "s390x"]
    rules += [
        {
            "names": ["clone", "unshare"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, **flags}],
            "excludes": {"arches": s390},
        },
        {
            "names": ["unshare"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, **flags}],
            "includes": {"arches": s390},
        },
        # s390's clone takes the flags second
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 1, **flags}],
            "includes": {"arches": s390},
        },
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
    ]
    # What the rules above do not allow would fail with the profile's default (podman's:
    # ENOSYS); a new namespace fails with EPERM instead, as on docker.
    for bit in (b for b in range(32) if NEW_NAMESPACES >> b & 1):
        mask = {"value": 1 << bit, "valueTwo": 1 << bit, "op": "SCMP_CMP_MASKED_EQ"}
        rules += [
            {
                "names": ["clone", "unshare"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": EPERM,
                "args": [{"index": 0, **mask}],
                "excludes": {"arches": s390},
            },
            {
                "names": ["unshare"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": EPERM,
                "args": [{"index": 0, **mask}],
                "includes": {"arches": s390},
            },
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": EPERM,
                "args": [{"index": 1, **mask}],
                "includes": {"arches": s390},
            },
        ]
    out["syscalls"] = rules
    return out


_made: dict[str, Path] = {}  # state folder -> the profile this process found or wrote there


def seccomp_profile(write: bool = True, layout=None) -> Path:
    """The agents' profile, derived from the engine's default, under the state folder of
    LAYOUT (named by its content, so a podman upgrade gets a new one)."""
    import json

    from am import paths

    folder = (layout or paths.layout()).state_dir / "seccomp"
    if str(folder) in _made:
        return _made[str(folder)]  # a spawn asks twice: to make it, then for its flag
    default = default_seccomp()
    if default is None:
        raise AmError(
            "cannot find podman's default seccomp profile (looked in "
            f"{', '.join(SECCOMP_DEFAULTS)} and containers.conf)",
            "install containers-common, which podman needs",
        )
    raw = default.read_bytes()
    path = folder / f"podman-{files.sha256_hex(raw)[:16]}.json"
    if write and not path.is_file():
        paths.private_dir(folder)
        try:
            profile = no_new_namespaces(json.loads(raw))
        except ValueError as e:
            raise AmError(f"cannot read podman's seccomp profile {default}: {e}") from None
        files.write_atomic(path, json.dumps(profile, indent=1) + "\n")
    if write:
        _made[str(folder)] = path
    return path


LIMIT_CONTROLLERS = ("memory", "cpu", "pids")


def remote(environ=os.environ) -> bool:
    """Whether podman talks to a service (CONTAINER_HOST, a connection) rather than runs here."""
    return bool(environ.get("CONTAINER_HOST") or environ.get("CONTAINER_CONNECTION"))


def limits_verdict(info: str) -> str | None:
    """Why podman would ignore limits, from ``podman info``'s rootless flag, cgroup version and
    controllers (tab-separated); None when it enforces them (pure)."""
    rootless, _, rest = info.strip().partition("\t")
    version, _, controllers = rest.partition("\t")
    have = controllers.strip("[] \n").split()
    missing = [c for c in LIMIT_CONTROLLERS if c not in have]
    if not missing:
        return None
    who = "rootless Podman" if rootless == "true" else "Podman"
    where = (
        "on this cgroup v1 host"
        if version == "v1"
        else f"here (cgroup controllers {', '.join(missing)} not delegated to this user)"
    )
    return f"{who} ignores memory, CPU and process limits {where}"


def cdi_dirs() -> list[Path]:
    """Where podman looks for CDI specifications: the defaults, or containers.conf's list."""
    dirs = list(CDI_DIRS)
    confs = [
        os.environ.get("CONTAINERS_CONF"),
        "/etc/containers/containers.conf",
        str(Path.home() / ".config/containers/containers.conf"),
    ]
    for conf in filter(None, confs):
        listed = conf_setting(conf, "engine", "cdi_spec_dirs")
        if isinstance(listed, list):
            dirs = [str(d) for d in listed]
    return [Path(d) for d in dirs]


def has_gpu_cdi_spec(dirs: list[Path]) -> bool:
    """Whether any CDI specification in DIRS declares NVIDIA GPUs."""
    for d in dirs:
        try:
            files = sorted(d.iterdir())
        except OSError:
            continue
        for f in files:
            if f.suffix in (".json", ".yaml", ".yml"):
                try:
                    if CDI_KIND in f.read_text(errors="replace"):
                        return True
                except OSError:
                    continue
    return False


class Podman(Engine):
    runtime = "podman"
    title = "Podman"
    install_hint = "install it, e.g. 'apt-get install podman runc'"
    host_vars = ("CONTAINER_HOST", "CONTAINER_CONNECTION")
    local_daemon_hint = "start the Podman service or check 'podman system connection'"

    permission_hint = "check the permissions of the Podman socket named by CONTAINER_HOST"

    def gated(self, plan) -> bool:
        # Local podman under runc: its keeper reads conmon's sockets, which 'run --detach'
        # makes as 'init' did. (A podman service is reached through its API, as docker is;
        # gVisor keeps create, init and start.)
        from am import isolation

        return self.api is None and (plan.isolation or isolation.DEFAULT) == "runc"

    def served_argv(self, argv: list[str], extra: dict[str, str]) -> list[str] | None:
        # A podman here, as the gate's 'run --detach' (runc): see am/podmanservice.py. The
        # service has this engine's environment; what the agent adds reaches only the client,
        # which reads --env NAME's value itself. So none of that may be podman's own setting.
        from am import podmanservice

        env = self.environ
        if (
            self.api is not None
            or remote(env)
            or argv[1:2] != ["run"]
            or env.get("AM_PODMAN_SERVICE") == "0"
            or any(podmanservice.podman_reads(k) and env.get(k) != v for k, v in extra.items())
        ):
            return None
        return podmanservice.served_argv(argv, self.layout.run_text, env)

    def missed_service(self, err: str) -> bool:
        from am import podmanservice

        return podmanservice.unreachable(err)

    def find_api(self, env):
        from am import hostos

        api = None
        if env.get("CONTAINER_HOST"):  # engineapi.podman_endpoint's rule; else no import
            from am import engineapi

            api = engineapi.podman_endpoint(env)
        if api is None and not hostos.linux():
            # No conmon here to talk to (its sockets are Linux's): podman runs in a VM.
            raise AmError(
                "podman here runs its containers elsewhere (a podman machine): am "
                "reaches it through its API",
                "set CONTAINER_HOST to the machine's socket, e.g. unix://$(podman "
                "machine inspect --format '{{.ConnectionInfo.PodmanSocket.Path}}')",
            )
        return api

    limits_hint = (
        "use Docker ('--runtime docker', as a member of the docker group), run am as "
        "root, or use a cgroup v2 host whose systemd delegates the memory, cpu and "
        "pids controllers to users"
    )

    def find_limits_problem(self) -> str | None:
        if os.getuid() == 0 and not remote(self.environ):
            return None  # rootful podman on this host: the host's cgroups, v1 or v2
        res = self.call(
            "info",
            "--format",
            "{{.Host.Security.Rootless}}\t{{.Host.CgroupsVersion}}\t{{.Host.CgroupControllers}}",
            timeout=60,
        )
        if not res.ok:
            raise self.explain(res.err or res.out)
        return limits_verdict(res.out)

    def security_args(self) -> list[str]:
        # A podman service reads the profile on its own machine, where am's file is not: a
        # remote agent keeps podman's default profile (docs/scale.md).
        if self.remote:
            return []
        return ["--security-opt", f"seccomp={seccomp_profile(write=False, layout=self.layout)}"]

    def image_labels(self, image: str) -> dict | None:
        # A local store: the labels read once hold while podman's image file is unchanged
        # (am/imagecache.py), which spares 50 agents spawned at once 50 podman clients.
        if self.remote or self.environ.get("CONTAINER_CONNECTION"):
            return super().image_labels(image)
        from am import imagecache

        state = self.layout.state_dir
        opened: list[imagecache.LabelCache] = []

        def look() -> dict | None:
            opened[:] = [imagecache.LabelCache(state / "podman-image-labels.json")]
            return opened[0].get(image)

        def inspect() -> dict | None:
            # The last look's cache: its stamp was taken before podman is asked.
            res = self.call("image", "inspect", "--format", imagecache.INSPECT_FORMAT, image)
            if not res.ok:
                return self.missing_image(res)
            labels, store = imagecache.parse(res.out)
            opened[0].put(image, labels, store)
            return labels

        # A cold AM_HOME with 50 agents spawned at once: one inspect, not 50 (1.5 s of CPU).
        return files.fill_once(state / "podman-image-labels.lock", look, inspect)

    def ensure_security(self) -> None:
        if not self.remote:
            seccomp_profile(layout=self.layout)

    def user_args(self, uid: int, gid: int) -> list[str]:
        if self.remote:
            return ["--user", f"{IMAGE_UID}:{IMAGE_UID}"]
        if uid == 0:
            return ["--user", f"{agent_uid()}:{agent_uid()}"]
        # Rootless: map the caller to the same uid inside, so files in /workspace stay theirs.
        return ["--userns=keep-id", "--user", f"{uid}:{gid}"]

    def home_owner(self, uid: int, gid: int) -> str:
        # podman has no uid=/gid= tmpfs options; U chowns the tmpfs to the container's user.
        return "mode=0700,U"

    def gpu_args(self, gpus: str | None) -> list[str]:
        if not gpus:
            return []
        if gpus == "all":
            ids = ["all"]
        elif gpus.isdigit():
            ids = [str(i) for i in range(int(gpus))]
        else:
            ids = [g.strip() for g in gpus.removeprefix("device=").split(",") if g.strip()]
        return [a for i in ids for a in ("--device", f"{CDI_KIND}={i}")]

    def check_gpu_support(self) -> None:
        # A local podman resolves GPUs from CDI files on this host: cheap to look for. A remote
        # one (CONTAINER_HOST) has its own; its failure is translated by gpu_error.
        if remote(self.environ):
            return
        dirs = cdi_dirs()
        if not has_gpu_cdi_spec(dirs):
            raise AmError(
                "Podman has no GPU support configured: no CDI specification for "
                f"{CDI_KIND} in {' or '.join(map(str, dirs))}",
                CDI_HINT,
            )

    def gpu_error(self, text: str) -> AmError | None:
        low = text.lower()
        if "unresolvable cdi devices" in low or "cdi" in low and CDI_KIND in low:
            return AmError(
                f"Podman has no GPU support configured: it cannot resolve the CDI "
                f"device {CDI_KIND}",
                CDI_HINT,
            )
        return None

    def gvisor_problem(self, network: str) -> AmError | None:
        from am import proc

        # podman finds runsc by name in its runtime search paths; a remote one has its own.
        if remote(self.environ):
            return None
        if proc.which("runsc") or any(Path(p).is_file() for p in RUNSC_PATHS):
            return None
        return AmError(
            "runsc (gVisor) not found: podman cannot run gVisor sandboxes",
            "install it: 'sudo apt-get install runsc'; or use --isolation runc",
        )

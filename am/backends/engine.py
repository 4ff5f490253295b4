"""Container mode, shared by docker and podman: compose their command lines, run them
through ``am.proc``.

No engine SDK: the CLIs are the contract, so DOCKER_HOST, CONTAINER_HOST, contexts and
connections work as the user configured them. Engine-specific differences live in
``docker.py`` and ``podman.py``; everything here is common to both.
"""

import contextlib
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from am import proc
from am.backends.base import Backend
from am.backends.hostside import (  # noqa: F401 (engine's to its importers, as before)
    AGENT_HOME,
    AGENT_UID,
    AGENT_UID_ENV,
    UNSAFE_MOUNT_CHARS,
    Volume,
    agent_uid,
    check_agent_uid,
    check_mount_path,
    finish_grant,
    grant,
    host_paths,
    identity_files,
    mount_arg,
    start_grant,
    uid_problem,
    workspace_volume,
)
from am.errors import AmError
from am.validate import DEFAULT_IMAGE
from am.valueclass import replace

WORKSPACE = "/workspace"
CONFIG_STAGE = "/run/am-agent-config"  # --mount-agent-config's read-only files, copied from here
# On a remote engine agents run as the image's own user, who owns its /workspace (and so a new
# volume there): this host's accounts say nothing of the engine's machine (docs/scale.md).
IMAGE_UID = 1000
SANDBOX_PREFIX = "am_op-"  # throwaway containers that read a stopped agent's workspace
# A sandbox's commands are found here, never in the agent's writable home (the image's PATH
# starts with /home/agent/.local/bin).
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FORWARDED_ENV = (
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "CONTAINERS_CONF",
    "CONTAINER_SSHKEY",
)


class AgentExited(AmError):
    """The agent's container started, and the agent ended while the spawn waited for it."""

    def __init__(self, agent_id: str, exit_code, output: list[str]):
        super().__init__(
            f"agent {agent_id} exited with code {exit_code} while starting",
            f"its output: 'am logs {agent_id}'; 'am rm {agent_id}' removes it",
        )
        self.exit_code = exit_code
        self.output = output


# Said once a process: the children of a --count spawn inherit what their parent said.
WARNED: set[tuple[str, str]] = set()

# What an engine error adds to no purpose; compiled at the first error (re's cache).
NOISE = r"(?i)^(see|run) '\S+ \S+ --help'|^\s*$"


def log_tail(log: Path, size: int = 1 << 16) -> str:
    """The last SIZE bytes of an agent's log (and of its rotated part, if the log was just
    rotated), as text: never the whole of a log that may be large."""
    parts = []
    for path in (log.with_name(log.name + ".1"), log):
        try:
            with open(path, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - size))
                parts.append(f.read(size))
        except OSError:
            pass
    return b"".join(parts)[-size:].decode(errors="replace")


def last_lines(text: str, n: int = 10) -> list[str]:
    """The last N lines of an agent's terminal output, without blank ones or carriage returns."""
    lines = [ln.replace("\r", "").rstrip() for ln in text.splitlines()]
    return [ln for ln in lines if ln.strip()][-n:]


def error_lines(text: str, n: int = 6) -> str:
    """An engine client's error lines as one line: what it said, without its usage pointer
    ("See 'docker run --help'."), the last N of them."""
    lines = [ln.strip() for ln in last_lines(text, 50) if not re.search(NOISE, ln.strip())]
    return " / ".join(lines[-n:]) or "no output"


# Docker's and podman's words for a --publish whose host port another program holds.
PORT_TAKEN = re.compile(
    r"listen tcp[46]? \[?([0-9a-f.:]*?)\]?:(\d+): bind: address already in use"
    r"|bind for \[?([0-9a-f.:]*?)\]?:(\d+) failed: port is already allocated",
    re.IGNORECASE,
)


def port_taken_hint(text: str) -> str | None:
    """The fix for an engine's failure TEXT when a published host port is in use, else None
    (pure)."""
    m = PORT_TAKEN.search(text)
    if m is None:
        return None
    port = m.group(2) or m.group(4)
    return (
        f"host port {port} is in use here: publish on another host port ('--publish "
        f"OTHER_PORT:CONTAINER_PORT'), or see what holds it: ss -ltnp 'sport = :{port}' (an "
        "agent's: 'am list --json' shows each one's publish)"
    )


def worktree_gitdir(workspace: Path) -> Path:
    """The worktree's own folder in the source's git folder, as its ``.git`` file names it.
    Read only right after ``git worktree add``, before any agent could change the file."""
    text = (workspace / ".git").read_text()
    return Path(text.partition("gitdir:")[2].strip())


# Copies the N files named after N from CONFIG_STAGE into $HOME, then runs the command that
# follows them. Copies, not links, so a CLI may rewrite its own files in its home (a refreshed
# token) while the host's stay as they were.
COPY_CONFIG = (
    'umask 077; n=$1; shift; while [ "$n" -gt 0 ]; do '
    'mkdir -p "$HOME/$(dirname "$1")" && '
    f'cp -R "{CONFIG_STAGE}/$1" "$HOME/$1" || '
    'echo "am: cannot copy ~/$1 into the agent\'s home" >&2; n=$((n - 1)); shift; '
    'done; exec "$@"'
)


def keeper_gates(layout) -> bool:
    """Whether the keeper of LAYOUT's AM_HOME releases start gates: one of an older am (it
    runs on, across an upgrade, while it has agents) does not, and its agents start with
    ``create`` and ``start`` as it expects."""
    from am import keepersock

    return keepersock.request(layout, {"op": "ping"}).get("gate") is True


def own_image(image: str) -> bool:
    """Whether IMAGE is a tag of am's own agent image: one am builds, whose users am knows and
    which has no entrypoint of its own."""
    return image.split(":")[0] == DEFAULT_IMAGE.split(":")[0]


def with_config_copies(paths: list[str], command: list[str]) -> list[str]:
    """COMMAND, first copying --mount-agent-config's PATHS (relative to the home) into the
    container's own home."""
    if not paths:
        return command
    return ["sh", "-c", COPY_CONFIG, "am-config", str(len(paths)), *paths, *command]


class Engine(Backend):
    """A container engine driven through its CLI."""

    mode = "container"
    runtime = ""
    title = ""
    install_hint = ""

    # -- composition (pure) -------------------------------------------------------------------

    def user_args(self, uid: int, gid: int) -> list[str]:
        """Who the agent runs as: never uid 0 inside; the image's user on a remote engine,
        where this host's user ids mean nothing (and its accounts cannot be checked)."""
        if self.remote:
            return ["--user", f"{IMAGE_UID}:{IMAGE_UID}"]
        if uid == 0:
            return ["--user", f"{agent_uid()}:{agent_uid()}"]
        return ["--user", f"{uid}:{gid}"]

    def gpu_args(self, gpus: str | None) -> list[str]:
        return []

    def check_gpu_support(self) -> None:
        """Raise AmError when the engine cannot give containers GPUs, where that is cheap to
        tell before anything starts."""

    def gpu_error(self, text: str) -> AmError | None:
        """The clear error for an engine's GPU failure in TEXT, if that is what it is."""
        return None

    def gvisor_problem(self, network: str) -> AmError | None:
        """Why this engine cannot run a gVisor agent with network policy NETWORK, if it
        cannot; None when it can, as far as can be told without starting one."""
        return None

    def security_args(self) -> list[str]:
        """Engine-specific confinement beyond the common policy (podman: a seccomp profile)."""
        return []

    def ensure_security(self) -> None:
        """Make what ``security_args`` names (before a container that uses it starts)."""

    def policy_args(self, limits: dict, uid: int, gid: int, isolation: str) -> list[str]:
        """What every container of an agent gets, its own and its workspace's sandbox: no
        capabilities, no new privileges, a read-only root, the limits (the process limit as
        the ISOLATION enforces it), a non-root user."""
        from am import isolation as kernels

        return [
            "--memory",
            limits["memory"],
            "--memory-swap",
            limits["memory"],
            "--cpus",
            str(limits["cpus"]),
            *kernels.pids_args(isolation, int(limits["pids"]), os.cpu_count() or 1),
            "--init",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            *self.security_args(),
            "--read-only",
            *self.user_args(uid, gid),
        ]

    @staticmethod
    def detached_head(head: list[str]) -> list[str]:
        """HEAD (``[engine, ..., "run", ...]``) made the start of a detached agent container:
        ``create``, so that am's keeper is on its terminal before it starts and not a byte
        of its output is lost or unthrottled."""
        i = head.index("run")
        return [*head[:i], "create", *head[i + 1 :]]

    def gated(self, plan) -> bool:
        """Whether PLAN's container starts with one ``run --detach``, its command held by a
        gate until am's keeper holds its terminal (``am/gate.py``), rather than ``create``
        and a later ``start``."""
        return False

    def run_argv(self, plan, home: str, uid: int, gid: int, gated: bool | None = None) -> list[str]:
        """The command line that makes an agent's container, with its own terminal, detached
        (``detached_head``), or, GATED (``self.gated(plan)`` unless given), started held
        (``am/gate.py``)."""
        from am import gate, isolation

        limited = plan.network == "limited"
        if limited:
            from am.backends import network
        command = with_config_copies(plan.config_copies, plan.agent_argv())
        command = network.wrap_command(command, plan.publish) if limited else command
        head = isolation.run_head(self.runtime, plan.isolation or isolation.DEFAULT, plan.network)
        gated = self.gated(plan) if gated is None else gated
        if gated:
            i = head.index("run") + 1
            head = [*head[:i], "--detach", *head[i:]]
            gate_mount = ["--mount", mount_arg(self.layout.gate_file(plan.id), gate.TARGET, True)]
        else:
            head, gate_mount = self.detached_head(head), []
        argv = [
            *head,
            "--interactive",
            "--tty",
            "--pull",
            "never",
            "--name",
            plan.container,
            "--hostname",
            plan.container,
            "--label",
            f"am.agent={plan.id}",
            "--label",
            f"am.home={home}",
            "--network",
            plan.network_name,
            *self.policy_args(plan.limits, uid, gid, plan.isolation or isolation.DEFAULT),
            # exec, as a developer's /tmp and home are (go test runs its binaries from /tmp,
            # pip --user installs into ~/.local/bin); docker alone made them noexec, and
            # the agent can run what it writes in /workspace anyway.
            "--tmpfs",
            "/tmp:rw,exec,nosuid,nodev,size=1g,mode=1777",
            "--tmpfs",
            f"{AGENT_HOME}:rw,exec,nosuid,nodev,size=1g,{self.home_owner(uid, gid)}",
            "--log-driver",
            "none",  # the host log is the keeper's (am/keeper.py)
            "--mount",
            mount_arg(Volume(plan.volume) if plan.volume else plan.workspace, WORKSPACE),
            *[a for m in plan.extra_mounts for a in ("--mount", mount_arg(*m))],
            *gate_mount,
            "--workdir",
            WORKSPACE,
            "--env",
            f"HOME={AGENT_HOME}",
            "--env",
            "TERM=xterm-256color",
            # values: from the client's environment, never its arguments
            *[a for name in [*plan.env_names, *plan.env] for a in ("--env", name)],
            *self.gpu_args(plan.gpus),
            *(network.agent_run_args(plan.network_files, plan.publish) if limited else []),
            *[
                a
                for p in (plan.publish if plan.network == "full" else [])
                for a in ("--publish", p)
            ],
            "--",
            plan.image,
            *(gate.command(command) if gated else command),
        ]
        self.refuse_host_mounts(argv)
        return argv

    def refuse_host_mounts(self, argv: list[str]) -> None:
        """A remote engine mounts a path of its own machine: an empty or wrong folder, never
        the one meant here. Refuse, loudly, rather than start anything on it."""
        paths = host_paths(argv) if self.remote else []
        if paths:
            raise AmError(
                f"{self.title} runs on another machine ({self.api.url}): it cannot "
                f"mount {paths[0]} of this one",
                "on a remote engine the workspace lives in an engine volume; "
                "--network limited, --mount-agent-config and --worktree need a local "
                "engine (docs/scale.md)",
            )

    def sandbox_argv(
        self,
        name: str,
        image: str,
        home: str,
        agent_id: str,
        limits: dict,
        mounts: list[tuple[Path, str, bool]],
        uid: int,
        gid: int,
        command: list[str],
        isolation: str,
        stdin: bool = False,
    ) -> list[str]:
        """A throwaway container that reads a stopped agent's workspace: the agent's policy,
        isolation and user, no network, its mounts (read-only where given so), removed when it
        ends."""
        from am import isolation as kernels

        argv = [
            *kernels.run_head(self.runtime, isolation, "none"),
            "--rm",
            "--pull",
            "never",
            "--name",
            name,
            "--label",
            f"am.op={agent_id}",
            "--label",
            f"am.home={home}",
            "--network",
            "none",
            *self.policy_args(limits, uid, gid, isolation),
            "--tmpfs",
            "/tmp:rw,nosuid,nodev,size=1g,mode=1777",
            "--log-driver",
            "none",
            *(["--interactive"] if stdin else []),
            *[a for m in mounts for a in ("--mount", mount_arg(*m))],
            "--workdir",
            "/",
            "--env",
            "HOME=/tmp",
            "--env",
            f"PATH={SANDBOX_PATH}",
            "--entrypoint",
            command[0],
            "--",
            image,
            *command[1:],
        ]
        self.refuse_host_mounts(argv)
        return argv

    def exec_argv(self, name: str, uid: int, gid: int, command: list[str]) -> list[str]:
        """COMMAND in the running container NAME, as the agent's user."""
        user = self.user_args(uid, gid)
        return [
            self.runtime,
            "exec",
            "--user",
            user[user.index("--user") + 1],
            "--workdir",
            "/",
            "--env",
            f"PATH={SANDBOX_PATH}",
            name,
            *command,
        ]

    def home_owner(self, uid: int, gid: int) -> str:
        """The tmpfs option that gives the agent's home to the user the agent runs as (the
        engines take the mount point's root-owned mode from the image otherwise)."""
        if self.remote:
            uid = gid = IMAGE_UID
        elif uid == 0:
            uid = gid = agent_uid()
        return f"mode=0700,uid={uid},gid={gid}"

    def push_argvs(self, tag: str, remote: str) -> list[list[str]]:
        """Name the image TAG also REMOTE, then push it there."""
        return [[self.runtime, "tag", tag, remote], [self.runtime, "push", remote]]

    def ps_argv(self, home: str, all_states: bool) -> list[str]:
        argv = [self.runtime, "ps", "--filter", f"label=am.home={home}", "--format", "{{.Names}}"]
        return argv + (["--all"] if all_states else [])

    # -- calls --------------------------------------------------------------------------------

    def call(self, *args: str, timeout: float | None = None) -> proc.Result:
        from am import paths

        try:
            # The engine keeps its own files as it would for the user (podman makes a
            # container's /etc/hosts and storage with it); am's umask is for am's files.
            with paths.umask(paths.user_umask()):
                return proc.run([self.runtime, *args], timeout=timeout)
        except proc.NotFound:
            raise AmError(f"{self.title} not found in PATH", self.install_hint) from None

    def check(self) -> None:
        res = self.call("version", "--format", "{{.Server.Version}}", timeout=30)
        if not res.ok:
            raise self.explain(res.err or res.out)

    # Whether the engine enforces limits here; asked once per instance (a spawn asks twice
    # when ``auto`` chose the engine).
    _limits: tuple[str | None] | None = None
    limits_hint = ""

    def limits_problem(self) -> str | None:
        """Why this engine cannot enforce memory, CPU and process limits here (None if it
        can); raises AmError when the engine does not answer."""
        if self._limits is None:
            self._limits = (self.find_limits_problem(),)
        return self._limits[0]

    def find_limits_problem(self) -> str | None:
        raise NotImplementedError

    def check_limits(self) -> None:
        """Refuse, before anything is made, an engine that would silently ignore the limits."""
        problem = self.limits_problem()
        if problem:
            raise AmError(
                f"{problem}, so am will not start a container agent with it", self.limits_hint
            )

    host_vars: tuple[str, ...] = ()  # variables that point the client at another daemon
    local_daemon_hint = ""

    def daemon_hint(self) -> str:
        """How to get an answer: from the daemon a variable names, when one is set."""
        for var in self.host_vars:
            if self.environ.get(var):
                return (
                    f"nothing answers at {var}={self.environ[var]}: start the {self.title} "
                    f"daemon it names, or unset {var} to use the local one"
                )
        return self.local_daemon_hint

    def known_cause(self, text: str) -> AmError | None:
        """The engine's failure TEXT as one clear error with its fix, if its cause is known."""
        low = text.lower()
        lines = low.splitlines()

        def said(*words):  # on one line: a missing program in a run is not a missing socket
            return any(all(w in ln for w in words) for ln in lines)

        if said("permission denied", "sock"):
            return AmError(f"permission denied on the {self.title} socket", self.permission_hint)
        if (
            "cannot connect to" in low
            or "is the docker daemon running" in low
            or said("sock", "connection refused")
            or said("sock", "no such file or directory")
        ):
            return AmError(f"{self.title} daemon is not running", self.daemon_hint())
        return None

    def explain(self, text: str) -> AmError:
        """Turn an engine's failure text into one clear error: its cause and fix where known,
        else the engine's own error lines (not just the last, which is often only usage)."""
        return self.known_cause(text) or AmError(f"{self.title} failed: {error_lines(text)}")

    def failure(self, what: str, text: str) -> AmError:
        """WHAT failed, and why: the known cause of the engine's TEXT with its fix, else the
        engine's own error lines."""
        cause = self.known_cause(text)
        if cause:
            cause.message = f"{what}: {cause.message}"
            return cause
        return AmError(
            f"{what}: {error_lines(text)}" if text.strip() else what, port_taken_hint(text)
        )

    def image_exists(self, image: str) -> bool:
        """Whether the engine has IMAGE; raises the engine's own trouble (daemon, permission)."""
        return self.image_labels(image) is not None

    def image_labels(self, image: str) -> dict | None:
        """IMAGE's labels ({} for none), or None when the engine does not have it; raises the
        engine's own trouble (daemon, permission)."""
        import json

        res = self.call("image", "inspect", "--format", "{{json .Config.Labels}}", image)
        if res.ok:
            try:
                return json.loads(res.out) or {}
            except ValueError:
                return {}
        return self.missing_image(res)

    def missing_image(self, res: proc.Result) -> None:
        """None for a failed image inspect RES that says there is no such image; else raises
        the engine's own trouble (daemon, permission)."""
        text = (res.err or res.out).lower()
        if "no such image" in text or "image not known" in text:
            return None
        raise self.explain(res.err or res.out)

    def build_image(self, tag: str = DEFAULT_IMAGE, clis=None) -> None:
        """Build the agent image from the Containerfile with the agent CLIs CLIS (the
        configured set when None), streaming the build's progress."""
        from am import image

        if clis is None:
            from am import config

            clis = config.load().resolve()["agent_clis"].value
        clis = image.parse_clis(clis)
        note = (
            f"agent CLIs: {', '.join(clis)}; any not yet in {image.build_dir()} is first "
            "downloaded from its package registry (AM_OFFLINE=1 refuses)"
            if clis
            else "no agent CLI"
        )
        self.run_build_script(
            "build-image.sh", tag, "agent image", ["--agents", ",".join(clis)], note
        )

    def run_build_script(self, script: str, tag: str, what: str, extra=(), note="") -> None:
        """Build WHAT as TAG with one of am's offline build scripts, streaming its output."""
        from am import image

        path = image.data_root() / "scripts" / script
        if not path.is_file():
            raise AmError(
                f"cannot build the {what}: {path} is missing",
                "reinstall am: its package carries the build files",
            )
        print(
            f"Building {what} (this may take a few minutes)..." + (f"\n  {note}" if note else ""),
            file=sys.stderr,
            flush=True,
        )
        from am import paths

        env = {**os.environ, "AM_BUILD_DIR": str(image.build_dir())}
        # An image is no secret of the user's: its files must be readable by whoever the
        # agent runs as (am's umask 077 made the proxy's /usr/sbin unreadable to it).
        with paths.umask(0o022):
            res = proc.stream(
                ["bash", str(path), "--runtime", self.runtime, "--tag", tag, *extra],
                env=env,
                on_line=lambda line: print(line, end="", file=sys.stderr, flush=True),
            )
        if not res.ok:
            raise AmError(f"{what} build failed; its last lines:\n{res.last_lines(12)}")

    def push(self, tag: str, remote: str) -> None:
        """Push the image TAG to the registry reference REMOTE, streaming the engine's
        progress; the registry's credentials are the engine's own (docker/podman login)."""
        print(f"Pushing {remote} ...", file=sys.stderr, flush=True)
        for argv in self.push_argvs(tag, remote):
            res = proc.stream(
                argv, on_line=lambda line: print(line, end="", file=sys.stderr, flush=True)
            )
            if not res.ok:
                raise AmError(
                    f"{' '.join(argv[:2])} failed: {res.brief()}",
                    push_hint(self.runtime, res.last_lines(3), remote),
                )

    def prepare(self, plan):
        # First, before an image is built: whether the limits the agent is promised would hold.
        self.check_limits()
        self.ensure_security()
        from am import image, versions

        if os.getuid() == 0:
            check_agent_uid()  # before a build: a uid that is someone's is refused at once
        cli = image.needed_cli(plan.command)
        labels = self.image_labels(plan.image)
        if labels is None:
            # am builds its own image (any tag of am-agent) on first use; others must exist.
            if not own_image(plan.image):
                raise AmError(
                    f"image {plan.image!r} not found in {self.title}",
                    "build or load it first, or leave out --image",
                )
            self.build_image(plan.image, [*plan.agent_clis, *([cli] if cli else [])])
            labels = self.image_labels(plan.image)
        image.check_has_cli(self, plan.image, labels, cli, plan.agent)
        for program, (ok, text) in (
            ("runc", versions.runc_status()),
            ("git", versions.git_status()),
        ):
            if ok is False and (program, text) not in WARNED:
                WARNED.add((program, text))
                print(f"am: warning: {program} {text}", file=sys.stderr)
        if plan.gpus:
            self.check_gpu_support()
        if plan.isolation == "gvisor":
            # A limited agent's proxy runs under gVisor too.
            for kind in (plan.network, "proxy") if plan.network == "limited" else (plan.network,):
                problem = self.gvisor_problem(kind)
                if problem:
                    raise problem
        check_mount_path(plan.workspace)
        if self.remote or plan.volume:
            plan = self.prepare_remote(plan)
        if plan.network == "limited":
            from am.backends import network

            network.prepare(self, plan)
        return plan

    def prepare_remote(self, plan):
        """An engine on another machine: the workspace goes into a volume of its own there
        (PLAN with it is returned); what needs a host path mounted is refused before anything
        is made."""
        if not self.remote:
            raise AmError(
                f"agent {plan.id}'s workspace is in the volume {plan.volume} of a "
                f"remote engine, but {self.title} is now reached locally",
                "set DOCKER_HOST, the docker context or CONTAINER_HOST as when it was spawned",
            )
        for flag, used in (
            ("--network limited", plan.network == "limited"),
            ("--mount-agent-config", bool(plan.config_copies)),
            ("--worktree", plan.worktree),
        ):
            if used:
                raise AmError(
                    f"{flag} needs a local engine: {self.title} at "
                    f"{self.api.url} cannot mount this host's files",
                    "leave it out, or use a local engine (docs/scale.md)",
                )
        return replace(plan, volume=workspace_volume(plan.id))

    def volume_home(self, name: str) -> str | None:
        """The am.home label of volume NAME; None when there is no such volume."""
        res = self.call(
            "volume", "inspect", "--format", '{{index .Labels "am.home"}}', name, timeout=60
        )
        return res.out.strip() if res.ok else None

    def seed_volume(self, plan, home: str) -> bool:
        """Put the host's fresh clone of PLAN into its volume on the engine's machine (a tar
        stream through a throwaway container with the agent's policy), then remove the host
        copy (and so its link to the cache's mirror). False when the volume already holds the
        workspace (am start)."""
        import shutil
        import subprocess

        owner = self.volume_home(plan.volume)
        if owner is not None:
            if owner != home:
                raise AmError(
                    f"the volume {plan.volume} is not this AM_HOME's",
                    "remove it, or choose another AM_HOME",
                )
            return False
        if not plan.workspace.is_dir():
            raise AmError(
                f"agent {plan.id} has no workspace: neither {plan.workspace} nor "
                f"the volume {plan.volume}",
                "remove it with 'am rm'",
            )
        if plan.mirror:
            # Its objects are the cache's, by a host path: copy them in, then drop the link.
            from am import git, gitsafe

            repo = gitsafe.open_clone(plan.workspace, gitsafe.mirror_objects(plan.mirror))
            git.ws_git(repo, "repack", "-a", "-d", "-q")
            (plan.workspace / ".git" / "objects" / "info" / "alternates").unlink(missing_ok=True)
        res = self.call(
            "volume",
            "create",
            "--label",
            f"am.home={home}",
            "--label",
            f"am.agent={plan.id}",
            plan.volume,
            timeout=60,
        )
        if not res.ok:
            raise self.explain(res.err or res.out)
        from am import isolation

        argv = self.sandbox_argv(
            f"{SANDBOX_PREFIX}{plan.id}-seed",
            plan.image,
            home,
            plan.id,
            plan.limits,
            [(Volume(plan.volume), WORKSPACE, False)],
            os.getuid(),
            os.getgid(),
            ["tar", "-x", "-p", "-f", "-", "-C", WORKSPACE],
            plan.isolation or isolation.DEFAULT,
            stdin=True,
        )
        tar = subprocess.Popen(
            ["tar", "-c", "-f", "-", "-C", str(plan.workspace), "."],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            done = subprocess.run(
                argv,
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=3600,
            )
        finally:
            tar.stdout.close()
            tar.wait()
        if done.returncode != 0 or tar.returncode != 0:
            self.call("volume", "rm", "--force", plan.volume, timeout=60)
            raise AmError(
                f"cannot copy the workspace into the volume {plan.volume}: "
                f"{(done.stderr or 'tar failed').strip().splitlines()[-1:]}"
            )
        shutil.rmtree(plan.workspace)
        return True

    def remove_volume(self, name: str, home: str) -> None:
        """Remove volume NAME if, and only if, it carries this AM_HOME's label."""
        if self.volume_home(name) == home:
            res = self.call("volume", "rm", "--force", name, timeout=120)
            if not res.ok:
                raise AmError(f"cannot remove the volume {name}: {res.brief()}")

    def launch_spec(self, plan):
        from am import isolation
        from am.launchspec import ContainerSpec, LaunchSpec

        home = str(self.layout.root)
        # The session's client must find the engine as the caller does (PATH, DOCKER_HOST...).
        env = {k: self.environ[k] for k in ("PATH", *FORWARDED_ENV) if k in self.environ}
        env.update(plan.env)  # passed on by name, like --env
        api = self.api
        gated = self.gated(plan) and keeper_gates(self.layout)
        container = ContainerSpec(
            engine=self.runtime,
            name=plan.container,
            isolation=plan.isolation,
            pids_limit=plan.limits["pids"],
            api=api.to_json() if api else None,
            log_max=plan.log_max,
            proxy=plan.proxy or None,
            egress=plan.egress if plan.proxy and plan.egress == plan.managed_egress else None,
            gated=gated,
            direct=own_image(plan.image)
            and plan.network != "limited"
            and not plan.config_copies
            and (plan.isolation or isolation.DEFAULT) != "gvisor",
        )
        return LaunchSpec(
            argv=self.run_argv(plan, home, os.getuid(), os.getgid(), gated=container.gated),
            cwd=str(self.client_dir(plan)),
            env=env,
            container=container,
            log=str(plan.log),
        )

    @property
    def api(self):
        """The engine's API endpoint (``am.engineapi.Endpoint``) when am's keeper reaches its
        containers' terminals through one; None for a local podman (conmon's sockets)."""
        if self._api is False:
            self._api = self.find_api(self.environ)
        return self._api

    _api = False

    @property
    def seen_running(self) -> dict[str, bool]:
        """Containers this instance started whose keeper saw them running right after."""
        if "_seen" not in self.__dict__:
            self._seen: dict[str, bool] = {}
        return self._seen

    def find_api(self, env):
        return None

    @property
    def remote(self) -> bool:
        """Whether the engine's containers cannot see this host's files: a docker daemon
        reached over tcp, or a podman service (``CONTAINER_HOST``), wherever it runs."""
        api = self.api
        return api is not None and (not api.local or self.runtime == "podman")

    def start(self, plan, spec, layout) -> None:
        """Make and start the agent's container, detached, with am's keeper on its terminal
        before its first byte of output; raise with the engine's own words if it cannot."""
        from am import gate, keepersock

        env = {**self.environ, **spec.env, **plan.secrets}  # --env NAME takes values here
        gated = spec.container is not None and spec.container.gated
        if gated and own_image(plan.image):
            # 'run' starts the gate's shell in the workspace, as the agent: its folder is the
            # agent's from now; the rest is, before the release (below), while 'run' works.
            self.grant_top()
        elif gated:
            self.granted()  # another image's entrypoint runs there first, as the agent
        fifo = gate.make(layout.gate_file(plan.id)) if gated else None
        # Settled: a docker client killed mid-way leaves dockerd making the container after
        # the spawn's undo looked for it.
        served = self.served_argv(spec.argv, {**spec.env, **plan.secrets}) if gated else None
        res = proc.run(served or spec.argv, env=env, cwd=spec.cwd, timeout=300, settle=True)
        if served and not res.ok and self.missed_service(res.err):
            res = proc.run(spec.argv, env=env, cwd=spec.cwd, timeout=300, settle=True)
        if not res.ok:
            if fifo:
                gate.discard(layout.gate_file(plan.id), fifo)
            with contextlib.suppress(AmError):
                self.granted()  # ended before the spawn's undo removes the workspace
            raise self.start_error(plan, res.err or res.out)
        made = res.out.strip().splitlines()  # 'create' and 'run' say the container's id last
        cid = made[-1] if made else None
        from am import isolation

        # podman runs runsc with the flags it is given on this call, not those of the create.
        runtime_options = isolation.engine_options(
            self.runtime, plan.isolation or isolation.DEFAULT, plan.network
        )
        try:
            self.granted()
        except BaseException:
            if fifo:  # the container holds at its gate: the spawn's undo removes it
                gate.discard(layout.gate_file(plan.id), fifo)
            raise
        if self.api is None and not gated:
            # A local podman's conmon, and its attach socket, come with 'init'.
            res = self.call(*runtime_options, "init", plan.container, timeout=300)
            if not res.ok:
                raise self.start_error(plan, res.err or res.out)
        started = False
        self.seen_running.pop(plan.container, None)
        try:
            answer = keepersock.request(
                layout,
                {"op": "watch", "id": plan.id, "cid": cid, "gate": list(fifo) if fifo else None},
                timeout=gate.WAIT + 90,  # its attach (60 s at most), then the release
            )
            if fifo and answer.get("released") is not True:
                raise AmError(
                    f"am's keeper did not let container {plan.container} start",
                    f"see {layout.run / 'keeper.err'}",
                )
            if not gated:  # a gated one runs, and the keeper has let its command go
                res = self.start_container(plan.container, runtime_options)
                if not res.ok:
                    raise self.start_error(plan, res.err or res.out)
            started = True
        finally:
            if fifo and not started:
                gate.discard(layout.gate_file(plan.id), fifo)
            # The keeper removes an ended container only after this word: an agent that
            # exits at once is recorded, never found gone by the start above; a failed
            # start is left to the spawn's undo.
            with contextlib.suppress(AmError):
                answer = keepersock.request(
                    layout, {"op": "started", "id": plan.id, "cid": cid, "failed": not started}
                )
                # The keeper saw its process in /proc: no engine call to ask again.
                self.seen_running[plan.container] = answer.get("running") is True

    def served_argv(self, argv: list[str], extra: dict[str, str]) -> list[str] | None:
        """ARGV, the agent's ``run`` (its client given EXTRA on top of this engine's
        environment), sent to a service of this engine's that does the same for less; None to
        run it as it is."""
        return None

    def missed_service(self, err: str) -> bool:
        """Whether a ``served_argv`` call failed because its service had gone (ERR: its
        words), having made nothing: it is then run as it is."""
        return False

    def start_container(self, name: str, options: list[str]) -> proc.Result:
        """Start the created container NAME (OPTIONS: the engine's own, before 'start')."""
        return self.call(*options, "start", name, timeout=300)

    def container_running(self, name: str) -> bool:
        """Whether container NAME runs now (False also when there is none)."""
        res = self.call("inspect", "--format", "{{.State.Running}}", name, timeout=60)
        return res.ok and res.out.strip() == "true"

    def start_error(self, plan, text: str) -> AmError:
        gpu = self.gpu_error(text) if plan.gpus else None
        if gpu:
            return gpu
        lines = [
            ln.strip()
            for ln in text.strip().splitlines()
            if ln.strip() and "input device is not a TTY" not in ln
        ]
        return AmError(
            f"the container {plan.container} did not start" + (f": {lines[-1]}" if lines else ""),
            port_taken_hint(text),
        )

    def client_dir(self, plan) -> Path:
        """The engine client's working directory: a folder of the agent's own under the run
        folder, not the workspace. Podman's conmon drops an ``oom`` marker into it when the
        kernel OOM-kills something in the container, which the supervisor reads."""
        from am import paths

        folder = paths.private_dir(self.layout.run) / plan.id
        folder.mkdir(exist_ok=True)
        return folder

    def before_start(self, plan):
        """As root, let the agents' uid write its workspace (am's own folder, never the user's
        repository) and give it a name; start a limited agent's proxy (the spawn's undo removes
        it with the container). Returns PLAN with the mounts this adds, or its seeded volume."""
        home = str(self.layout.root)
        if plan.network == "limited":
            from am.backends import network

            network.start(self, plan, home)
        if plan.volume:
            made = self.seed_volume(plan, home)
            return replace(plan, volume_made=made, mirror=None if made else plan.mirror)
        mounts = list(plan.extra_mounts)
        if plan.mirror:
            # The clone's alternates name the mirror's objects by absolute path: mount them
            # there, read-only, so no agent can change what other agents borrow.
            objects = plan.mirror / "objects"
            mounts.append((objects, str(objects), True))
        if os.getuid() == 0:
            uid = agent_uid()
            if own_image(plan.image):
                # am's own image: its user list is known, so it is replaced by one naming the
                # uid (another image keeps its own, where the uid has no name).
                mounts += identity_files(self.client_dir(plan), uid)
            # Finished in start, before anything runs as the uid: meanwhile the engine makes
            # the container.
            self.granting = (plan.workspace, uid, start_grant(plan.workspace, uid))
        return replace(plan, extra_mounts=mounts)

    granting = None  # before_start's hand-over of the workspace, while it runs

    def granted(self) -> None:
        """Wait for before_start's hand-over of the workspace, if one runs; raise if it
        failed."""
        if self.granting is not None:
            (top, _uid, running), self.granting = self.granting, None
            finish_grant(running, top)

    def grant_top(self) -> None:
        """Give the agent's uid the folder of the workspace that before_start's hand-over is
        giving it (its own process may not have got there yet), so that a process of that uid
        can start there before the hand-over is done: am's gate, in am's own image, which
        runs nothing of the agent's until its release, after ``granted``."""
        if self.granting is not None:
            top, uid, _running = self.granting
            try:
                os.lchown(top, uid, uid)
            except OSError as e:
                raise AmError(f"cannot give the agent's uid its workspace {top}: {e}") from None

    def ended_at_start(
        self, plan, timeout: float = 30, stopped=lambda: False
    ) -> AgentExited | None:
        """How an agent that ended before its spawn returned ended (AgentExited), else None:
        one inspect while it runs; once it does not, the keeper's record of its end, which it
        writes once the container is removed (on a busy host, or in gVisor, seconds). None at
        once when STOPPED() says 'am stop' ended it: the keeper records no end of that."""
        if self.seen_running.pop(plan.container, False) or self.container_running(plan.container):
            return None
        from am.status import read_exit

        deadline = time.monotonic() + timeout
        while (ended := read_exit(plan.exit_file)) is None and time.monotonic() < deadline:
            if stopped():
                return None
            time.sleep(0.05)  # the keeper records it once the engine says how it ended
        if ended is None:
            return None  # the keeper records it later; am list shows it
        return AgentExited(plan.id, ended.get("exit_code"), last_lines(log_tail(plan.log)))

    def state(self, name: str) -> tuple[bool, str] | None:
        """Whether container NAME runs, and the am.home it is labelled for; None if there is
        no such container (or the engine does not answer)."""
        res = self.call(
            "inspect",
            "--format",
            '{{.State.Running}}\t{{index .Config.Labels "am.home"}}',
            name,
            timeout=60,
        )
        if not res.ok:
            return None
        running, _, home = res.out.strip().partition("\t")
        return running == "true", home

    def remove_owned(self, name: str, home: str, timeout: float = 60) -> None:
        """Remove container NAME if, and only if, it carries this AM_HOME's label."""
        state = self.state(name)
        if state is not None and state[1] == home:
            self.remove(name, timeout)

    def remove(self, name: str, timeout: float = 60) -> None:
        """Remove the container NAME; return once it is gone, also while another process (the
        keeper, when an agent has just ended) removes it at the same moment: docker then
        answers at once that removal is in progress. A gVisor sandbox takes a while to go."""
        res = self.call("rm", "--force", name, timeout=timeout)
        if res.ok or "in progress" not in (res.err or "").lower():
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.call("inspect", "--format", "{{.Id}}", name).ok:
            time.sleep(0.1)

    def stop(self, record: dict) -> None:
        """Remove the container, then its proxy and, unused, am's outside network; only ever
        containers labelled for this AM_HOME."""
        from am.backends import network

        # A spawn undone before its start waited: the hand-over ends before the workspace
        # is unmounted or removed.
        with contextlib.suppress(AmError):
            self.granted()
        limited = bool(record.get("proxy"))
        self.remove_agent(
            record.get("container"),
            proxy=network.proxy_name(record["id"]) if limited else None,
            egress=record.get("egress_network")
            if limited and record.get("managed_egress")
            else None,
            home=str(self.layout.root),
        )  # never the record's word for it

    def remove_agent(
        self,
        name: str | None,
        *,
        proxy: str | None = None,
        egress: str | None = None,
        home: str | None = None,
        timeout: float = 60,
    ) -> None:
        """Remove an agent's container NAME, then its network proxy PROXY, then am's outside
        network EGRESS (which the engine refuses to remove while another proxy uses it).
        With HOME, a container is removed only if it carries that AM_HOME's label; without,
        the caller knows it does (the agent's own supervisor, a name ``labelled`` gave)."""
        for container in (name, proxy):
            if not container:
                continue
            if home is None:
                self.remove(container, timeout)
            else:
                self.remove_owned(container, home, timeout)
        if egress:
            from am.backends import network

            network.remove_network(self, egress)

    def running(self) -> set[str] | None:
        res = self.call("ps", *self.ps_argv(str(self.layout.root), False)[2:])
        return set(res.out.split()) if res.ok else None

    def stats_argv(self, names: Sequence[str]) -> list[str]:
        """One ``stats`` call for the containers NAMES (``am/enginestats.py``)."""
        from am import enginestats

        return enginestats.argv(self.runtime, names)

    def parse_stats(self, text: str) -> dict[str, dict]:
        """Container name -> cpu_percent, memory, memory_limit, pids (None where unknown)."""
        from am import enginestats

        return enginestats.parse(self.runtime, text)

    def stats(self, names: Sequence[str]) -> dict[str, dict]:
        """Live figures of the containers NAMES (the running agents'), from one call. A name
        the engine no longer knows (its agent ended since it was listed) fails that call
        whole, so then each is asked alone: the others still get their figures. AmError when
        no call succeeds."""
        names = sorted(set(names))
        if not names:
            return {}
        res = self.call(*self.stats_argv(names)[1:], timeout=60)
        if res.ok:
            return self.parse_stats(res.out)
        if len(names) == 1:
            raise self.explain(res.err or res.out)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
            each = list(pool.map(lambda n: self.call(*self.stats_argv([n])[1:], timeout=60), names))
        answered = [r for r in each if r.ok]
        if not answered:
            raise self.explain(res.err or res.out)
        out = {}
        for r in answered:
            out.update(self.parse_stats(r.out))
        return out

    def figures(self, views: list[dict]) -> dict[str, tuple[dict | None, str | None]]:
        """From one ``stats`` call naming their containers (never every container here)."""
        from am import enginestats

        try:
            got, failed = self.stats([v["container"] for v in views if v.get("container")]), None
        except AmError as e:
            got, failed = {}, e.message
        return {v["id"]: enginestats.figure(self.runtime, v, got, failed) for v in views}

    def snapshot_on_host(self, record: dict) -> bool:
        """A workspace that is a host folder (not an engine volume): the agent was stopped
        first, so nothing writes it, and the host reads it running no git of its own."""
        return not record.get("volume")

    def labelled(self, home: str) -> list[str]:
        """Every agent container, running or not, labelled for this AM_HOME (not proxies)."""
        from am.backends.network import PROXY_PREFIX

        res = self.call(*self.ps_argv(home, True)[1:])
        return (
            [n for n in res.out.split() if not n.startswith((PROXY_PREFIX, SANDBOX_PREFIX))]
            if res.ok
            else []
        )


def push_hint(runtime: str, text: str, remote: str) -> str:
    """The fix for a failed push, from the engine's words (TEXT) about the registry of REMOTE."""
    registry = remote.split("/")[0]
    low = text.lower()
    if "http response to https client" in low:
        return (
            f"{registry} speaks plain HTTP: give it TLS, or mark it insecure for "
            f"{runtime} ("
            + (
                "'insecure-registries' in /etc/docker/daemon.json"
                if runtime == "docker"
                else "a [[registry]] with insecure = true in registries.conf"
            )
            + ")"
        )
    if any(
        w in low for w in ("unauthorized", "authentication required", "denied", "authorization")
    ):
        return f"log in first: '{runtime} login {registry}'"
    return f"check that {registry} is the registry's address and that it answers"

"""Container mode, shared by docker and podman: compose their command lines, run them via sh.

No engine SDK: the CLIs are the contract, so DOCKER_HOST, CONTAINER_HOST, contexts and
connections work as the user configured them. Engine-specific differences live in
``docker.py`` and ``podman.py``; everything here is common to both.
"""

import os
import re
import shutil
import sys
import time
from pathlib import Path

from am import proc
from am.backends.base import Backend
from am.errors import AmError

WORKSPACE = "/workspace"
AGENT_HOME = "/home/agent"
CONFIG_STAGE = "/run/am-agent-config"  # --mount-agent-config's read-only files, copied from here
IMAGE_UID = 1000  # the image's non-root user; the agent runs as this uid when am runs as root
DEFAULT_IMAGE = "am-agent:latest"
UNSAFE_MOUNT_CHARS = re.compile(r"[,:\n\r\0]")
FORWARDED_ENV = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH",
                 "DOCKER_TLS_VERIFY", "CONTAINER_HOST", "CONTAINER_CONNECTION",
                 "CONTAINERS_CONF", "CONTAINER_SSHKEY")


def layout():
    from am import paths

    return paths.layout()


class AgentExited(AmError):
    """The agent's container started, and the agent ended while the spawn waited for it."""

    def __init__(self, agent_id: str, exit_code, output: list[str]):
        super().__init__(f"agent {agent_id} exited with code {exit_code} while starting",
                         f"its output: 'am logs {agent_id}'; 'am rm {agent_id}' removes it")
        self.exit_code = exit_code
        self.output = output


NOISE = re.compile(r"^(see|run) '\S+ \S+ --help'|^\s*$", re.IGNORECASE)


def last_lines(text: str, n: int = 10) -> list[str]:
    """The last N lines of an agent's terminal output, without blank ones or carriage returns."""
    lines = [ln.replace("\r", "").rstrip() for ln in text.splitlines()]
    return [ln for ln in lines if ln.strip()][-n:]


def error_lines(text: str, n: int = 6) -> str:
    """An engine client's error lines as one line: what it said, without its usage pointer
    ("See 'docker run --help'."), the last N of them."""
    lines = [ln.strip() for ln in last_lines(text, 50) if not NOISE.search(ln.strip())]
    return " / ".join(lines[-n:]) or "no output"


def check_mount_path(path: Path) -> str:
    """A host path that can be mounted without its text becoming extra mount options."""
    text = str(path)
    if UNSAFE_MOUNT_CHARS.search(text):
        raise AmError(f"cannot mount {text!r} into a container: it contains ',', ':' or a "
                      "control character", "choose an AM_HOME without them")
    return text


def mount_arg(source: Path, target: str, readonly: bool = False) -> str:
    opts = f"type=bind,source={check_mount_path(source)},target={target}"
    return opts + (",readonly" if readonly else "")


def grant(top: Path) -> None:
    """Give the image's user everything under TOP, without following symbolic links."""
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), IMAGE_UID, IMAGE_UID)
    os.lchown(top, IMAGE_UID, IMAGE_UID)


# What a commit in a worktree writes in the shared git folder; everything else there stays
# read-only, so the agent cannot plant config, hooks, a ``commondir`` redirection or submodule
# repositories that the user's own git (or am) would later read.
WORKTREE_WRITABLE = ("objects", "refs", "logs")


def worktree_gitdir(workspace: Path) -> Path:
    """The worktree's own folder in the source's git folder, as its ``.git`` file names it.
    Read only right after ``git worktree add``, before any agent could change the file."""
    text = (workspace / ".git").read_text()
    return Path(text.partition("gitdir:")[2].strip())


def worktree_mounts(gitdir: Path) -> list[tuple[Path, str, bool]]:
    """Mounts that let git work inside a worktree whose own folder is GITDIR: the source's git
    folder, read-only, at its absolute path, with only what a commit writes (objects, refs,
    logs and the worktree's own folder) writable."""
    common = Path(os.path.normpath(gitdir / ".." / ".."))
    mounts = [(common, str(common), True)]
    for name in WORKTREE_WRITABLE:
        (common / name).mkdir(exist_ok=True)
        mounts.append((common / name, str(common / name), False))
    mounts.append((gitdir, str(gitdir), False))
    return mounts


# Copies the N files named after N from CONFIG_STAGE into $HOME, then runs the command that
# follows them. Copies, not links, so a CLI may rewrite its own files in its home (a refreshed
# token) while the host's stay as they were.
COPY_CONFIG = ('umask 077; n=$1; shift; while [ "$n" -gt 0 ]; do '
               'mkdir -p "$HOME/$(dirname "$1")" && '
               f'cp -R "{CONFIG_STAGE}/$1" "$HOME/$1" || '
               'echo "am: cannot copy ~/$1 into the agent\'s home" >&2; n=$((n - 1)); shift; '
               'done; exec "$@"')


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
        """Who the agent runs as: never uid 0 inside."""
        if uid == 0:
            return ["--user", f"{IMAGE_UID}:{IMAGE_UID}"]
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

    def run_argv(self, plan, home: str, uid: int, gid: int) -> list[str]:
        """The full ``run`` command line for an agent's container, attached to its terminal."""
        from am import isolation, network

        lim = plan.limits
        limited = plan.network == "limited"
        command = with_config_copies(plan.config_copies, plan.agent_argv())
        argv = [
            *isolation.run_head(self.runtime, plan.isolation or isolation.DEFAULT, plan.network),
            "--interactive", "--tty", "--pull", "never",
            "--name", plan.container, "--hostname", plan.container,
            "--label", f"am.agent={plan.id}", "--label", f"am.home={home}",
            "--network", plan.network_name,
            "--memory", lim["memory"], "--memory-swap", lim["memory"],
            "--cpus", str(lim["cpus"]),
            *isolation.pids_args(plan.isolation or isolation.DEFAULT, lim["pids"],
                                 os.cpu_count() or 1),
            "--init", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--read-only",
            "--tmpfs", "/tmp:rw,nosuid,nodev,size=1g,mode=1777",
            "--tmpfs", f"{AGENT_HOME}:rw,nosuid,nodev,size=1g,{self.home_owner(uid, gid)}",
            "--log-driver", "none",
            *self.user_args(uid, gid),
            "--mount", mount_arg(plan.workspace, WORKSPACE),
            *[a for m in plan.extra_mounts for a in ("--mount", mount_arg(*m))],
            "--workdir", WORKSPACE,
            "--env", f"HOME={AGENT_HOME}", "--env", "TERM=xterm-256color",
            # values: from the client's environment, never its arguments
            *[a for name in [*plan.env_names, *plan.env] for a in ("--env", name)],
            *self.gpu_args(plan.gpus),
            *(network.agent_run_args(plan.network_files, plan.publish) if limited else []),
            *[a for p in (plan.publish if plan.network == "full" else []) for a in
              ("--publish", p)],
            "--", plan.image,
            *(network.wrap_command(command, plan.publish) if limited else command),
        ]
        return argv

    def home_owner(self, uid: int, gid: int) -> str:
        """The tmpfs option that gives the agent's home to the user the agent runs as (the
        engines take the mount point's root-owned mode from the image otherwise)."""
        if uid == 0:
            uid = gid = IMAGE_UID
        return f"mode=0700,uid={uid},gid={gid}"

    def build_argv(self, tag: str, context: Path, build_args: dict[str, str]) -> list[str]:
        argv = [self.runtime, "build", "--file", str(context / "Containerfile"), "--tag", tag]
        for k, v in build_args.items():
            argv += ["--build-arg", f"{k}={v}"]
        return argv + [str(context)]

    def ps_argv(self, home: str, all_states: bool) -> list[str]:
        argv = [self.runtime, "ps", "--filter", f"label=am.home={home}", "--format",
                "{{.Names}}"]
        return argv + (["--all"] if all_states else [])

    # -- calls --------------------------------------------------------------------------------

    def call(self, *args: str, timeout: float | None = None) -> proc.Result:
        try:
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
            raise AmError(f"{problem}, so am will not start a container agent with it",
                          self.limits_hint)

    host_vars: tuple[str, ...] = ()  # variables that point the client at another daemon
    local_daemon_hint = ""

    def daemon_hint(self) -> str:
        """How to get an answer: from the daemon a variable names, when one is set."""
        for var in self.host_vars:
            if os.environ.get(var):
                return (f"nothing answers at {var}={os.environ[var]}: start the {self.title} "
                        f"daemon it names, or unset {var} to use the local one")
        return self.local_daemon_hint

    def known_cause(self, text: str) -> AmError | None:
        """The engine's failure TEXT as one clear error with its fix, if its cause is known."""
        low = text.lower()
        lines = low.splitlines()

        def said(*words):  # on one line: a missing program in a run is not a missing socket
            return any(all(w in ln for w in words) for ln in lines)

        if said("permission denied", "sock"):
            return AmError(f"permission denied on the {self.title} socket",
                           self.permission_hint)
        if "cannot connect to" in low or "is the docker daemon running" in low or \
                said("sock", "connection refused") or said("sock", "no such file or directory"):
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
        return AmError(f"{what}: {error_lines(text)}" if text.strip() else what)

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
        note = (f"agent CLIs: {', '.join(clis)}; any not yet in {image.build_dir()} is first "
                "downloaded from its package registry (AM_OFFLINE=1 refuses)" if clis
                else "no agent CLI")
        self.run_build_script("build-image.sh", tag, "agent image",
                              ["--agents", ",".join(clis)], note)

    def run_build_script(self, script: str, tag: str, what: str, extra=(), note="") -> None:
        """Build WHAT as TAG with one of am's offline build scripts, streaming its output."""
        from am import image

        path = image.data_root() / "scripts" / script
        if not path.is_file():
            raise AmError(f"cannot build the {what}: {path} is missing",
                          "reinstall am: its package carries the build files")
        print(f"Building {what} (this may take a few minutes)..." + (f"\n  {note}" if note
              else ""), file=sys.stderr, flush=True)
        env = {**os.environ, "AM_BUILD_DIR": str(image.build_dir())}
        res = proc.stream(["bash", str(path), "--runtime", self.runtime, "--tag", tag, *extra],
                          env=env,
                          on_line=lambda line: print(line, end="", file=sys.stderr, flush=True))
        if not res.ok:
            raise AmError(f"{what} build failed; its last lines:\n{res.last_lines(12)}")

    def prepare(self, plan) -> None:
        from am import image, versions

        # First, before an image is built: whether the limits the agent is promised would hold.
        self.check_limits()
        cli = image.needed_cli(plan.command)
        labels = self.image_labels(plan.image)
        if labels is None:
            # am builds its own image (any tag of am-agent) on first use; others must exist.
            if plan.image.split(":")[0] != DEFAULT_IMAGE.split(":")[0]:
                raise AmError(f"image {plan.image!r} not found in {self.title}",
                              "build or load it first, or leave out --image")
            self.build_image(plan.image, [*plan.agent_clis, *([cli] if cli else [])])
            labels = self.image_labels(plan.image)
        image.check_has_cli(self, plan.image, labels, cli, plan.agent)
        ok, text = versions.runc_status()
        if ok is False:
            print(f"am: warning: runc {text}", file=sys.stderr)
        ok, text = versions.git_status()
        if ok is False:
            print(f"am: warning: git {text}", file=sys.stderr)
        if plan.gpus:
            self.check_gpu_support()
        if plan.isolation == "gvisor":
            # A limited agent's proxy runs under gVisor too.
            for kind in (plan.network, "proxy") if plan.network == "limited" else (plan.network,):
                problem = self.gvisor_problem(kind)
                if problem:
                    raise problem
        check_mount_path(plan.workspace)
        if plan.network == "limited":
            from am import network

            network.prepare(self, plan)

    def launch_spec(self, plan) -> dict:
        from am import paths

        home = str(paths.layout().root)
        # The session's client must find the engine as the caller does (PATH, DOCKER_HOST...).
        env = {k: os.environ[k] for k in ("PATH", *FORWARDED_ENV) if k in os.environ}
        env.update(plan.env)  # passed on by name, like --env
        container = {"engine": self.runtime, "name": plan.container,
                     "isolation": plan.isolation, "pids_limit": plan.limits["pids"]}
        if plan.proxy:
            container.update(proxy=plan.proxy, egress=plan.egress
                             if plan.egress == plan.managed_egress else None)
        return {"argv": self.run_argv(plan, home, os.getuid(), os.getgid()),
                "cwd": str(self.client_dir(plan)), "env": env, "container": container}

    @staticmethod
    def client_dir(plan) -> Path:
        """The engine client's working directory: a folder of the agent's own under the run
        folder, not the workspace. Podman's conmon drops an ``oom`` marker into it when the
        kernel OOM-kills something in the container, which the supervisor reads."""
        from am import paths

        folder = paths.layout().run / plan.id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def before_start(self, plan) -> None:
        """Mount what a worktree needs; as root, let the image's user write its workspace;
        start a limited agent's proxy (the spawn's undo removes it with the container)."""
        wt_mounts = worktree_mounts(plan.worktree_gitdir) if plan.worktree else []
        plan.extra_mounts[:0] = wt_mounts
        if plan.network == "limited":
            from am import network

            network.start(self, plan, str(layout().root))
        if plan.mirror:
            # The clone's alternates name the mirror's objects by absolute path: mount them
            # there, read-only, so no agent can change what other agents borrow.
            objects = plan.mirror / "objects"
            plan.extra_mounts.append((objects, str(objects), True))
        if os.getuid() != 0:
            return
        grant(plan.workspace)
        # Only what a commit writes; the repository's own folder stays the user's.
        for host, _, readonly in wt_mounts:
            if not readonly:
                grant(host)

    def after_start(self, plan, session_alive, timeout: float = 60) -> None:
        """Return once the container runs; raise AgentExited if the agent ended meanwhile, or
        an error with the engine's own lines if the container never started."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            res = self.call("inspect", "--format", "{{.State.Running}}", plan.container)
            if res.ok and res.out.strip() == "true":
                # Twice running, an inspect apart: an agent whose command cannot run at all
                # (exec of a missing program) has ended by the second look, on either engine.
                seen += 1
                if seen == 2:
                    return
            else:
                seen = 0
                if not session_alive():
                    break
            # Each inspect is itself 20-70 ms of the engine's; a short pause adds little to it.
            time.sleep(0.02)
        else:
            raise AmError(f"the container {plan.container} did not start within {timeout:.0f}s")
        from am.status import read_exit

        text = plan.log.read_text(errors="replace") if plan.log.is_file() else ""
        ended = read_exit(plan.exit_file) or {}
        if ended.get("started"):
            raise AgentExited(plan.id, ended.get("exit_code"), last_lines(text))
        gpu = self.gpu_error(text) if plan.gpus else None
        if gpu:
            raise gpu
        error = self.failure(f"the container {plan.container} did not start", text)
        error.hint = self.session_hint(error) or error.hint
        raise error

    def session_hint(self, cause: AmError) -> str | None:
        """A better fix when the engine refused the session's client but not am itself: the
        client runs in the tmux server, which may predate the user's joining the engine's
        group (am's own calls, made with the user's current groups, got through)."""
        if "permission denied" not in cause.message:
            return None
        from am import session

        pid, groups = session.server_groups()
        if groups is None or set(os.getgroups()) <= groups:
            return None
        return (f"the tmux server (pid {pid}) runs with the groups you had when it started, "
                "without the engine's group you have now: end it with 'tmux kill-server' "
                "(this ends every session on it), then spawn again")

    def remove(self, name: str, timeout: float = 60) -> None:
        """Remove the container NAME; return once it is gone, also while another process (the
        supervisor of an agent that just ended) removes it at the same moment: docker then
        answers at once that removal is in progress. A gVisor sandbox takes a while to go."""
        res = self.call("rm", "--force", name, timeout=timeout)
        if res.ok or "in progress" not in (res.err or "").lower():
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.call("inspect", "--format", "{{.Id}}",
                                                        name).ok:
            time.sleep(0.1)

    def stop(self, record: dict) -> None:
        """Remove the container, then its proxy and, unused, am's outside network."""
        if record.get("container"):
            self.remove(record["container"])
        if record.get("proxy"):
            from am import network

            network.remove(self, record["id"], record.get("egress_network")
                           if record.get("managed_egress") else None)

    def running(self, records: list[dict]) -> set[str] | None:
        from am import paths

        res = self.call("ps", *self.ps_argv(str(paths.layout().root), False)[2:])
        return set(res.out.split()) if res.ok else None

    def stats_argv(self) -> list[str]:
        """One ``stats`` call for every running container, one tab-separated line each."""
        raise NotImplementedError

    def parse_stats(self, text: str) -> dict[str, dict]:
        """Container name -> cpu_percent, memory, memory_limit, pids (None where unknown)."""
        raise NotImplementedError

    def stats(self) -> dict[str, dict]:
        """Live figures of every running container, from one call; AmError if it fails."""
        res = self.call(*self.stats_argv()[1:], timeout=60)
        if not res.ok:
            raise self.explain(res.err or res.out)
        return self.parse_stats(res.out)

    def labelled(self, home: str) -> list[str]:
        """Every agent container, running or not, labelled for this AM_HOME (not proxies)."""
        from am.network import PROXY_PREFIX

        res = self.call(*self.ps_argv(home, True)[1:])
        return [n for n in res.out.split() if not n.startswith(PROXY_PREFIX)] if res.ok else []


def engine(runtime: str) -> Engine:
    """The engine named RUNTIME; ``auto`` is podman if it is usable and enforces the limits
    here (rootless podman on cgroup v1 ignores them), else docker."""
    from am.backends.docker import Docker
    from am.backends.podman import Podman

    if runtime == "docker":
        return Docker()
    if runtime == "podman":
        return Podman()
    if runtime not in ("auto", "", None):
        raise AmError(f"unknown runtime {runtime!r}", "choose docker, podman or auto")
    passed_over = None
    if shutil.which("podman") and proc.run(["podman", "version", "--format",
                                            "{{.Client.Version}}"]).ok:
        podman = Podman()
        try:
            passed_over = podman.limits_problem()
        except AmError as e:
            passed_over = e.message
        if passed_over is None:
            return podman
    if not shutil.which("docker"):
        if passed_over:
            raise AmError(f"{passed_over}, and docker is not installed", Podman.limits_hint)
        raise AmError("no container engine found in PATH",
                      "install podman or docker.io, or run without --container")
    docker = Docker()
    if passed_over:
        # Say why podman was passed over when docker cannot take its place either.
        try:
            problem = docker.limits_problem()
        except AmError as e:
            raise AmError(f"no engine here can run the agent with its limits: {passed_over}; "
                          f"and {e.message}", e.hint) from None
        if problem:
            raise AmError(f"no engine here can run the agent with its limits: {passed_over}; "
                          f"and {problem}", docker.limits_hint)
    return docker

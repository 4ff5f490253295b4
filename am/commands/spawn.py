"""``am spawn``: make a workspace, start the agent, record it; undo everything on failure."""

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from am import backends, clock, files, git, gitsafe, headstart, ids, paths, proc, session
from am import plan as planning
from am.errors import AmError
from am.fanout import STOPS, held
from am.record import Status, stop_count
from am.rollback import Rollback
from am.store import open_store
from am.valueclass import replace


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def hand_over_secrets(fifo: Path, secrets: dict, timeout: int = 60) -> int:
    """Write the environment values into the FIFO the supervisor reads; never a regular file.

    A forked child does the writing, so the spawn need not wait for the supervisor's Python to
    start; it gives up after TIMEOUT seconds if no supervisor ever opens the FIFO. Returns its
    pid. It holds nothing of the spawn's open (its output, a lock): a caller reading the
    spawn's output is not kept waiting, and no lock outlives the spawn.
    """
    data = json.dumps(secrets).encode()
    # The writer outlives the spawn: no Ctrl-C, hang-up or group's SIGTERM meant for the spawn
    # (a --count spawn is still in the foreground) may end it before it wrote. Held back
    # across the fork, ignored in the writer, which then leaves the spawn's session.
    with held():
        pid = os.fork()
        if pid == 0:
            _write_secrets(fifo, data, timeout)  # the writer: never returns
    return pid


def _write_secrets(fifo: Path, data: bytes, timeout: int) -> None:
    try:
        for s in STOPS:
            signal.signal(s, signal.SIG_IGN)
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
        signal.alarm(timeout)
        # Blocks until the supervisor opens it for reading. Never O_CREAT: a FIFO already
        # gone (an undone spawn) must not become a file holding the values.
        fd = os.open(fifo, os.O_WRONLY)
        os.write(fd, data)
    finally:
        os._exit(0)


def _remove_tree(path: Path) -> None:
    import shutil  # only to undo: its import is 2 ms of every spawn otherwise

    shutil.rmtree(path, ignore_errors=True)


def make_workspace(
    plan: planning.Plan, undo: Rollback, layout: paths.Layout, early=None
) -> tuple[Callable[[], str], planning.Plan]:
    """Clone (or add a worktree), put the agent branch at its base. Returns a call that
    returns the base commit once the branch is checked out (a clone's checkout runs on beside
    the caller until then), and PLAN with what the clone learnt (the mirror it borrows from, a
    worktree's git folder). With --disk the clone goes into a file system of that size,
    mounted at the workspace. EARLY, the spawn's head start (``headstart.take``), is that
    clone made already: the call moves it to the workspace once its checkout has ended."""
    paths.private_dir(plan.workspace.parent)  # tightened if an older am left it open
    if early is not None:
        undo.push(_remove_tree, plan.workspace)
        undo.push(early.discard)  # first: its checkout may still be writing
        return (lambda: early.moved_to(plan.workspace)), plan
    if plan.worktree:
        from am.backends.engine import worktree_gitdir

        source = Path(plan.source)
        undo.push(git.delete_branch, source, plan.branch)
        undo.push(git.worktree_remove, source, plan.workspace)
        base = git.worktree_add(source, plan.workspace, plan.branch, plan.base)
        # before any agent ran there
        return (lambda: base), replace(plan, worktree_gitdir=worktree_gitdir(plan.workspace))
    undo.push(_remove_tree, plan.workspace)
    if plan.disk:
        from am import disk

        image = layout.disk_image(plan.id)
        undo.push(disk.remove, image, plan.workspace)  # before the folder goes: unmount
        say(f"Making its file system of {plan.disk} ...")
        disk.create(image, plan.workspace, plan.disk)
    mirror = None
    if git.is_url(plan.source):
        from am import cache

        mirror = cache.clone(plan.source, plan.workspace, plan.cache_dir)
    else:
        git.clone(plan.source, plan.workspace, hardlinks=plan.mode == "tmux")
    repo = gitsafe.open_clone(plan.workspace, gitsafe.mirror_objects(mirror))
    running, checked_out = git.begin_branch(repo, plan.branch, plan.base)
    undo.push(running.end)  # before the workspace goes: git may still be writing there
    return checked_out, replace(plan, mirror=mirror)


def taken(agent_id: str) -> AmError:
    return AmError(
        f"an agent named {agent_id!r} already exists",
        "choose another --name, or remove it with 'am rm'",
    )


def execute(plan: planning.Plan, backend, layout):
    """Reserve the record, make the workspace, and launch the agent in it; returns what
    ``launch`` returns."""
    store = open_store(layout)
    undo = Rollback("the spawn")
    try:
        # The record and its undo step as one: a Ctrl-C between them left a record behind.
        with held():
            with store.transaction() as agents:
                if plan.id in agents:
                    raise taken(plan.id)
                if plan.workspace.exists() or os.path.lexists(plan.workspace):
                    raise AmError(
                        f"workspace {plan.workspace} already exists",
                        "'am doctor --fix' clears leftovers of an interrupted spawn",
                    )
                agents[plan.id] = plan.record(str(layout.root))
            undo.push(store.remove, plan.id)
        # The files a session and its supervisor leave: a later agent of the same name must
        # not show this one's output or ending.
        for leftover in (plan.log, plan.exit_file, layout.health_file(plan.id)):
            undo.push(_unlink, leftover)
        undo.push(_remove_tree, layout.run / plan.id)

        if plan.runtime == "kubernetes":
            # The workspace is made in the cluster, from a bundle of the source.
            undo.push(backend.delete_workspace, plan.record(str(layout.root)))
            base, plan = backend.make_seed(plan, undo, layout)
            checked_out = lambda: base  # noqa: E731
        else:
            say(f"Preparing workspace {plan.workspace} from {plan.source} ...")
            checked_out, plan = make_workspace(plan, undo, layout, headstart.take(plan))
        if plan.proxy:
            from am.backends import network

            undo.push(network.discard_files, plan.network_files)
        return launch(
            plan,
            backend,
            layout,
            undo,
            checked_out=checked_out,
            mirror=str(plan.mirror) if plan.mirror else None,
        )
    except BaseException:
        undo.run()
        raise


def launch(
    plan: planning.Plan, backend, layout, undo: Rollback, checked_out=None, stops=0, **fields
):
    """Start the agent of PLAN in its existing workspace: the one way an agent starts, for
    ``am spawn`` and ``am start``. Pushes its undo steps; on success the record is ``running``
    with FIELDS. Returns AgentExited when the agent ended while this waited for it (it ran: it
    is then an exited agent like any other, record, workspace and log kept), else None.

    CHECKED_OUT (a spawn's, from ``make_workspace``) waits for the workspace's checkout and
    returns its base commit. A session's supervisor waits for its spec, written only once the
    session runs: a tmux agent's session starts while git still checks out.

    STOPS is the record's stop count (``record.stop_count``) when this spawn or start began:
    after an 'am stop' since then nothing more starts, what did is ended, and the agent is
    kept stopped (StoppedWhileStarting is returned)."""

    store = open_store(layout)
    if checked_out is not None and plan.mode != "tmux":  # the engine or cluster mounts it
        fields["base_commit"] = checked_out()
        checked_out = None
    if checked_out is not None:
        checked_out = once(checked_out)
    # A workspace with a file system of its own runs only on it: mounted again after a reboot,
    # and never started without it when the agent has a cap. (No image and no cap, as for most
    # agents: nothing to do, and am.disk is not imported.)
    image = layout.disk_image(plan.id)
    if plan.disk or image.is_file():
        from am import disk

        disk.ensure(image, plan.workspace, plan.id, required=bool(plan.disk))
    # The container, and a limited agent's proxy, once either exists.
    record = plan.record(str(layout.root))
    undo.push(backend.stop, record)
    stop = StopWatch(store, plan.id, stops)
    try:
        exited = start_agent(plan, backend, layout, undo, checked_out, stop, record, fields)
        if not settle(store, plan.id, stops, fields):
            raise StopCame
    except StopCame:
        with contextlib.suppress(AmError):
            backend.stop(record)
        session.kill_own(plan.session, str(layout.root))
        if checked_out is not None:  # kept: whole, and in its place (a head start's moved)
            fields["base_commit"] = checked_out()
        settle_stopped(store, plan.id, fields)  # and only now may another start it
        return StoppedWhileStarting(plan.id)
    return exited


def once(fn: Callable[[], str]) -> Callable[[], str]:
    """FN, called at most once: later calls return its first answer."""
    answers: list[str] = []

    def call() -> str:
        if not answers:
            answers.append(fn())
        return answers[0]

    return call


def start_agent(plan, backend, layout, undo, checked_out, stop, record: dict, fields: dict):
    """``launch``'s starting, past its record: raises StopCame once STOP sees an 'am stop'."""
    stop.check()
    plan = stop.step(backend.before_start, plan)
    fields["worktree_gitdir"] = str(plan.worktree_gitdir) if plan.worktree_gitdir else None
    if plan.volume_made:
        # The workspace lives only there now: undone with the container, never before it.
        undo.push(_remove_volume, backend, record, plan.volume, str(layout.root))

    # Detached in a docker or podman engine; in a tmux session otherwise (a Kubernetes
    # agent's session runs kubectl attach).
    container = plan.mode == "container" and plan.runtime != "kubernetes"
    paths.private_dir(plan.log.parent)
    plan.log.touch()
    spec, spec_file = write_spec(
        plan,
        backend,
        layout,
        undo,
        fifo=plan.secrets and not container,
        put=container,  # a session's supervisor waits for it: it is the go, put last
    )
    for stale in (plan.exit_file, layout.health_file(plan.id), layout.guest_file(plan.id)):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()

    if container:
        stop.check()
        # Detached, in the engine: am's keeper holds its terminal (am/keeper.py).
        say(f"Starting agent {plan.id} ({brief(plan.command)}) in container {plan.container} ...")
        stop.step(backend.start, plan, spec, layout)
        return stop.step(backend.ended_at_start, plan, stopped=stop.came)
    say(f"Starting agent {plan.id} ({brief(plan.command)}) in session {plan.session} ...")
    undo.push(session.kill_own, plan.session, str(layout.root))
    session.start(
        plan.session,
        # -P: not the tmux server's working directory first on sys.path, which would run
        # whatever 'am' package sits there (another checkout, or a hostile folder).
        # With this spawn's identity: the supervisor waits for its spec while it works.
        [sys.executable, "-P", "-m", "am.supervise", str(spec_file), *spawner()],
        plan.log,
        str(layout.root),
    )
    if checked_out is not None:
        fields["base_commit"] = checked_out()
    stop.check()  # before the go: it never runs
    put_spec(spec, spec_file)  # the supervisor's go
    if spec.env_fifo:
        undo.push(_kill, hand_over_secrets(Path(spec.env_fifo), plan.secrets))
    stop.step(backend.after_start, plan, lambda: plan.session in session.sessions())
    return None


class StoppedWhileStarting(AmError):
    """'am stop' came while the spawn started the agent: it is kept, stopped, whole."""

    def __init__(self, agent_id: str):
        super().__init__(
            f"agent {agent_id} was stopped ('am stop') while it started; it is kept, stopped, "
            "with its workspace",
            f"'am start {agent_id}' runs it; 'am rm {agent_id}' removes it",
        )


class StopCame(Exception):
    """Within a launch: 'am stop' stopped the agent meanwhile."""


class StopWatch:
    """Whether 'am stop' stopped an agent since its record's stop count was STOPS."""

    def __init__(self, store, agent_id: str, stops: int):
        self.store, self.agent_id, self.stops = store, agent_id, stops

    def came(self) -> bool:
        return stop_count(self.store.agents().get(self.agent_id, {})) != self.stops

    def check(self) -> None:
        if self.came():
            raise StopCame

    def step(self, fn, *args, **kwargs):
        """FN(*ARGS, **KWARGS); an AmError of it after a stop is the stop's doing (it removed
        the container or proxy FN waited for), and raises StopCame."""
        try:
            return fn(*args, **kwargs)
        except AmError:
            if self.came():
                raise StopCame from None
            raise


def settle(store, agent_id: str, stops: int, fields: dict) -> bool:
    """Unless 'am stop' stopped the agent since its stop count was STOPS, record that it runs,
    with what the spawn or start learnt (FIELDS): whether it does. One transaction, so a stop
    is either seen here or comes after, and then ends the agent itself."""
    with store.transaction() as agents:
        record = agents.get(agent_id)
        if record is None:  # 'am rm' refuses while a spawn lives: the file was edited
            raise AmError(f"the record of agent {agent_id} was removed while it started")
        if stop_count(record) != stops:
            return False
        record.update(fields, spawn_pid=None, status=Status.RUNNING, started=clock.iso())
        return True


def settle_stopped(store, agent_id: str, fields: dict) -> None:
    """The record of an agent a stop came to while it started, once what started is ended:
    stopped, as and when the stop said, with FIELDS; its spawn done (another may start it)."""
    with store.transaction() as agents:
        record = agents.get(agent_id)
        if record is not None:
            record.update({k: v for k, v in fields.items() if k != "stopped"})
            record.update(spawn_pid=None, status=Status.STOPPED)


def spawner() -> list[str]:
    """This process as ``proc.identity`` names it, for its supervisor's argv (none if that
    cannot be told)."""
    me = proc.identity()
    return [me] if me else []


def write_spec(plan: planning.Plan, backend, layout, undo: Rollback, fifo: bool, put=True):
    """The launch spec of PLAN with the FIFO that hands the supervisor the secret values if
    FIFO; returns the spec and its file. With PUT, both are made (``put_spec``); without, an
    older spec file is removed, and the caller puts them later."""
    paths.private_dir(layout.run)
    fifo_path = None
    if fifo:
        # A name of this launch's own: a writer of an earlier launch of the agent that is
        # still waiting (stopped, say) cannot join this one's FIFO.
        fifo_path = layout.run / f"{plan.id}.{os.urandom(4).hex()}.env"
        undo.push(_unlink, fifo_path)
    spec = replace(
        backend.launch_spec(plan),
        exit_file=str(plan.exit_file),
        # The agent (tmux) or the engine's client runs with the user's umask, as without am.
        umask=paths.user_umask(),
        health_file=str(layout.health_file(plan.id)),
        started_at=time.time(),
        guest_file=str(layout.guest_file(plan.id)) if plan.isolation == "gvisor" else None,
        env_fifo=str(fifo_path) if fifo_path else None,
    )
    spec_file = layout.run / f"{plan.id}.spec.json"
    if put:
        put_spec(spec, spec_file)
    else:
        _unlink(spec_file)
    undo.push(_unlink, spec_file)
    return spec, spec_file


def put_spec(spec, spec_file: Path) -> None:
    """Make SPEC's FIFO, if it has one, and write SPEC to SPEC_FILE: whole or not at all, as
    the keeper may read an agent's spec while 'am start' writes it anew, and a supervisor
    waiting for its spec starts the agent once it is there."""
    if spec.env_fifo:
        fifo = Path(spec.env_fifo)
        with contextlib.suppress(FileNotFoundError):
            fifo.unlink()
        os.mkfifo(fifo, 0o600)
    files.write_atomic(spec_file, spec.to_json())


def report(agent_id: str, exited) -> int:
    """After the agent's id was printed: say how an agent that ended while starting ended;
    an error (exit status 1) unless its code was 0."""
    if exited is None:
        return 0
    if isinstance(exited, StoppedWhileStarting):
        raise exited
    if exited.exit_code == 0:
        say(f"Agent {agent_id} already finished (exit code 0); its output: 'am logs {agent_id}'")
        return 0
    say(f"Agent {agent_id} ended while starting; its last output:")
    for line in exited.output or ["(none)"]:
        say(f"  {line}")
    raise exited


def brief(argv: list[str], width: int = 60) -> str:
    text = " ".join(" ".join(argv).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _remove_volume(backend, record: dict, volume: str, home: str) -> None:
    backend.stop(record)
    backend.remove_volume(volume, home)


def _kill(pid: int) -> None:
    """End the hand-over's writer of an undone spawn (reaped by init: it is in a session of
    its own, and the spawn exits soon)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# What names or binds one agent: with --count, every agent would get the same.
ONE_AGENT_ONLY = (("branch", "--branch"), ("publish", "--publish"))


def count_names(name: str | None, count: int) -> list[str | None]:
    """The --name of each of COUNT agents (pure): NAME alone, NAME-1 to NAME-COUNT for
    several, or a generated id for each without a name. Each is checked here, before
    anything is made."""
    if name is None:
        return [None] * count
    names = [name] if count == 1 else [f"{name}-{i}" for i in range(1, count + 1)]
    for each in names:
        ids.validate_name(each)
    return names


def run(args) -> int:
    from am import config
    from am.request import Request

    headstart.advance()  # its checkout runs while this checks and plans
    count = args.count
    for attr, flag in ONE_AGENT_ONLY if count > 1 else ():
        if getattr(args, attr, None):
            raise AmError(
                f"{flag} applies to one agent, and --count {count} makes {count}",
                f"leave out {flag}, or --count",
            )
    names = count_names(args.name, count)
    layout = paths.layout()
    if count > 1 and args.name is not None:  # all or none, as far as it can be known now
        agents = open_store(layout).agents()
        for name in names:
            if name in agents:
                raise taken(name)
    environ = dict(os.environ)
    cfg = config.load(layout, environ)
    source = git.check_source(args.source)
    host_memory = host_cpus = None
    if args.container:
        # What psutil.virtual_memory().total reads, without importing psutil for it.
        host_memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        host_cpus = os.cpu_count()
    request = Request.from_args(args, prompt=planning.read_prompt(args.prompt, args.prompt_file))

    def plan_one(i: int, warn: bool):
        named = replace(request, name=names[i])
        plan = planning.build(named, layout, source, environ, host_memory, host_cpus, cfg)
        return prepare(plan, layout, environ, warn)

    def spawn_one(plan, backend) -> int:
        try:
            exited = execute(plan, backend, layout)
        finally:  # made (or undone): a stop from here would tell a made agent as undone
            signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
        sys.stdout.write(f"{plan.id}\n")  # one piece: never half a line among others' ids
        sys.stdout.flush()
        return report(plan.id, exited)

    def one_of_many(i: int) -> int:
        from am.backends.engine import AgentExited

        plan, backend = first if i == 0 else plan_one(i, warn=False)
        try:
            return spawn_one(plan, backend)
        except AgentExited as e:  # made, and kept: not a failed spawn
            say(e.render())
            return ENDED_WHILE_STARTING
        except StoppedWhileStarting as e:
            say(e.render())
            return STOPPED_WHILE_STARTING
        except AmError as e:  # one of many: say which
            e.message = f"agent {plan.id}: {e.message}"
            raise

    # Everything checked, and the image built if it must be, once: before anything is made.
    first = plan_one(0, warn=True)
    if count == 1:
        return spawn_alone(lambda: spawn_one(*first))
    headstart.discard()  # one clone for one agent: not for the children to share
    return spawn_many(count, one_of_many)


def spawn_alone(spawn_one) -> int:
    """SPAWN_ONE() for one agent, undone on SIGTERM or SIGHUP as on Ctrl-C (``timeout``, a
    closed terminal): the stop is raised as an interrupt, so that no ``except Exception``
    along the way takes it, and said as what it was once the undoing is done."""
    stopped: list[int] = []

    def stop(signum, _frame):
        for s in STOPS:  # a second stop must not cut the undoing short
            if signal.getsignal(s) is not signal.SIG_IGN:
                signal.signal(s, _ignore)
        stopped.append(signum)
        raise KeyboardInterrupt

    try:
        for s in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(s) is not signal.SIG_IGN:  # nohup's SIGHUP stays ignored
                signal.signal(s, stop)
    except ValueError:  # not the main thread ('am ui' spawns in a worker): its process's own
        pass
    try:
        return spawn_one()
    except KeyboardInterrupt:
        if not stopped:
            raise
        raise AmError(
            f"stopped by {signal_name(stopped[0])}; what the spawn had made is undone",
            code=128 + stopped[0],
        ) from None


def _ignore(_signum, _frame) -> None:
    """A stop while a stopped spawn undoes its work (not SIG_IGN: one already on its way
    would then end in an OSError)."""


def spawn_many(count: int, one_of_many) -> int:
    """ONE_OF_MANY(i) for COUNT agents, each in a process of its own (``am/fanout.py``); each
    prints its id, or its error, as a spawn of its own would; then one error for all that are
    not running, if any."""
    import gc

    from am import fanout
    from am.main import outcome

    most = fanout.width(count, os.cpu_count())
    say(f"Spawning {count} agents, {most} at a time ...")
    gc.freeze()  # what the children share stays shared: no collector pass writes to it
    try:
        codes = fanout.run(count, most, lambda i: outcome(one_of_many, i))
    except fanout.Stopped as e:
        codes, signum = e.codes, e.signum
    else:
        signum = None
    error = many_failed(codes, signum)
    if error:
        raise error
    return 0


# A child's exit code for an agent that was made and ended while it started (kept, as
# 'am spawn' keeps one): neither a failure to undo nor a success.
ENDED_WHILE_STARTING = 3
STOPPED_WHILE_STARTING = 4  # and one 'am stop' stopped while it started, kept too


def many_failed(codes: list[int], signum: int | None = None) -> AmError | None:
    """The error of a --count spawn whose children ended with CODES (pure), stopped by
    SIGNUM if given; None when every agent runs."""
    running = codes.count(0)
    ended = codes.count(ENDED_WHILE_STARTING)
    stopped = codes.count(STOPPED_WHILE_STARTING)
    interrupted = codes.count(130)
    killed = [c - 128 for c in codes if c > 128 and c != 130]
    failed = len(codes) - running - ended - stopped - interrupted - len(killed)
    parts = []
    if failed:
        parts.append(f"{failed} did not start (errors above)")
    if ended:
        parts.append(f"{ended} ended while starting (kept: 'am list' shows them)")
    if stopped:
        parts.append(f"{stopped} stopped by 'am stop' while starting (kept, stopped)")
    if interrupted:
        parts.append(f"{interrupted} interrupted (undone) or never begun")
    if killed:
        names = ", ".join(sorted({signal_name(n) for n in killed}))
        parts.append(f"{len(killed)} killed by {names} ('am doctor --fix' clears what it left)")
    if not parts and signum is None:
        return None
    text = f"{len(codes) - running} of {len(codes)} agents are not running"
    text += "".join(f"; {p}" for p in parts)
    text += f"; the ids of the {running + ended + stopped} made are on standard output"
    if signum is not None:
        return AmError(f"stopped by {signal_name(signum)}: {text}", code=128 + signum)
    return AmError(text)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def prepare(plan: planning.Plan, layout: paths.Layout, environ: dict[str, str], warn=True):
    """The backend of PLAN, checked and ready (image, proxy image), before anything is made;
    warnings said if WARN. Returns PLAN with the backend's choices (its engine, a remote
    engine's volume) and the backend."""
    if plan.disk:
        from am import disk

        disk.check(layout.disks, plan.disk)
    backend = backends.for_mode(plan.mode, plan.runtime, layout, environ)
    if plan.mode == "container":
        plan = replace(plan, runtime=backend.runtime)
    session.require_tmux()  # both modes: a container's client runs in a session too
    for warning in plan.warnings if warn else ():
        say(f"am: warning: {warning}")
    return backend.prepare(plan), backend

"""``am start``: run a stopped or exited agent again on its kept workspace, with its settings.

The plan comes from the agent's record (``plan.from_record``), or, for an agent that never ran
here (restored, adopted), from this command's flags as a spawn would decide them
(``plan.first_start``); either way it is carried out by the spawn's own ``launch``.
"""

import contextlib
import os
import stat
from pathlib import Path

from am import backends, files, git, paths, session, status
from am import plan as planning
from am.commands import spawn
from am.errors import AmError
from am.record import Mode, Status, stop_count
from am.request import Request
from am.rollback import Rollback
from am.store import open_store
from am.valueclass import replace


@contextlib.contextmanager
def starting(layout, agent_id: str):
    """Only one ``am start`` of an agent at a time (the lock goes with the process)."""
    layout.run.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(files.locked(layout.run / f"{agent_id}.start.lock", wait=False))
        except BlockingIOError:
            raise AmError(f"agent {agent_id} is being started by another 'am start'") from None
        yield


def worktree_gitdir(record: dict, workspace: Path) -> Path:
    """The worktree's own folder in the source's git folder, which the container gets
    writable: the one recorded when it was made (never what the agent-writable ``.git`` file
    says now), and only if it really is a worktree folder of the source."""
    source = Path(str(record.get("source") or ""))
    worktrees = git.common_dir(source) / "worktrees"
    recorded = record.get("worktree_gitdir")
    gitdir = Path(str(recorded)) if recorded else worktrees / workspace.name
    if (
        gitdir.parent != worktrees
        or gitdir.is_symlink()
        or not gitdir.is_dir()
        or _pointer(gitdir / "gitdir") != str(workspace / ".git")
    ):
        raise AmError(
            f"the worktree of agent {record['id']} is no longer registered in {source}",
            "'git worktree prune' may have removed it; snapshot the "
            "workspace and restore it as a new agent",
        )
    return gitdir


def _pointer(path: Path) -> str | None:
    """The path a worktree's ``gitdir`` file holds; a container agent can write that file, so
    it is read as a regular file only, without following a link, and 4 KiB at most."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, 4096).decode(errors="replace").strip()
    finally:
        os.close(fd)


def check_flags(args, record: dict) -> None:
    """An agent with settings keeps them: the flags that choose them are for an agent that
    has none yet."""
    if not record.get("command"):
        return
    for name in planning.RUN_SETTINGS:
        if getattr(args, name, None) not in (None, False, []):
            flag = "--" + name.replace("_", "-")
            raise AmError(
                f"{flag}: agent {record['id']} keeps the settings it was spawned with",
                "spawn a new agent for other settings; only an agent restored from a "
                "snapshot, which has none yet, takes them here",
            )


def run(args) -> int:
    from am import config

    layout = paths.layout()
    store = open_store(layout)
    record = store.get(args.id)
    check_flags(args, record)
    request = Request.from_args(args, prompt=planning.read_prompt(args.prompt, args.prompt_file))
    with starting(layout, args.id):
        status.refuse_while_spawning(store.get(args.id))
        current = status.view(args.id, layout)["status"]
        if current in (Status.RUNNING, Status.STARTING):
            raise AmError(
                f"agent {args.id} is already {current}",
                f"see it with 'am attach {args.id}'" if current == Status.RUNNING else None,
            )
        if current == Status.ERROR:
            raise AmError(
                f"agent {args.id} never finished its spawn",
                "'am doctor --fix' "
                "settles it: kept as a stopped agent if it holds unsaved work, else "
                "removed",
            )
        record = store.get(args.id)
        workspace = layout.workspace(args.id)
        from am import workspace as ws

        if ws.held_on_host(record) and (workspace.is_symlink() or not workspace.is_dir()):
            raise AmError(f"the workspace of agent {args.id} is missing: {workspace}")
        environ = dict(os.environ)
        cfg = config.load(layout, environ)
        first = not record.get("command")
        if first:
            host_memory = host_cpus = None
            if request.container or record.get("snapshot_mode") == Mode.CONTAINER:
                import psutil

                host_memory, host_cpus = psutil.virtual_memory().total, os.cpu_count()
            plan = planning.first_start(
                record, request, layout, environ, host_memory, host_cpus, cfg
            )
        else:
            plan = planning.from_record(record, request, layout, environ, cfg)
        if plan.worktree and plan.mode == Mode.CONTAINER:
            plan = replace(plan, worktree_gitdir=worktree_gitdir(record, workspace))
        plan, backend = spawn.prepare(plan, layout, environ)
        # Leftovers of its last run (a session or container that outlived am's view of it),
        # under the session name its record holds too (am-a.b, before a '.' became ',').
        for name in dict.fromkeys([plan.session, record.get("session")]):
            if isinstance(name, str):
                session.kill_own(name, str(layout.root))
        if record.get("session") != plan.session:  # what stop, rm and list look for from now
            store.update(args.id, session=plan.session)
        if record.get("mode") == Mode.CONTAINER:
            backends.for_record(record, layout, environ).stop(record)
        fields = {
            "exit_code": None,
            "oom_killed": False,
            "stopped": None,
            "prompt": plan.prompt if request.prompt is not None else record.get("prompt"),
            "env_names": plan.env_names,
        }
        if request.prompt is not None:
            fields["prompt_args"] = plan.prompt_args
        if first:
            # Its first run fixes its settings, as a spawn records them.
            fields.update(
                {
                    k: v
                    for k, v in plan.record(str(layout.root)).items()
                    if k
                    not in (
                        "id",
                        "name",
                        "status",
                        "source",
                        "worktree",
                        "branch",
                        "base_commit",
                        "workspace",
                        "created",
                        "log",
                        "home",
                        "spawn_pid",
                    )
                }
            )
        undo = Rollback("the start")
        try:
            exited = spawn.launch(plan, backend, layout, undo, stops=stop_count(record), **fields)
        except BaseException:
            undo.run()
            raise
    if isinstance(exited, spawn.StoppedWhileStarting):
        raise exited
    spawn.say(f"Started {args.id} on its workspace {workspace}")
    return spawn.report(args.id, exited)

"""The process a tmux agent's session runs: starts the agent, waits, and records how it ended.

``python -m am.supervise SPEC`` reads the agent's command line and settings from the JSON file
SPEC (written by ``am spawn``; the agent's arguments never pass through tmux), runs it on the
session's terminal, and writes ``exit_code`` to the spec's exit file. Container agents have no
supervisor of their own: am's keeper (``am.keeper``) looks after all of them. For a Kubernetes
agent it runs ``kubectl attach`` (again, if a connection drops while the agent runs), then
reads the pod's status and deletes what came with the pod (``kube_session``).
"""

import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path

from am import clock, files, proc
from am.launchspec import InvalidSpec, LaunchSpec
from am.logread import CUT_AT, ROTATED
from am.runfiles import rotation_note, write_exit, write_guest, write_health  # noqa: F401

# As long as the spawn's writer waits for this end to open (spawn.hand_over_secrets).
SECRETS_WAIT = 60


def await_spec(path: Path, spawn: str | None = None, timeout: float = SECRETS_WAIT) -> bool:
    """Whether the spec PATH is there, waiting for it while its spawn works: a spawn starts a
    tmux agent's session while git still checks its workspace out, and writes the spec (whole,
    by a rename) once that is done, however long it takes. SPAWN: the spawn as
    ``proc.identity`` names it; without it, TIMEOUT seconds at most. Polled: a few ms at first,
    as the checkout's end is near."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while not os.path.lexists(path):
        if spawn is not None and spawn != proc.identity(spawn.partition(":")[0]):
            return os.path.lexists(path)  # it ended (or is another process): last look
        if spawn is None and time.monotonic() > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


def read_secrets(fifo: str, timeout: float = SECRETS_WAIT) -> dict[str, str] | None:
    """The agent's environment values, handed over through a FIFO so they touch no file; None
    when no writer gave them all within TIMEOUT seconds (its spawn was stopped first): the
    agent must not start without what its spawn meant it to have."""
    import select

    data = b""
    deadline = time.monotonic() + timeout
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a writer that never comes: no hang
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(fifo)
        raise
    try:  # unlinked only once the writer had its chance: it opens the path, never creates it
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        while True:
            left = max(0.0, deadline - time.monotonic())
            if not poller.poll(left * 1000):  # nothing more, and the time is up
                break
            chunk = os.read(fd, 1 << 16)
            if chunk:
                data += chunk
            elif data:  # the writer wrote, and is done
                break
            elif left > 0:  # no writer yet (where a FIFO tells no one apart): look again
                time.sleep(0.01)
            else:
                break
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(fifo)
    try:
        values = json.loads(data) if data else None
    except ValueError:  # not one whole hand-over (cut short, or two): none of it is taken
        return None
    return values if isinstance(values, dict) else None


def cap_log(path: str, limit: int, every: float = 1.0) -> None:
    """Keep the log tmux's pipe-pane appends to near LIMIT bytes, looked at every EVERY
    seconds (``cut_in_place``)."""
    while True:
        time.sleep(every)
        with contextlib.suppress(OSError):
            cut_in_place(path, limit)


def cut_in_place(path: str, limit: int) -> bool:
    """Past LIMIT bytes, move the log's last LIMIT bytes to ``.log.1`` and start it again
    with a note; whether it did. tmux's writer appends, so it carries on at the new end (what
    it writes between the copy's last read and the emptying is lost; the note may come after
    its next lines). Done under an exclusive flock, which 'am logs'
    takes shared, so to it the cut is one moment; ``.log.1.at`` says at which byte of the old
    log ``.log.1`` ends, so that 'am logs -f' prints what it had not read yet. A reader
    holding the lock (a paused pager) defers the cut to the next look, never blocks it."""
    if os.path.getsize(path) <= limit:
        return False
    with open(path, "r+b") as src:
        try:
            fcntl.flock(src.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        tmp = f"{path}.1.tmp"
        with open(tmp, "wb") as dst:
            start = src.seek(max(0, os.fstat(src.fileno()).st_size - limit))
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            # Emptied right after the last read: what tmux appends in between is lost.
            src.truncate(0)
            end = start + dst.tell()
        files.write_atomic(f"{path}{CUT_AT}", str(end))
        os.replace(tmp, f"{path}{ROTATED}")
        with open(path, "ab") as f:
            f.write(rotation_note(limit))
    return True


def run_child(spec: LaunchSpec, env: dict, on_start=None) -> int:
    """Fork and exec SPEC's command on the session's terminal; its exit code (128+N for a
    signal). fork/exec rather than a library call: the agent must inherit the pane's terminal,
    and SIGINT must be ignored here but not in the agent."""
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if spec.umask is not None:
            os.umask(spec.umask)
        try:
            os.chdir(spec.cwd)
            os.execvpe(spec.argv[0], spec.argv, env)
        except OSError as e:
            print(f"am: error: cannot run {spec.argv[0]}: {e.strerror}", file=sys.stderr)
            os._exit(127)
    if on_start:
        on_start(pid)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def kube_session(spec: LaunchSpec, env: dict) -> dict:
    """A Kubernetes agent: attach to its pod until the agent ends, again when a connection
    drops while it runs; its exit code and an OOM kill come from the pod's status. Then its
    objects go (auto-removal): a claim-backed agent's claim, its workspace, stays; an emptyDir
    agent's pod stays too, holding its workspace."""
    from am import kube
    from am.backends import kubernetes
    from am.errors import AmError

    k = spec.kubernetes
    t = kube.Target(k.namespace, k.context, k.kubeconfig)
    os.environ.update(env)  # this process's own kubectl calls find the cluster as the caller
    quick = 0
    while True:
        began = time.monotonic()
        code = run_child(spec, env)
        try:
            state = kube.container_state(kubernetes.get_pod(t, k.pod), kube.AGENT)
        except AmError as e:
            print(f"\r\nam: cannot ask the cluster about pod {k.pod}: {e.message}", file=sys.stderr)
            state = None
        if state is None or state.phase in ("running", "waiting"):
            quick = quick + 1 if time.monotonic() - began < 10 else 0
            if quick < 5:
                print(
                    f"\r\nam: the connection to pod {k.pod} ended while its agent runs; "
                    "attaching again",
                    file=sys.stderr,
                )
                time.sleep(2 * quick)
                continue
            print(
                f"\r\nam: error: cannot stay attached to pod {k.pod}: stopping it",
                file=sys.stderr,
            )
        break
    # Unknown when the cluster could not say how the agent ended.
    result = {"exit_code": code if state is not None else None, "oom_killed": False}
    if state is not None and state.phase == "terminated":
        result = {"exit_code": state.exit_code, "oom_killed": state.oom}
    if k.network_log:
        log = kubernetes.call(kube.logs_argv(t, kube.proxy_name(k.agent), "proxy"))
        if log.ok:
            with open(k.network_log, "a", encoding="utf-8") as f:
                f.write(log.out)
    roles = ("proxy", "env") if k.storage == "emptydir" else ()
    kubernetes.call(
        kube.delete_argv(t, kube.RUN_KINDS, kube.selector(k.agent, k.home, *roles), wait=False)
    )
    return result


def main(argv: list[str]) -> int:
    # What the supervisor writes (exit and health files) is the user's alone, whatever umask
    # the tmux server has; a tmux agent gets the umask of the user who spawned it.
    os.umask(0o077)
    path = Path(argv[0])
    if not await_spec(path, argv[1] if len(argv) > 1 else None):
        print(
            f"am: error: the spawn ended before it wrote the launch spec {path}; the agent "
            "did not start (hint: 'am doctor --fix' settles it)",
            file=sys.stderr,
        )
        return 2
    try:
        spec = LaunchSpec.read(path)
    except InvalidSpec as e:
        print(f"am: error: {e}", file=sys.stderr)
        return 2
    # A tmux agent gets exactly the caller's environment (from the FIFO), nothing of the server's.
    env = {} if spec.clean_env else dict(os.environ)
    env.update(spec.env)
    if spec.env_fifo:
        secrets = read_secrets(spec.env_fifo)
        if secrets is None:
            print(
                f"am: error: the agent's environment did not come whole from its spawn within "
                f"{SECRETS_WAIT} s (the spawn was stopped, or this started too late); the "
                "agent did not start (hint: 'am start ID' starts it)",
                file=sys.stderr,
            )
            ended = {"exit_code": 1, "oom_killed": False, "finished": clock.iso()}
            write_exit(spec.exit_file, ended)
            return 1
        env.update(secrets)
    # Ctrl-C in the pane is for the agent, not for its supervisor.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    started = time.time()
    if spec.log and spec.log_max:
        import threading

        threading.Thread(target=cap_log, args=(spec.log, spec.log_max), daemon=True).start()
    kube_result = None
    try:
        if spec.kubernetes:
            kube_result = kube_session(spec, env)
            code = kube_result["exit_code"]
        else:
            code = run_child(spec, env)
    except KeyboardInterrupt:
        code = 130
    result = kube_result or {"exit_code": code, "oom_killed": False}
    result["finished"] = clock.iso()
    result["seconds"] = round(time.time() - started, 3)
    write_exit(spec.exit_file, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""The process a tmux agent's session runs: starts the agent, waits, and records how it ended.

``python -m am.supervise SPEC`` reads the agent's command line and settings from the JSON file
SPEC (written by ``am spawn``; the agent's arguments never pass through tmux), runs it on the
session's terminal, and writes ``exit_code`` to the spec's exit file. Container agents have no
supervisor of their own: am's keeper (``am.keeper``) looks after all of them.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path


def read_secrets(fifo: str) -> dict[str, str]:
    """Values of --env NAME variables, handed over through a FIFO so they touch no file."""
    try:
        with open(fifo, encoding="utf-8") as f:
            data = f.read()
    finally:
        try:
            os.unlink(fifo)
        except FileNotFoundError:
            pass
    return json.loads(data) if data else {}


def write_exit(path: str, result: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_health(path: str | None):
    """A callback that records what the cgroup watch saw, while the agent still runs."""

    def write(watch) -> None:
        if path:
            write_exit(path, {"oom": watch.killed, "pids_limit": watch.pids_hit,
                              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    return write


def write_guest(path: str | None):
    """A callback that keeps a gVisor sandbox's task count where ``am status`` reads it: a
    figure replaced every few seconds, so not synced to disk like the files above."""

    def write(count: int) -> None:
        if path:
            tmp = f"{path}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"pids": count}, f)
            os.replace(tmp, path)

    return write


def cap_log(path: str, limit: int, every: float = 1.0) -> None:
    """Keep the log tmux's pipe-pane appends to near LIMIT bytes: checked every EVERY seconds,
    past it its last LIMIT bytes move to ``.log.1`` and the file starts again with a note
    (tmux's writer appends, so it carries on at the new end; what it writes during the copy
    may be lost)."""
    from am.keeper import rotation_note

    while True:
        time.sleep(every)
        try:
            if os.path.getsize(path) <= limit:
                continue
            tmp = f"{path}.1.tmp"
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                src.seek(max(0, os.fstat(src.fileno()).st_size - limit))
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(tmp, f"{path}.1")
            with open(path, "r+b") as f:
                f.truncate(0)
            with open(path, "ab") as f:
                f.write(rotation_note(limit))
        except OSError:
            pass


def main(argv: list[str]) -> int:
    # What the supervisor writes (exit and health files) is the user's alone, whatever umask
    # the tmux server has; a tmux agent gets the umask of the user who spawned it.
    os.umask(0o077)
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    # A tmux agent gets exactly the caller's environment (from the FIFO), nothing of the server's.
    env = {} if spec.get("clean_env") else dict(os.environ)
    env.update(spec.get("env", {}))
    if spec.get("env_fifo"):
        env.update(read_secrets(spec["env_fifo"]))
    # Ctrl-C in the pane is for the agent, not for its supervisor.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    started = time.time()
    if spec.get("log") and spec.get("log_max"):
        import threading

        threading.Thread(target=cap_log, args=(spec["log"], int(spec["log_max"])),
                         daemon=True).start()
    # fork/exec rather than a library call: the agent must inherit the pane's terminal, and
    # SIGINT must be ignored here but not in the agent.
    try:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            if "umask" in spec:
                os.umask(spec["umask"])
            try:
                os.chdir(spec["cwd"])
                os.execvpe(spec["argv"][0], spec["argv"], env)
            except OSError as e:
                print(f"am: error: cannot run {spec['argv'][0]}: {e.strerror}", file=sys.stderr)
                os._exit(127)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
    except KeyboardInterrupt:
        code = 130
    result = {"exit_code": code, "oom_killed": False}
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result["seconds"] = round(time.time() - started, 3)
    write_exit(spec["exit_file"], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

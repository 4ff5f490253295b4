"""The process a session runs: starts the agent, waits, and records how it ended.

``python -m am.supervise SPEC`` reads the agent's command line and settings from the JSON file
SPEC (written by ``am spawn``; the agent's arguments never pass through tmux), runs it on the
session's terminal, and writes ``exit_code`` and ``oom_killed`` to the spec's exit file. For a
container agent it then reads the container's final state from the engine and removes the
container, so the record survives the auto-removal. For a Kubernetes agent it runs ``kubectl
attach`` (again, if a connection drops while the agent runs), then reads the pod's status and
deletes what came with the pod (``kube_session``).
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


def watch_container(container: dict, watch, child: int, guest_file: str | None = None) -> None:
    """Once the container runs, watch its memory cgroup for OOM kills, and a gVisor sandbox's
    task count against its process limit (in a thread)."""
    import threading

    from am import proc

    engine, name = container["engine"], container["name"]

    def find():
        while True:
            res = proc.run([engine, "inspect", "--format", "{{.State.Pid}} {{.Id}}", name])
            fields = res.out.split() if res.ok else []
            pid = int(fields[0]) if len(fields) == 2 and fields[0].isdigit() else 0
            if pid > 0 and watch.start(pid):
                if container.get("isolation") == "gvisor" and container.get("pids_limit"):
                    watch.start_guest(pid, fields[1], int(container["pids_limit"]),
                                      write_guest(guest_file))
                return
            try:
                if os.waitpid(child, os.WNOHANG) != (0, 0):
                    return
            except ChildProcessError:
                return
            time.sleep(0.2)

    threading.Thread(target=find, daemon=True).start()


def container_result(engine: str, name: str, code: int, oom_seen: bool,
                     proxy: str | None = None, egress: str | None = None) -> dict:
    """The container's own exit code and OOM state, then remove it (auto-removal), and with it
    a limited agent's proxy and, if no other proxy uses it, am's outside network."""
    from am import proc

    res = proc.run([engine, "inspect", "--format",
                    "{{.State.ExitCode}} {{.State.OOMKilled}} {{.State.StartedAt}}", name])
    oom = oom_seen
    started = False
    if res.ok and len(res.out.split()) >= 3:
        fields = res.out.split()
        code = int(fields[0])
        oom = oom or fields[1].lower() == "true"
        started = not fields[2].startswith("0001-01-01")  # the zero time: it never ran
    proc.run([engine, "rm", "--force", name])
    if proxy:
        proc.run([engine, "rm", "--force", proxy])
    if egress:
        proc.run([engine, "network", "rm", egress])
    return {"exit_code": code, "oom_killed": oom, "started": started}


def run_child(spec: dict, env: dict, on_start=None) -> int:
    """Fork and exec SPEC's command on the session's terminal; its exit code (128+N for a
    signal). fork/exec rather than a library call: the agent must inherit the pane's terminal,
    and SIGINT must be ignored here but not in the agent."""
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
    if on_start:
        on_start(pid)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def kube_session(spec: dict, env: dict) -> dict:
    """A Kubernetes agent: attach to its pod until the agent ends, again when a connection
    drops while it runs; its exit code and an OOM kill come from the pod's status. Then its
    objects go (auto-removal): a claim-backed agent's claim, its workspace, stays; an emptyDir
    agent's pod stays too, holding its workspace."""
    from am import kube
    from am.backends import kubernetes
    from am.errors import AmError

    k = spec["kubernetes"]
    t = kube.Target(k["namespace"], k.get("context"), k.get("kubeconfig"))
    os.environ.update(env)  # this process's own kubectl calls find the cluster as the caller
    quick = 0
    while True:
        began = time.monotonic()
        code = run_child(spec, env)
        try:
            state = kube.container_state(kubernetes.get_pod(t, k["pod"]), kube.AGENT)
        except AmError as e:
            print(f"\r\nam: cannot ask the cluster about pod {k['pod']}: {e.message}",
                  file=sys.stderr)
            state = None
        if state is None or state.phase in ("running", "waiting"):
            quick = quick + 1 if time.monotonic() - began < 10 else 0
            if quick < 5:
                print(f"\r\nam: the connection to pod {k['pod']} ended while its agent runs; "
                      "attaching again", file=sys.stderr)
                time.sleep(2 * quick)
                continue
            print(f"\r\nam: error: cannot stay attached to pod {k['pod']}: stopping it",
                  file=sys.stderr)
        break
    # Unknown when the cluster could not say how the agent ended.
    result = {"exit_code": code if state is not None else None, "oom_killed": False}
    if state is not None and state.phase == "terminated":
        result = {"exit_code": state.exit_code, "oom_killed": state.oom}
    if k.get("network_log"):
        log = kubernetes.call(kube.logs_argv(t, kube.proxy_name(k["agent"]), "proxy"))
        if log.ok:
            with open(k["network_log"], "a", encoding="utf-8") as f:
                f.write(log.out)
    roles = ("proxy", "env") if k.get("storage") == "emptydir" else ()
    kubernetes.call(kube.delete_argv(t, kube.RUN_KINDS, kube.selector(k["agent"], k["home"],
                                                                      *roles), wait=False))
    return result


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
    from am.oomwatch import OomWatch

    watch = OomWatch(write_health(spec.get("health_file")))
    kube_result = None
    try:
        if spec.get("kubernetes"):
            kube_result = kube_session(spec, env)
            code = kube_result["exit_code"]
        else:
            code = run_child(spec, env, (lambda pid: watch_container(
                spec["container"], watch, pid, spec.get("guest_file")))
                if spec.get("container") else None)
    except KeyboardInterrupt:
        code = 130
    result = kube_result or {"exit_code": code, "oom_killed": False}
    if spec.get("container"):
        c = spec["container"]
        # podman's conmon marks an OOM kill with a file in its working directory
        marker = Path(spec["cwd"]) / "oom"
        oom_seen = watch.killed or marker.exists()
        result = container_result(c["engine"], c["name"], code, oom_seen, c.get("proxy"),
                                  c.get("egress"))
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result["seconds"] = round(time.time() - started, 3)
    write_exit(spec["exit_file"], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

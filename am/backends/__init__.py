"""Backends: where an agent runs. ``tmux`` on the host, a container on docker or podman, or a
pod of a Kubernetes cluster.

The factories live here, so that the engine module needs neither of its subclasses."""

from am.backends.base import Backend
from am.record import Mode


def for_runtime(runtime: str | None, layout=None, environ=None):
    """The engine named RUNTIME; ``auto`` is podman if it is usable and enforces the limits
    here (rootless podman on cgroup v1 ignores them), else docker. LAYOUT and ENVIRON are the
    command's (``Backend``)."""
    # Here, and only the one named: a spawn imports no engine module it does not use.
    if runtime == "docker":
        from am.backends.docker import Docker

        return Docker(layout, environ)
    if runtime == "podman":
        from am.backends.podman import Podman

        return Podman(layout, environ)
    from am import proc
    from am.backends.docker import Docker
    from am.backends.podman import Podman
    from am.errors import AmError

    if runtime not in ("auto", "", None):
        raise AmError(f"unknown runtime {runtime!r}", "choose docker, podman or auto")
    passed_over = None
    if (
        proc.which("podman")
        and proc.run(["podman", "version", "--format", "{{.Client.Version}}"]).ok
    ):
        podman = Podman(layout, environ)
        try:
            passed_over = podman.limits_problem()
        except AmError as e:
            passed_over = e.message
        if passed_over is None:
            return podman
    if not proc.which("docker"):
        if passed_over:
            raise AmError(f"{passed_over}, and docker is not installed", Podman.limits_hint)
        raise AmError(
            "no container engine found in PATH",
            "install podman or docker.io, or run without --container",
        )
    docker = Docker(layout, environ)
    if passed_over:
        # Say why podman was passed over when docker cannot take its place either.
        try:
            problem = docker.limits_problem()
        except AmError as e:
            raise AmError(
                f"no engine here can run the agent with its limits: {passed_over}; and {e.message}",
                e.hint,
            ) from None
        if problem:
            raise AmError(
                f"no engine here can run the agent with its limits: {passed_over}; and {problem}",
                docker.limits_hint,
            )
    return docker


def for_mode(mode: str, runtime: str | None = None, layout=None, environ=None) -> Backend:
    """The backend of an agent of MODE and RUNTIME, for a command of LAYOUT and ENVIRON."""
    if mode == Mode.TMUX:
        from am.backends.tmux import TmuxBackend

        return TmuxBackend(layout, environ)
    if runtime == "kubernetes":
        from am.backends.kubernetes import Kubernetes

        return Kubernetes(layout, environ)
    return for_runtime(runtime or "auto", layout, environ)


def for_record(record: dict, layout=None, environ=None) -> Backend:
    return for_mode(record.get("mode", Mode.TMUX), record.get("runtime"), layout, environ)


def of_record(record: dict, layout=None, environ=None) -> Backend | None:
    """The backend RECORD names, or None when it names none (a hand-edited record): never a
    search for an engine, as an ``auto`` runtime is."""
    mode, runtime = record.get("mode"), record.get("runtime")
    if mode == Mode.TMUX or (
        mode == Mode.CONTAINER and runtime in ("docker", "podman", "kubernetes")
    ):
        return for_mode(mode, runtime, layout, environ)
    return None

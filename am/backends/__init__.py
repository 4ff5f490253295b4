"""Backends: where an agent runs. ``tmux`` on the host, a container on docker or podman, or a
pod of a Kubernetes cluster.

The factories live here, so that the engine module needs neither of its subclasses."""

from am.backends.base import Backend
from am.record import Mode


def for_runtime(runtime: str | None):
    """The container engine named RUNTIME; ``auto`` is podman if usable, else docker."""
    import shutil

    from am import proc
    from am.backends.docker import Docker
    from am.backends.podman import Podman
    from am.errors import AmError

    if runtime == "docker":
        return Docker()
    if runtime == "podman":
        return Podman()
    if runtime not in ("auto", "", None):
        raise AmError(f"unknown runtime {runtime!r}", "choose docker, podman or auto")
    if shutil.which("podman") and proc.run(["podman", "version", "--format",
                                            "{{.Client.Version}}"]).ok:
        return Podman()
    if shutil.which("docker"):
        return Docker()
    raise AmError("no container engine found in PATH",
                  "install podman or docker.io, or run without --container")


def for_mode(mode: str, runtime: str | None = None) -> Backend:
    if mode == Mode.TMUX:
        from am.backends.tmux import TmuxBackend

        return TmuxBackend()
    if runtime == "kubernetes":
        from am.backends.kubernetes import Kubernetes

        return Kubernetes()
    return for_runtime(runtime or "auto")


def for_record(record: dict) -> Backend:
    return for_mode(record.get("mode", Mode.TMUX), record.get("runtime"))

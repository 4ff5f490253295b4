"""Backends: where an agent runs. ``tmux`` on the host, a container on docker or podman, or a
pod of a Kubernetes cluster."""

from am.backends.base import Backend


def for_mode(mode: str, runtime: str | None = None) -> Backend:
    if mode == "tmux":
        from am.backends.tmux import TmuxBackend

        return TmuxBackend()
    if runtime == "kubernetes":
        from am.backends.kubernetes import Kubernetes

        return Kubernetes()
    from am.backends.engine import engine

    return engine(runtime or "auto")


def for_record(record: dict) -> Backend:
    return for_mode(record.get("mode", "tmux"), record.get("runtime"))

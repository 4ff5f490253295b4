"""Backends: where an agent runs. ``tmux`` on the host, or a container on docker or podman."""

from am.backends.base import Backend
from am.record import Mode


def for_mode(mode: str, runtime: str | None = None) -> Backend:
    if mode == Mode.TMUX:
        from am.backends.tmux import TmuxBackend

        return TmuxBackend()
    from am.backends.engine import engine

    return engine(runtime or "auto")


def for_record(record: dict) -> Backend:
    return for_mode(record.get("mode", Mode.TMUX), record.get("runtime"))

"""The small interface every backend implements."""

from abc import ABC, abstractmethod


class Backend(ABC):
    mode: str
    runtime: str | None = None

    def check(self) -> None:
        """Raise AmError with a fix when the backend cannot run agents here."""

    def prepare(self, plan) -> None:
        """Make what every agent of this backend needs (an image); before anything is created."""

    def before_start(self, plan) -> None:
        """Last step before the session starts, once the workspace exists."""

    def after_start(self, plan, session_alive) -> None:
        """Return once the agent really runs; raise AmError if it could not start."""

    @abstractmethod
    def launch_spec(self, plan) -> dict:
        """What the session's supervisor runs: ``argv``, ``cwd``, ``env``, ``container``."""

    def stop(self, record: dict) -> None:
        """Stop what runs beyond the session (a container); the session is killed separately."""

    def running(self) -> set[str] | None:
        """Names of this backend's live containers in one call, or None if it has none."""
        return None

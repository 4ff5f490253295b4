"""The small interface every backend implements."""

from abc import ABC, abstractmethod


class Backend(ABC):
    mode: str
    runtime: str | None = None
    # Whether a running agent's refused requests reach its host network log as they happen;
    # if not, ``proxy_log`` reads them where its proxy runs.
    network_log_live: bool = True

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

    def figures(self, views: list[dict]) -> dict[str, tuple[dict | None, str | None]]:
        """Live figures of this backend's running agents VIEWS, gathered for all of them at
        once (``am status``; each backend in a thread of its own): agent id -> (cpu_percent,
        memory, memory_limit, pids, None where unknown), or None and why there are none."""
        return {v["id"]: (None, f"{self.runtime or self.mode} gives no figures") for v in views}

    def snapshot_on_host(self, record: dict) -> bool:
        """Whether a stopped agent's workspace may be archived by the host when its sandbox
        cannot run (the engine down, its image gone): only where nothing else writes it."""
        return False

    def proxy_log(self, record: dict) -> str:
        """The output of a running agent's network proxy, where ``network_log_live`` is
        false."""
        raise NotImplementedError

    def running(self) -> set[str] | None:
        """Names of this backend's live containers in one call, or None if it has none."""
        return None

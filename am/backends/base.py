"""The small interface every backend implements."""

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping


class Backend(ABC):
    mode: str
    runtime: str | None = None
    # Whether a running agent's refused requests reach its host network log as they happen;
    # if not, ``proxy_log`` reads them where its proxy runs.
    network_log_live: bool = True

    def __init__(self, layout=None, environ: Mapping[str, str] | None = None):
        """LAYOUT (``am.paths.Layout``) and ENVIRON are the command's: what the backend makes
        goes there, and its clients run with that environment. Without them (a command that
        only looks), the process's own."""
        self._layout = layout
        self._environ = environ

    @property
    def layout(self):
        if self._layout is not None:
            return self._layout
        from am import paths

        return paths.layout()  # read each time, as before: AM_HOME may change (tests)

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def check(self) -> None:
        """Raise AmError with a fix when the backend cannot run agents here."""

    def prepare(self, plan):
        """Make what every agent of this backend needs (an image); before anything is created.
        Returns the plan, with what the backend decided for it."""
        return plan

    def before_start(self, plan):
        """Last step before the session starts, once the workspace exists; returns the plan
        with what it made (mounts, a volume)."""
        return plan

    def after_start(self, plan, session_alive) -> None:
        """Return once the agent really runs; raise AmError if it could not start."""

    @abstractmethod
    def launch_spec(self, plan):
        """What the session's supervisor or am's keeper runs (``am.launchspec.LaunchSpec``)."""

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

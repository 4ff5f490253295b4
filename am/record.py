"""An agent's record: the entry the state file keeps for it, and its mode and status words.

``Mode`` and ``Status`` name the words a record holds: plain strings, as a record read back
from JSON holds them, so code compares with either. Not ``enum``s: every ``am list`` imports
this module, and ``enum`` (with what it imports) costs it a tenth of its time.
``Record`` is the one way a new entry is made (a spawn, a restore, an adopted workspace): the
names that follow from the id (session, container) are derived here, never written by hand.
"""


class Mode:
    TMUX = "tmux"  # the agent runs in its host tmux session
    CONTAINER = "container"  # the session runs the engine's client of the agent's container
    ALL = (TMUX, CONTAINER)


class Status:
    RUNNING = "running"
    STOPPED = "stopped"  # am stop (or never started: restored, adopted)
    EXITED = "exited"  # derived: the session ended by itself
    ERROR = "error"  # derived: a spawn that died before it finished
    STARTING = "starting"  # recorded by a spawn or restore still at work
    ALL = (RUNNING, STOPPED, EXITED, ERROR, STARTING)


def stop_count(record: dict[str, object]) -> int:
    """How many times 'am stop' (or 'am rm', 'am clean') stopped the agent of RECORD: a spawn
    or start still at work tells by it that a stop came meanwhile."""
    n = record.get("stops")
    return n if type(n) is int and 0 <= n < MAX_STOPS else 0  # a hand-edited file: 0


MAX_STOPS = 1 << 31


def word(value: object, words: tuple[str, ...]) -> str:
    """VALUE if it is one of WORDS; ValueError if not."""
    if value not in words:
        raise ValueError(f"{value!r} is not one of {', '.join(words)}")
    return str(value)


def detached(record: dict[str, object]) -> bool:
    """Whether the agent runs detached in a local or remote engine, looked after by am's keeper
    (a tmux agent, and a Kubernetes agent's ``kubectl attach``, run in a tmux session)."""
    return record.get("mode") == Mode.CONTAINER and record.get("runtime") != "kubernetes"


class Record:
    """A new agent's record; ``as_dict`` is what the state file stores. EXTRA holds the
    fields only some records have (a spawn's settings, a restore's archive). A plain class,
    not a dataclass: every ``am list`` imports this module, and ``dataclasses`` costs it 6 ms."""

    def __init__(
        self,
        id: str,
        workspace: str,
        log: str,
        home: str,
        *,
        mode: str = Mode.TMUX,
        status: str = Status.STARTING,
        runtime: str | None = None,
        source: str | None = None,
        worktree: bool = False,
        branch: str | None = None,
        base_commit: str | None = None,
        agent: str | None = None,
        command: list[str] | None = None,
        network: str | None = None,
        allow_domains: list[str] | None = None,
        limits: dict[str, object] | None = None,
        created: str | None = None,
        extra: dict[str, object] | None = None,
    ):
        from am import clock

        self.id, self.workspace, self.log, self.home = id, workspace, log, home
        self.mode, self.status, self.runtime, self.source = mode, status, runtime, source
        self.worktree, self.branch, self.base_commit = worktree, branch, base_commit
        self.agent, self.command, self.network = agent, list(command or []), network
        self.allow_domains = list(allow_domains or [])
        self.limits, self.created = limits, created or clock.iso()
        self.extra = dict(extra or {})

    def as_dict(self) -> dict[str, object]:
        from am import ids

        return {
            "id": self.id,
            "name": self.id,
            "mode": word(self.mode, Mode.ALL),
            "runtime": self.runtime,
            "status": word(self.status, Status.ALL),
            "source": self.source,
            "worktree": self.worktree,
            "branch": self.branch,
            "base_commit": self.base_commit,
            "workspace": str(self.workspace),
            "container": ids.container_name(self.id) if self.mode == Mode.CONTAINER else None,
            "session": ids.session_name(self.id),
            "agent": self.agent,
            "command": self.command,
            "created": self.created,
            "exit_code": None,
            "oom_killed": False,
            "network": self.network,
            "allow_domains": self.allow_domains,
            "limits": self.limits,
            "log": str(self.log),
            "home": self.home,
            **self.extra,
        }

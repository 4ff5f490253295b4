"""What a spawn, or an agent's first start, asks for: the flags a plan is built from.

``am spawn`` and ``am start`` read their argparse Namespace into a ``Request`` once; the plan
(``am.plan``) reads only this, so it can be built, and tested, without a command line. The
field names are the flags' argparse names, which the settings (``Config.resolve``) look up.
"""

from __future__ import annotations

from am.valueclass import fields, value_class

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@value_class
class Request:
    """What the user asked of a spawn, from its flags, before any default or check."""

    name: str | None = None
    base: str | None = None
    branch: str | None = None
    worktree: bool = False
    container: bool = False
    runtime: str | None = None
    kube_workspace: str | None = None
    agent: str | None = None
    cmd: str | None = None
    skip_permissions: bool = False
    network: str | None = None
    isolation: str | None = None
    allow_domain: tuple[str, ...] = ()
    allow_private_domain: tuple[str, ...] = ()
    memory: str | None = None
    cpus: str | None = None
    pids: str | None = None
    gpus: str | None = None
    image: str | None = None
    mount_agent_config: bool = False
    publish: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # --env NAME[=VALUE] items
    disk: str | None = None
    prompt: str | None = None  # the task's text (of --prompt, or read from --prompt-file)
    prompt_file: str | None = None  # where the text came from, named in messages
    continue_: bool = False  # am start --continue

    @classmethod
    def from_args(cls, args: Any, **given: Any) -> Request:
        """The request of an argparse Namespace ARGS (a flag it lacks keeps its default);
        GIVEN replaces fields, such as the prompt's text once read."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = getattr(args, f.name, None)
            if isinstance(f.default, tuple):
                value = tuple(value or ())
            elif isinstance(f.default, bool):
                value = bool(value)
            values[f.name] = value
        return cls(**{**values, **given})

"""Agent ids: generated ones and user-chosen names."""

import os

from am import validate
from am.errors import AmError

NAME_RE = validate.NAME_RE


# Ids drawn ahead of the plan that uses them (``draw``).
_drawn: list[str] = []


def new_id() -> str:
    """A fresh 8-hex-character id: the one ``draw`` drew, if any is left."""
    if _drawn:
        return _drawn.pop()
    return os.urandom(4).hex()  # what secrets.token_hex does, without importing hmac


def draw() -> str:
    """A fresh id that the next ``new_id`` returns: a spawn's head start (``am.headstart``)
    names the branch it makes by it before the spawn's plan is made."""
    agent_id = os.urandom(4).hex()
    _drawn.append(agent_id)
    return agent_id


def undraw(agent_id: str) -> None:
    """AGENT_ID no longer for the next ``new_id``, if ``draw`` drew it and none took it."""
    if agent_id in _drawn:
        _drawn.remove(agent_id)


def validate_name(name: str) -> str:
    """Return NAME if it is a valid agent name, else raise a clear error."""
    if not NAME_RE.fullmatch(name) or name in {".", ".."} or ".." in name:
        raise AmError(
            f"invalid agent name {name!r}",
            "a name is 1-63 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit",
        )
    if name.endswith((".", ".lock")):  # what git refuses as the end of a branch's name
        raise AmError(
            f"invalid agent name {name!r}: its branch am/{name} would be no valid branch name",
            "end the name with a letter, a digit, '_' or '-', and not with '.lock' (an "
            f"agent an older am named so: 'am snapshot {name}', then 'am restore SNAPSHOT "
            "--name NEW' keeps its work under a new name)",
        )
    return name


def container_name(agent_id: str) -> str:
    """The container of an agent."""
    return f"am-{agent_id}"


def session_name(agent_id: str) -> str:
    """The tmux session of an agent: ``am-<id>``, each '.' as ','. tmux makes every '.' of a
    session's name '_' (it separates a window from a pane in a target), so ``a.b`` would be
    made as ``am-a_b``, which agent ``a_b`` names too; ',' is in no agent's name."""
    return f"am-{agent_id.replace('.', ',')}"


def volume_name(agent_id: str) -> str:
    """The engine volume that holds an agent's workspace on a remote engine."""
    return f"am-ws-{agent_id}"

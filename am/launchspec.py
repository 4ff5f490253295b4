"""The launch spec: what runs an agent, written by ``am spawn`` and ``am start`` as
``run/ID.spec.json`` and read by the agent's session supervisor (``am.supervise``) or, for a
container agent, by am's keeper (``am.keeper``).

One type for both sides. The file lives under AM_HOME, where anything running as the user can
change it, so it is read as untrusted input: a missing field or one of the wrong type is one
``InvalidSpec`` that names it, never a traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from am.valueclass import MISSING, asdict, fields, is_value, value_class

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")


class InvalidSpec(ValueError):
    """A spec that is not what am writes (changed by hand, damaged, or from elsewhere)."""


@value_class
class ContainerSpec:
    """A docker or podman agent's container, which the keeper attaches to and watches."""

    engine: str  # the engine's CLI: docker or podman
    name: str
    isolation: str | None = None
    pids_limit: int | None = None
    api: dict[str, Any] | None = None  # engineapi.Endpoint.to_json(); None: a podman's conmon
    log_max: int = 0
    proxy: str | None = None  # a limited agent's proxy container, removed with it
    egress: str | None = None  # am's own outside network, removed when unused
    gated: bool = False  # started held: the keeper releases its gate once attached (am/gate.py)
    # The container (or its gate) execs the agent's own command: no wrapper of am's (the
    # limited network's relay, --mount-agent-config's copies), am's image (no entrypoint)
    # around it, and runc (gVisor's sandbox is no program of the agent's). The keeper may
    # then end the start window once that command's program runs.
    direct: bool = False


@value_class
class KubeSpec:
    """A Kubernetes agent's pod, which the session's supervisor attaches to."""

    namespace: str
    pod: str
    agent: str
    home: str
    context: str | None = None
    kubeconfig: str | None = None
    storage: str | None = None
    network_log: str | None = None


@value_class
class LaunchSpec:
    """What runs an agent: its command line, where, with what, and where its output goes."""

    argv: list[str]  # the agent's command line, or the engine client's that makes it
    cwd: str
    env: dict[str, str]  # set for the command (no secret values: those come by FIFO)
    log: str
    container: ContainerSpec | None = None
    kubernetes: KubeSpec | None = None
    clean_env: bool = False  # the command gets only ENV and the FIFO's values
    log_max: int = 0  # bytes of the log before it rotates; 0: never
    exit_file: str = ""
    umask: int | None = None
    health_file: str | None = None
    started_at: float | None = None
    guest_file: str | None = None
    env_fifo: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> LaunchSpec:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise InvalidSpec("it is not JSON") from None
        spec = _build(cls, data, "")
        if not spec.argv:
            raise InvalidSpec("argv is empty")
        if spec.umask is not None and not 0 <= spec.umask <= 0o777:
            raise InvalidSpec("umask is out of range")
        if spec.log_max < 0:
            raise InvalidSpec("log_max is negative")
        if spec.container is not None:
            _check_container(spec.container)
        return spec

    @classmethod
    def read(cls, path: Path) -> LaunchSpec:
        """The spec in the file PATH; InvalidSpec, naming the file, if it cannot be one."""
        try:
            return cls.from_json(path.read_bytes())
        except OSError as e:
            raise InvalidSpec(f"cannot read the launch spec {path}: {e.strerror}") from None
        except InvalidSpec as e:
            raise InvalidSpec(
                f"the launch spec {path} is invalid: {e}; am writes it at each start "
                "('am stop', then 'am start' the agent)"
            ) from None


ENGINES = ("docker", "podman")
# The engines' own rule for a container or network name: never an option's leading '-'.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,253}")
TLS_FILES = ("ca", "cert", "key")


def _check_container(c: ContainerSpec) -> None:
    """What the types alone do not say: names the engine reads as names, sizes that are
    sizes, an API endpoint as ``engineapi.Endpoint.to_json`` writes it."""
    if c.engine not in ENGINES:
        raise InvalidSpec(f"container.engine is not one of {', '.join(ENGINES)}")
    for what, value in (("name", c.name), ("proxy", c.proxy), ("egress", c.egress)):
        if value is not None and not NAME.fullmatch(value):
            raise InvalidSpec(f"container.{what} is not a container or network name")
    if c.log_max < 0 or (c.pids_limit is not None and c.pids_limit < 0):
        raise InvalidSpec("container.log_max or container.pids_limit is negative")
    if c.api is None:
        return
    tls = c.api.get("tls")
    if set(c.api) - {"url", "tls"} or not isinstance(c.api.get("url"), str):
        raise InvalidSpec("container.api is not an engine endpoint (url, tls)")
    if tls is not None and (
        not isinstance(tls, dict)
        or set(tls) - {*TLS_FILES, "verify"}
        or not all(isinstance(tls[k], str) for k in TLS_FILES if k in tls)
        or not isinstance(tls.get("verify", True), bool)
    ):
        raise InvalidSpec("container.api.tls is not TLS settings (ca, cert, key, verify)")


def _build(cls: type[T], data: object, where: str) -> T:
    """An instance of the value class CLS from DATA, every field checked against its type.
    (``typing`` is imported here, by the readers: a spawn that writes a spec needs none.)"""
    import typing

    if not isinstance(data, dict):
        raise InvalidSpec(f"{where or 'the spec'} is not an object")
    hints = typing.get_type_hints(cls, globalns=globals() | {"Any": typing.Any})
    values = {}
    for f in fields(cls):
        name = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise InvalidSpec(f"{name} is missing")
            continue
        values[f.name] = _value(hints[f.name], data[f.name], name)
    return cls(**values)


def _value(kind: Any, value: object, name: str) -> Any:
    import types
    import typing

    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        (kind,) = [k for k in options if k is not type(None)]
        return _value(kind, value, name)
    if is_value(kind):
        return _build(kind, value, name)
    if origin is list:
        if not isinstance(value, list):
            raise InvalidSpec(f"{name} is not a list")
        (item,) = typing.get_args(kind)
        return [_value(item, v, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidSpec(f"{name} is not an object")
        _, item = typing.get_args(kind)
        return {k: _value(item, v, f"{name}.{k}") for k, v in value.items()}
    if kind is typing.Any:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not kind:  # a bool is no int here, nor an int a str
        raise InvalidSpec(f"{name} is not a {kind.__name__}")
    return value

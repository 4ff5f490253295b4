"""Effective settings: spawn flags, then AM_* variables, then config.toml, then built-in defaults.

The file is read with ``tomllib`` and checked whole on every load, so a mistake is reported at
once, as one error naming the file, the key and what it accepts, whichever command runs.
"""

import os
import re
from collections.abc import Callable
from pathlib import Path

from am import profiles, validate
from am.errors import AmError
from am.valueclass import field, value_class

SOURCES = ("flag", "env", "file", "default")
RUNTIMES = ("docker", "podman", "auto", "kubernetes")
STORAGES = ("pvc", "emptydir")  # am/kube.py
NETWORKS = ("none", "limited", "full")
ISOLATIONS = ("runc", "gvisor")  # am/isolation.py; not imported here, to keep start-up cheap
DOCS = "see 'Configuration' in docs/usage.md"


class Invalid(Exception):
    """A value a key does not accept; the caller names where the value came from."""


def _choice(options):
    def check(value):
        if not isinstance(value, str) or value not in options:
            raise Invalid("one of " + ", ".join(options))
        return value

    return check


def _text(value):
    if not isinstance(value, str) or not value.strip():
        raise Invalid("a non-empty string")
    return value


def _memory(value):
    if not isinstance(value, str):
        raise Invalid('a size as a string, such as "512m" or "2g"')
    try:
        validate.memory(value)
    except validate.Invalid as e:
        raise Invalid(e.hint or 'a size such as "512m" or "2g"') from None
    return value.lower()


def _log_size(value):
    if not isinstance(value, str):
        raise Invalid('a size as a string, at least 64k, such as "16m"')
    try:
        size = validate.memory_bytes(value)
    except validate.Invalid:
        size = 0
    if size < 64 * 1024:
        raise Invalid('a size as a string, at least 64k, such as "16m"')
    return value.lower()


def _cpus(value):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Invalid("a positive number such as 0.5 or 2")
    try:
        validate.cpus(str(value))
    except validate.Invalid as e:
        raise Invalid(e.hint) from None
    return str(value)


def _pids(value):
    try:
        return validate.pids(value)
    except validate.Invalid as e:
        raise Invalid(e.hint) from None


def _disk(value):
    from am import disk

    if not isinstance(value, str):
        raise Invalid('a size as a string, such as "10g", or "none"')
    try:
        return disk.check_size(value) or "none"
    except AmError as e:
        raise Invalid(e.hint or 'a size such as "10g", or "none"') from None


def _seconds(value):
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise Invalid("a positive number of seconds such as 600") from None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0
        or value == float("inf")
    ):
        raise Invalid("a positive number of seconds such as 600")
    return value


def _domains(value):
    if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
        raise Invalid('a list of host names such as ["pypi.org", "*.example.com"]')
    from am import domains  # only with a list to check: not every command's import

    try:
        # Public suffix wildcards are refused at spawn: the list costs 50 ms to load.
        return [domains.check(d, "entry", suffixes=False) for d in value]
    except AmError as e:
        raise Invalid(
            f"host names such as example.com, *.example.com or example.com:8443 ({e.message})"
        ) from None


def _optional_text(value):
    """A string; empty: the default (a Kubernetes context's own, say)."""
    if not isinstance(value, str) or any(ord(c) < 32 for c in value):
        raise Invalid("a string")
    return value.strip()


def _quantity(value):
    if not isinstance(value, str) or not re.fullmatch(
        r"[0-9]+(?:\.[0-9]+)?(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?", value
    ):
        raise Invalid('a Kubernetes size such as "10Gi"')
    return value


def _clis(value):
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    if not isinstance(items, list) or not all(
        isinstance(c, str) and validate.NAME_RE.fullmatch(c) for c in items
    ):
        raise Invalid('agent CLI names, such as ["claude", "codex"] (or "claude,codex")')
    return sorted(set(items))


@value_class
class Key:
    """One setting am knows: its dotted name, default, check and environment variable."""

    name: str  # dotted, as in the file
    default: object
    check: Callable[[object], object]  # returns the normalised value or raises Invalid
    env: str | None = None
    flag: str | None = None  # the argparse dest of the spawn flag


KEYS = {
    k.name: k
    for k in (
        Key("runtime", "auto", _choice(RUNTIMES), "AM_RUNTIME", "runtime"),
        Key("agent", "claude", _text, "AM_AGENT", "agent"),
        Key("image", validate.DEFAULT_IMAGE, _text, "AM_IMAGE", "image"),
        Key("network", "none", _choice(NETWORKS), "AM_NETWORK", "network"),
        Key("isolation", ISOLATIONS[0], _choice(ISOLATIONS), "AM_ISOLATION", "isolation"),
        Key("allow_domains", [], _domains, None, "allow_domain"),
        Key("allow_private_domains", [], _domains, None, "allow_private_domain"),
        Key("limits.memory", validate.DEFAULT_LIMITS["memory"], _memory, "AM_MEMORY", "memory"),
        Key("limits.cpus", validate.DEFAULT_LIMITS["cpus"], _cpus, "AM_CPUS", "cpus"),
        Key("limits.pids", int(validate.DEFAULT_LIMITS["pids"]), _pids, "AM_PIDS", "pids"),
        # A container agent's workspace size (am/disk.py); "none": no cap.
        Key("limits.disk", "none", _disk, "AM_DISK", "disk"),
        Key("idle_after", validate.DEFAULT_IDLE_AFTER, _seconds, "AM_IDLE_AFTER", None),
        # The CLIs `am image build` (and a first container spawn) put in the image.
        Key("agent_clis", ["claude"], _clis, "AM_AGENT_CLIS", None),
        # The host log of an agent rotates at this size, keeping one older file.
        Key("logs.max_size", validate.DEFAULT_LOG_MAX_SIZE, _log_size, "AM_LOG_MAX_SIZE", None),
        # --runtime kubernetes (docs/scale.md): empty context and namespace are kubectl's own
        Key("kubernetes.context", "", _optional_text, "AM_KUBE_CONTEXT", None),
        Key("kubernetes.namespace", "", _optional_text, "AM_KUBE_NAMESPACE", None),
        Key(
            "kubernetes.workspace", "pvc", _choice(STORAGES), "AM_KUBE_WORKSPACE", "kube_workspace"
        ),
        Key("kubernetes.workspace_size", "10Gi", _quantity, None, None),
        Key("kubernetes.storage_class", "", _optional_text, None, None),
        Key("kubernetes.proxy_image", "am-proxy:2", _text, None, None),  # network.PROXY_IMAGE
    )
}
TABLES = {
    "limits": ("memory", "cpus", "pids", "disk"),
    "logs": ("max_size",),
    "agents": (),
    "kubernetes": (
        "context",
        "namespace",
        "workspace",
        "workspace_size",
        "storage_class",
        "proxy_image",
    ),
}
AGENT_KEYS = {
    "command": 'a non-empty list of strings, such as ["my-agent", "--verbose"]',
    "skip_permissions_flag": 'a string, such as "--yes"',
    "api_domains": "a list of host names",
    "env_names": 'a list of environment variable names, such as ["MY_API_KEY"]',
    "config_paths": 'a list of paths relative to your home, such as [".my-agent"]',
    "prompt_args": 'a list of strings, one holding {prompt}, such as ["--task", "{prompt}"] '
    "(empty: the agent takes no prompt)",
    "continue_args": 'a list of strings, such as ["--continue"] (empty: none)',
}


@value_class(frozen=False)
class Setting:
    """A setting's effective value and where it came from."""

    value: object
    source: str  # one of SOURCES
    origin: str  # the flag, variable or file it came from

    def label(self, key: str) -> str:
        """How an error message names this value."""
        if self.source in ("flag", "env"):
            return self.origin
        if self.source == "file":
            return f"{key} in {self.origin}"
        return f"default {key}"


@value_class(frozen=False)
class Config:
    """The config file and the environment's settings, checked; ``resolve`` gives each value."""

    path: Path
    exists: bool
    file_values: dict = field(default_factory=dict)  # dotted key -> normalised value
    env_values: dict = field(default_factory=dict)  # dotted key -> (variable, value)
    agents: dict = field(default_factory=dict)  # name -> profiles.Profile from the file

    def resolve(self, args=None) -> dict[str, Setting]:
        """Every key's effective value and where it came from; ARGS holds spawn flags."""
        out = {}
        for name, key in KEYS.items():
            flag_value = getattr(args, key.flag, None) if key.flag and args is not None else None
            if isinstance(flag_value, tuple):  # a Request's (am/request.py)
                flag_value = list(flag_value)
            if flag_value not in (None, [], ""):
                flag = "--" + key.flag.replace("_", "-")
                out[name] = Setting(_checked(key, flag_value, flag), "flag", flag)
            elif name in self.env_values:
                var, value = self.env_values[name]
                out[name] = Setting(value, "env", var)
            elif name in self.file_values:
                out[name] = Setting(self.file_values[name], "file", str(self.path))
            else:
                default = list(key.default) if isinstance(key.default, list) else key.default
                out[name] = Setting(default, "default", "built-in")
        agent = out["agent"]
        known = {**profiles.BUILTIN, **self.agents}
        if agent.value not in known:
            raise _fail(
                f"invalid {agent.label('agent')}: unknown agent {agent.value!r}",
                ", ".join(sorted(known)),
            )
        return out

    def profile(self, name: str) -> profiles.Profile:
        return profiles.get(name, self.agents)


def _fail(what: str, accepted: str) -> AmError:
    return AmError(what, f"accepted: {accepted}")


def _agent_profile(name: str, table, path: Path) -> profiles.Profile:
    where = f"agents.{name} in {path}"
    if not isinstance(table, dict):
        raise _fail(
            f"invalid {where}: expected a table", "[agents.NAME] with " + ", ".join(AGENT_KEYS)
        )
    if not validate.NAME_RE.fullmatch(name):
        raise _fail(
            f"invalid agent name {name!r} in {path}", "lowercase letters, digits, '_', '.', '-'"
        )
    for k in table:
        if k not in AGENT_KEYS:
            raise _fail(f"unknown key {k!r} in [agents.{name}] of {path}", ", ".join(AGENT_KEYS))
    base = profiles.BUILTIN.get(name)

    def strings(k, nonempty=False, check=None):
        v = table[k]
        if (
            not isinstance(v, list)
            or not all(isinstance(s, str) and s for s in v)
            or (nonempty and not v)
            or (check and not all(check(s) for s in v))
        ):
            raise _fail(f"invalid agents.{name}.{k} in {path}: {v!r}", AGENT_KEYS[k])
        return tuple(v)

    if "command" in table:
        command = strings("command", nonempty=True)
    elif base:
        command = base.command
    else:
        raise _fail(f"agents.{name} in {path} has no command", AGENT_KEYS["command"])
    flag = table.get("skip_permissions_flag", base.skip_permissions_flag if base else None)
    if flag is not None and (not isinstance(flag, str) or not flag):
        raise _fail(
            f"invalid agents.{name}.skip_permissions_flag in {path}: {flag!r}",
            AGENT_KEYS["skip_permissions_flag"],
        )

    def domain_ok(d):
        from am import domains

        try:
            domains.check(d, suffixes=False)
            return True
        except AmError:
            return False

    return profiles.Profile(
        name,
        command,
        flag,
        strings("api_domains", check=domain_ok)
        if "api_domains" in table
        else (base.api_domains if base else ()),
        strings("env_names", check=validate.ENV_NAME_RE.fullmatch)
        if "env_names" in table
        else (base.env_names if base else ()),
        strings("config_paths", check=_relative)
        if "config_paths" in table
        else (base.config_paths if base else ()),
        _prompt_args(table["prompt_args"], name, path)
        if "prompt_args" in table
        else (base.prompt_args if base else ()),
        strings("continue_args")
        if "continue_args" in table
        else (base.continue_args if base else ()),
    )


def _prompt_args(value, name: str, path: Path) -> tuple[str, ...]:
    """A profile's prompt_args: strings, at least one holding the placeholder (or none)."""
    if (
        not isinstance(value, list)
        or not all(isinstance(s, str) and s for s in value)
        or (value and not any(profiles.PROMPT in s for s in value))
    ):
        raise _fail(
            f"invalid agents.{name}.prompt_args in {path}: {value!r}", AGENT_KEYS["prompt_args"]
        )
    return tuple(value)


def _relative(p: str) -> bool:
    parts = Path(p).parts
    return bool(parts) and not Path(p).is_absolute() and ".." not in parts


def parse_file(path: Path) -> tuple[dict, dict]:
    """Read and check config.toml: (dotted key -> value, agent name -> Profile)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return {}, {}
    except OSError as e:
        raise AmError(f"cannot read {path}: {e.strerror}") from None
    import tomllib  # only when there is a file: its import costs more than the rest of a load

    try:
        with f:
            data = tomllib.load(f)
    except OSError as e:
        raise AmError(f"cannot read {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise AmError(f"{path} is not valid TOML: {e}", DOCS) from None
    top = sorted({k.split(".")[0] for k in KEYS} | set(TABLES))
    values, agents = {}, {}
    for k, v in data.items():
        if k not in top:
            raise _fail(f"unknown key {k!r} in {path}", ", ".join(top))
        if k == "agents":
            if not isinstance(v, dict):
                raise _fail(f"invalid agents in {path}", "[agents.NAME] tables")
            for name, table in v.items():
                agents[name] = _agent_profile(name, table, path)
            continue
        if k in TABLES:
            if not isinstance(v, dict):
                raise _fail(f"invalid {k} in {path}: expected a table [{k}]", ", ".join(TABLES[k]))
            items = {f"{k}.{sub}": sv for sub, sv in v.items()}
        else:
            items = {k: v}
        for dotted, value in items.items():
            if dotted not in KEYS:
                raise _fail(
                    f"unknown key {dotted!r} in {path}", ", ".join(f"{k}.{s}" for s in TABLES[k])
                )
            values[dotted] = _checked(KEYS[dotted], value, f"{dotted} in {path}")
    return values, agents


def _checked(key: Key, value, label: str):
    try:
        return key.check(value)
    except Invalid as e:
        raise _fail(f"invalid {label}: {value!r}", str(e)) from None


def load(layout=None, environ=None) -> Config:
    """The config file of LAYOUT and the AM_* variables of ENVIRON, checked."""
    from am import paths

    layout = layout or paths.layout()
    environ = os.environ if environ is None else environ
    path = layout.config_file
    values, agents = parse_file(path)
    env_values = {}
    for name, key in KEYS.items():
        if key.env and environ.get(key.env, "") != "":
            env_values[name] = (key.env, _checked(key, environ[key.env], key.env))
    cfg = Config(path, path.is_file(), values, env_values, agents)
    cfg.resolve()  # the default agent must exist, wherever it was chosen
    return cfg

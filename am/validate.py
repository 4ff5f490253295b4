"""Pure validators and the defaults they guard, shared by the spawn plan and the config file.

A leaf: it imports nothing of am but its defaults, so reading the config (which every
``am list`` with a config file does) pulls in neither the plan nor git nor the engines. A
refused value raises ``Invalid``, which says what is wrong and what is accepted; each caller
names where the value came from (a flag, a variable, a key of the file) in its own error.
"""

import re

from am.defaults import (  # noqa: F401 (what these validators guard; re-exported)
    DEFAULT_IDLE_AFTER,
    DEFAULT_IMAGE,
    DEFAULT_LIMITS,
    DEFAULT_LOG_MAX,
    DEFAULT_LOG_MAX_SIZE,
)

# Agent ids and agent CLI names: safe as a file name, a tmux session and a container name.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
OID_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")  # a SHA-1 or SHA-256 object id
MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)([bkmg]?)$", re.IGNORECASE)
UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MIN_MEMORY = 6 * 1024**2  # the engines refuse less

MEMORY_HINT = "a positive size such as 512m or 2g"
CPUS_HINT = "a positive number such as 0.5 or 2"
PIDS_HINT = "a whole number of processes such as 100"


class Invalid(ValueError):
    """A refused value: PROBLEM follows the value in the message ("is too small"; None for
    plain "invalid"), HINT says what is accepted."""

    def __init__(self, hint: str | None, problem: str | None = None):
        super().__init__(problem or "invalid")
        self.hint, self.problem = hint, problem


def publish_parts(spec: str) -> tuple[str, int, int]:
    """A checked ``ADDR:HOST_PORT:PORT`` publish spec as (address, host port, container
    port)."""
    addr, host, port = spec.rsplit(":", 2)
    return addr, int(host), int(port)


def memory_bytes(value: str) -> int:
    """A size such as ``512m`` or ``2g`` (binary units) in bytes."""
    m = MEMORY_RE.match(value.strip()) if isinstance(value, str) else None
    if not m or float(m.group(1)) <= 0:
        raise Invalid(MEMORY_HINT)
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def memory(value: str, host_memory: int | None = None) -> int:
    """A memory limit in bytes: at least what the engines take, at most HOST_MEMORY."""
    size = memory_bytes(value)
    if size < MIN_MEMORY:
        raise Invalid("engines need at least 6m", "is too small")
    if host_memory and size > host_memory:
        most = f"{host_memory / 1024**3:.1f}g"
        raise Invalid(f"at most {most}", f"is more than this host has ({most})")
    return size


def cpus(value: str, host_cpus: int | None = None) -> float:
    """A CPU limit: a positive, finite number, at most HOST_CPUS."""
    try:
        ncpus = float(value)
    except (TypeError, ValueError):
        raise Invalid(CPUS_HINT) from None
    if not ncpus > 0 or ncpus == float("inf"):
        raise Invalid(CPUS_HINT)
    if host_cpus and ncpus > host_cpus:
        raise Invalid(f"at most {host_cpus}", f"is more than this host has ({host_cpus})")
    return ncpus


def pids(value: object) -> int:
    """A process limit: a whole number of at least 1 (a string or an int, never a bool)."""
    text = str(value)
    if isinstance(value, bool) or not re.fullmatch(r"\d+", text) or int(text) < 1:
        raise Invalid(PIDS_HINT)
    return int(text)


def no_disk_cap(value: object) -> bool:
    """Whether a --disk value asks for no cap: unset, empty or ``none``."""
    return value is None or str(value).strip().lower() in ("", "none")

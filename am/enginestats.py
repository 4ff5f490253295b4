"""Where container agents' live figures come from. First am's keeper, which reads the cgroups
of the containers it watches on this host (``am/cgroupstats.py``): no engine process at all.
For the rest (a remote engine, an agent the keeper does not hold yet), the engines' ``stats``
calls, pure here: their command lines and their answers parsed. The backends run them;
``am status`` also starts them before it imports the backends, and reads their answers
without them when they succeed (``am/prefetch.py``). One place for both, so the two command
lines are the same list."""

from __future__ import annotations

TYPE_CHECKING = False  # collections.abc imports all of collections, before am status's call
if TYPE_CHECKING:
    from collections.abc import Sequence

# Raw numbers where the engine has them. docker prints only human units; podman's one-shot CPU
# figure is the average since the container started (it keeps no earlier sample to compare with).
SHAPES: dict[str, tuple[tuple[str, ...], str]] = {
    "docker": (
        ("--no-stream", "--no-trunc"),
        "{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.PIDs}}",
    ),
    "podman": (
        ("--no-stream", "--no-reset"),
        "{{.Name}}\t{{.ContainerStats.CPU}}\t{{.ContainerStats.MemUsage}}\t"
        "{{.ContainerStats.MemLimit}}\t{{.ContainerStats.PIDs}}",
    ),
}

SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


FIGURES = ("cpu_percent", "memory", "memory_limit", "pids")

_kept: dict[str, dict] | None = None  # the keeper's figures of this round, once asked


def ask_keeper(run: str, ids: Sequence[str]) -> dict[str, dict]:
    """Agent id -> figures of those of IDS that the keeper of the run folder RUN reads from
    their cgroups. Empty when no keeper answers in time, and on the engine-side way
    (``am.hostos``: cgroups are this host's)."""
    from am import hostos, keepersock

    asking = bool(ids) and hostos.linux()
    answer = keepersock.ask(run, {"op": "stats", "ids": list(ids)}) if asking else None
    got = answer.get("figures") if answer else None
    out = {}
    if isinstance(got, dict):
        for agent_id in ids:
            figures = got.get(agent_id)
            if isinstance(figures, dict) and all(
                k in figures and _figure(figures[k]) for k in FIGURES
            ):
                out[agent_id] = {k: figures[k] for k in FIGURES}
    return out


def keep(figures: dict[str, dict]) -> None:
    """Hold the keeper's FIGURES, asked early, for this round's ``take_kept``."""
    global _kept
    _kept = figures


def take_kept() -> dict[str, dict] | None:
    """The keeper's figures ``keep`` holds for this round (None: it was not asked)."""
    global _kept
    kept, _kept = _kept, None
    return kept


def _figure(value) -> bool:
    """A figure as the keeper sends it: none, or a number a table can show (a cgroup's
    counters are 64-bit; NaN, infinity and negative numbers are no figures)."""
    return value is None or (type(value) in (int, float) and 0 <= value <= 2**64)


def argv(runtime: str, names: Sequence[str]) -> list[str]:
    """One ``stats`` call of RUNTIME for the containers NAMES, one tab-separated line each.
    Always named: without names the engine reads every container on the host, and one in a
    broken state (a stranger's, say) fails the whole call."""
    options, fmt = SHAPES[runtime]
    return [runtime, "stats", *options, "--format", fmt, "--", *names]


def parse(runtime: str, text: str) -> dict[str, dict]:
    """Container name -> cpu_percent, memory, memory_limit, pids (None where unknown)."""
    return parse_docker(text) if runtime == "docker" else parse_podman(text)


def parse_docker(text: str) -> dict[str, dict]:
    # docker prints only human units ("305.6MiB / 2GiB", "70.76%"), "--" while starting.
    out = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) != 4:
            continue
        name, cpu, mem, pids = fields
        used, _, limit = mem.partition("/")
        out[name] = {
            "cpu_percent": _number(cpu.rstrip("%")),
            "memory": size_bytes(used),
            "memory_limit": size_bytes(limit),
            "pids": _int(pids),
        }
    return out


def parse_podman(text: str) -> dict[str, dict]:
    out = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) != 5:
            continue
        name, cpu, mem, limit, pids = fields
        out[name] = {
            "cpu_percent": _number(cpu),
            "memory": _int(mem),
            "memory_limit": _int(limit),
            "pids": _int(pids),
        }
    return out


def figure(
    runtime: str, view: dict, got: dict, failed: str | None
) -> tuple[dict | None, str | None]:
    """One agent's figures from the stats call's answer GOT, or why that call FAILED."""
    if failed is not None:
        return None, f"{runtime} stats failed: {failed}"
    live = got.get(view.get("container"))
    if live is None:
        return None, f"{runtime} stats did not list {view.get('container')} (starting or ending)"
    return live, None


def began(runtime: str) -> bool:
    """Whether a stats call of RUNTIME was begun early (``early`` may answer)."""
    import sys

    prefetch = sys.modules.get("am.prefetch")
    return prefetch is not None and runtime in SHAPES and prefetch.began(runtime)


def early(runtime: str, views: list[dict]) -> dict | None:
    """Agent id -> figures of VIEWS, RUNTIME's agents, from the stats call ``am status``
    began before it imported the backends (``am/prefetch.py``); None when there was none or it
    failed (the backend then makes its own, and says why it failed)."""
    import sys

    prefetch = sys.modules.get("am.prefetch")
    if prefetch is None or runtime not in SHAPES:
        return None
    names = sorted({v["container"] for v in views if v.get("container")})
    res = prefetch.take(argv(runtime, names), 60)
    if res is None:
        return None
    got, failed = (parse(runtime, res.out), None) if res.ok else ({}, res.err)
    return {v["id"]: figure(runtime, v, got, failed) for v in views}


def size_bytes(text: str) -> int | None:
    """Bytes of a docker size such as ``305.6MiB`` or ``1.2GB``."""
    import re  # here: am status starts the call before it imports re

    m = re.fullmatch(r"([0-9.]+)\s*([A-Za-z]*)", text.strip())
    if not m or m.group(2).lower() not in SIZE_UNITS:
        return None
    return int(float(m.group(1)) * SIZE_UNITS[m.group(2).lower()])


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _int(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None

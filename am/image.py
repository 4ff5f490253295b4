"""The agent image: where its build files are, which agent CLIs it can hold and which it holds.

The Containerfile and the build scripts ship inside the package (``am/_image``, package data),
so an installed ``am`` builds its image without a checkout; from a checkout they are read in
place. Each agent CLI am can install is a folder of ``scripts/agent-clis/`` pinned by a
lockfile; an image lists the CLIs it holds in its label ``am.agent-clis``.
"""

import json
import os
import re
from pathlib import Path

from am import validate
from am.errors import AmError

LABEL = "am.agent-clis"
DEFAULT_CLIS = ("claude",)
CLI_NAME = validate.NAME_RE


def data_root() -> Path:
    """The folder holding the Containerfile and scripts/: the copy installed with the package,
    or the checkout am runs from."""
    here = Path(__file__).resolve().parent
    packaged = here / "_image"
    return packaged if (packaged / "Containerfile").is_file() else here.parent


def build_dir() -> Path:
    """Where builds cache their downloads: AM_BUILD_DIR; a checkout's build/; else am's cache."""
    if os.environ.get("AM_BUILD_DIR"):
        return Path(os.environ["AM_BUILD_DIR"]).absolute()
    root = data_root()
    if root.name != "_image":
        return root / "build"
    from am import paths

    return paths.layout().cache / "image-build"


def cli_dirs() -> list[Path]:
    """The folders holding one folder per installable CLI, searched in this order."""
    extra = [Path(p) for p in os.environ.get("AM_AGENT_CLI_DIRS", "").split(":") if p]
    return [*extra, data_root() / "scripts" / "agent-clis"]


def known_clis() -> list[str]:
    """Every CLI an image can be built with."""
    names = set()
    for top in cli_dirs():
        if top.is_dir():
            names.update(p.name for p in top.iterdir() if p.is_dir() and CLI_NAME.match(p.name))
    return sorted(names)


def parse_clis(value, label: str = "--agents") -> list[str]:
    """A list of CLI names from "claude,codex" (or a list), sorted, without repeats; each
    must be one am can install."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    known = known_clis()
    for name in items:
        if name not in known:
            raise AmError(
                f"invalid {label}: no agent CLI {name!r}", f"choose from: {', '.join(known)}"
            )
    return sorted(set(items))


def clis_of(labels: dict | None) -> list[str] | None:
    """The CLIs an image's labels say it holds; None for an image that is not am's."""
    if not labels or LABEL not in labels:
        return None
    return sorted(set(labels[LABEL].replace(",", " ").split()))


def needed_cli(command: list[str]) -> str | None:
    """The agent CLI a command runs, when it is one am installs (claude, codex, ...)."""
    if not command:
        return None
    name = command[0]
    return name if CLI_NAME.match(name) and name in known_clis() else None


def check_has_cli(engine, image: str, labels: dict | None, cli: str | None, agent: str) -> None:
    """Refuse, before anything is made, an image (with LABELS) that lacks the CLI the agent
    runs."""
    if not cli:
        return
    held = clis_of(labels)
    if held is None or cli in held:
        return  # not am's image: it says nothing of what it holds
    want = ",".join(sorted({*held, cli}))
    raise AmError(
        f"image {image} in {engine.title} has no {cli} CLI, which agent {agent!r} runs "
        f"(it holds: {', '.join(held) or 'none'})",
        f"build one that has it: am image build --runtime {engine.runtime} --agents {want} "
        f"--tag {image}",
    )


def listing(engine) -> list[dict]:
    """am's agent images in ENGINE (those with the am.agent-clis label), one dict each."""
    res = engine.call("images", "--filter", f"label={LABEL}", "--format", "{{.ID}}")
    if not res.ok:
        raise engine.explain(res.err or res.out)
    ids = list(dict.fromkeys(res.out.split()))
    if not ids:
        return []
    res = engine.call("image", "inspect", *ids)
    if not res.ok:
        raise engine.explain(res.err or res.out)
    rows = []
    for item in json.loads(res.out):
        lab = (item.get("Config") or {}).get("Labels") or item.get("Labels") or {}
        for tag in item.get("RepoTags") or ["<none>"]:
            rows.append(
                {
                    "runtime": engine.runtime,
                    "image": tag,
                    "id": item["Id"].removeprefix("sha256:")[:12],
                    "size": item.get("Size"),
                    "created": item.get("Created"),
                    "clis": clis_of(lab) or [],
                }
            )
    return sorted(rows, key=lambda r: r["image"])


# Compiled where used (re's cache), not at import: a spawn imports this module, never uses it.
REGISTRY = (
    r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?"
    r"(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
)


def push_reference(registry: str, tag: str) -> str:
    """Where ``am image build --push REGISTRY`` puts the image TAG: REGISTRY (``host[:port]``
    and an optional path) followed by TAG's own name and tag, without its registry."""
    registry = registry.strip().rstrip("/")
    if not re.fullmatch(REGISTRY, registry):
        raise AmError(
            f"invalid --push {registry!r}",
            "a registry such as registry.example.com:5000 or ghcr.io/team",
        )
    name = tag.rsplit("/", 1)[-1]
    if ":" not in name:
        name += ":latest"
    return f"{registry}/{name}"

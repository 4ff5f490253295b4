"""``am image build`` and ``am image ls``: build the agent image (or, with --proxy, the
network proxy's); list am's images and the agent CLIs each holds."""

import sys

from am import backends, config, output
from am.backends.engine import DEFAULT_IMAGE
from am.errors import AmError


def run(args) -> int:
    if args.image_command == "ls":
        return ls(args)
    settings = config.load().resolve()
    runtime = args.runtime or settings["runtime"].value
    # A cluster's image is built here, by a local engine, and pushed to its registry.
    engine = backends.for_mode("container", "auto" if runtime == "kubernetes" else runtime)
    from am import image

    remote = image.push_reference(args.push, args.tag or DEFAULT_IMAGE) if args.push else None

    # --agents wins, even empty (an image with no agent CLI); else the configured set.
    clis = image.parse_clis(
        args.agents if args.agents is not None else settings["agent_clis"].value,
        "--agents" if args.agents is not None else settings["agent_clis"].label("agent_clis"),
    )
    engine.check()
    if args.proxy:
        from am.backends import network

        # --force: a fresh root from the mirror, so squid's security updates arrive.
        tag = args.tag or network.PROXY_IMAGE
        engine.run_build_script("build-proxy-image.sh", tag, "network proxy image", ["--force"])
        print(f"Built {tag} for {engine.runtime}", file=sys.stderr)
        print(tag)
        return 0
    tag = args.tag or DEFAULT_IMAGE
    engine.build_image(tag, clis)
    print(
        f"Built {tag} for {engine.runtime} with {', '.join(clis) or 'no agent CLI'}",
        file=sys.stderr,
    )
    if remote:
        engine.push(tag, remote)
        print(f"Pushed {remote}: spawn Kubernetes agents with --image {remote}", file=sys.stderr)
    print(remote or tag)
    return 0


def ls(args) -> int:
    """Every am agent image of the chosen engine (default: each that answers)."""
    from am import image, proc
    from am.backends import for_runtime as engine

    names = [args.runtime] if args.runtime else [n for n in ("docker", "podman") if proc.which(n)]
    rows, problems = [], []
    for name in names:
        eng = engine(name)
        try:
            eng.check()
            rows += image.listing(eng)
        except AmError as e:
            if args.runtime:
                raise
            problems.append(f"am: warning: {name}: {e.message}")
    for p in problems:
        print(p, file=sys.stderr)
    if args.json:
        output.print_json(rows)
        return 0
    from tabulate import tabulate

    print(
        tabulate(
            [
                [r["runtime"], r["image"], r["id"], _size(r["size"]), ",".join(r["clis"]) or "-"]
                for r in rows
            ],
            headers=["RUNTIME", "IMAGE", "ID", "SIZE", "AGENT CLIS"],
            tablefmt="plain",
            disable_numparse=True,  # an id like 497491e8 is text, not 4.97491e+13
        )
    )
    return 0


def _size(n) -> str:
    return "?" if n is None else f"{n / 1e6:.0f}MB" if n < 1e9 else f"{n / 1e9:.2f}GB"

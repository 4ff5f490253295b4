"""``am image build``: build the agent image (or, with --proxy, the network proxy's) for the
chosen engine."""

import sys

from am import backends, config
from am.backends.engine import DEFAULT_IMAGE


def run(args) -> int:
    runtime = args.runtime or config.load().resolve()["runtime"].value
    engine = backends.for_mode("container", runtime)
    engine.check()
    if args.proxy:
        from am import network

        # --force: a fresh root from the mirror, so squid's security updates arrive.
        tag = args.tag or network.PROXY_IMAGE
        engine.run_build_script("build-proxy-image.sh", tag, "network proxy image", "--force")
    else:
        tag = args.tag or DEFAULT_IMAGE
        engine.build_image(tag)
    print(f"Built {tag} for {engine.runtime}", file=sys.stderr)
    print(tag)
    return 0

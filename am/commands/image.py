"""``am image build``: build the agent image for the chosen engine."""

import sys

from am import backends, config
from am.backends.engine import DEFAULT_IMAGE


def run(args) -> int:
    runtime = args.runtime or config.load().resolve()["runtime"].value
    engine = backends.for_mode("container", runtime)
    engine.check()
    tag = args.tag or DEFAULT_IMAGE
    engine.build_image(tag)
    print(f"Built {tag} for {engine.runtime}", file=sys.stderr)
    print(tag)
    return 0

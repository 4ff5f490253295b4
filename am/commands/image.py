"""``am image build``: build the agent image for the chosen engine."""

import os
import sys

from am import backends
from am.backends.engine import DEFAULT_IMAGE


def run(args) -> int:
    engine = backends.for_mode("container", args.runtime or os.environ.get("AM_RUNTIME"))
    engine.check()
    tag = args.tag or DEFAULT_IMAGE
    engine.build_image(tag)
    print(f"Built {tag} for {engine.runtime}", file=sys.stderr)
    print(tag)
    return 0

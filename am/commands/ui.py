"""``am ui``: a full-screen terminal dashboard of every agent (Textual, imported only here)."""

import sys

from am import config, paths
from am.errors import AmError


def run(args) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise AmError(
            "am ui needs a terminal", "scripts read 'am list --json' and 'am status --json' instead"
        )
    layout = paths.layout()
    settings = config.load(layout).resolve()  # a broken config file: one error line, as ever
    try:
        from am.ui.app import Dashboard
    except ImportError as e:
        raise AmError(
            f"am ui needs the textual package ({e})",
            "install am with its dependencies, e.g. 'pip install .'",
        ) from None
    Dashboard(
        layout,
        settings["idle_after"].value,
        {k: str(settings[k].value) for k in ("agent", "runtime", "network")},
    ).run()
    return 0

"""Command-line entry point: parse arguments, then hand over to one module per command.

Command modules, and the parser itself, are imported only when needed, so ``am --version`` costs
little more than Python's own start-up.
"""

import importlib
import sys

from am import __version__
from am.errors import AmError

MODULES = {"list": "list_", "rm": "rm", "status": "status_", "config": "config_"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--version"]:  # what scripts probe in loops; it needs no parser
        print(f"am {__version__}")
        return 0
    from am import paths, termsafe
    from am.cli import build_parser

    paths.private_umask()  # everything am and its git create: for the user alone
    termsafe.install()  # no escape sequence an agent chose reaches the terminal as such

    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    module = importlib.import_module(f"am.commands.{MODULES.get(args.command, args.command)}")
    try:
        return module.run(args) or 0
    except AmError as e:
        print(e.render(), file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("am: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())

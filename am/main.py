"""Command-line entry point: parse arguments, then hand over to one module per command.

Command modules, and the parser itself, are imported only when needed, so ``am --version`` costs
little more than Python's own start-up.
"""

import sys

from am import __version__
from am.errors import AmError

MODULES = {"list": "list_", "rm": "rm", "status": "status_", "config": "config_"}


class Args:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def quick_list(argv: list[str]):
    """``am list [--json] [--status S]`` parsed without argparse (whose import and parser cost
    more than listing 500 agents); None for anything else, which argparse then handles (help,
    errors) as always."""
    if not argv or argv[0] != "list":
        return None
    from am.record import Status

    json_out, wanted, rest = False, None, argv[1:]
    while rest:
        arg, rest = rest[0], rest[1:]
        if arg == "--json":
            json_out = True
        elif arg == "--status" and rest and rest[0] in Status.ALL:
            wanted, rest = rest[0], rest[1:]
        elif arg.startswith("--status=") and arg.partition("=")[2] in Status.ALL:
            wanted = arg.partition("=")[2]
        else:
            return None
    return Args(command="list", json=json_out, status=wanted)


def quick_status(argv: list[str]):
    """``am status [ID] [--json] [--watch]`` parsed without argparse, as ``quick_list``: its
    parser costs as much as the rest of am's work around the engine's stats call. None for
    anything else (help, an id that looks like an option, ``--``, a second id)."""
    if not argv or argv[0] != "status":
        return None
    flags, ids = {"--json": False, "--watch": False}, []
    for arg in argv[1:]:
        if arg in flags:
            flags[arg] = True
        elif arg.startswith("-") or ids:
            return None
        else:
            ids.append(arg)
    return Args(
        command="status", id=ids[0] if ids else None, json=flags["--json"], watch=flags["--watch"]
    )


def _command(argv: list[str]):
    """(the command's module, its arguments, whether it is a short one), or the exit code
    when there is none to run."""
    from am import paths

    paths.private_umask()  # everything am and its git create: for the user alone
    if argv[:1] == ["spawn"]:
        from am import headstart

        headstart.begin(argv[1:])  # git clones while Python imports the rest
    args = quick_list(argv) or quick_status(argv)
    short = args is not None and not getattr(args, "watch", False)
    if args is not None:
        from am import earlystats

        # The state file read, then tmux's call (and a status's engine calls) begun: the
        # imports below overlap them.
        earlystats.start(getattr(args, "id", None), engines=args.command == "status")
    from am import termsafe

    termsafe.install()  # no escape sequence an agent chose reaches the terminal as such
    if args is None:
        from am.cli import build_parser

        parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help(sys.stderr)
            return 2
        early = sys.modules.get("am.headstart")
        if early is not None:
            early.advance()  # a spawn's clone may have ended meanwhile: its checkout begins
    name = f"am.commands.{MODULES.get(args.command, args.command)}"
    __import__(name)
    return sys.modules[name], args, short


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--version"]:  # what scripts probe in loops; it needs no parser
        print(f"am {__version__}")
        return 0
    from am import streams

    streams.standard()
    import gc

    # Imports and the parser make objects that live as long as the command: the collector's
    # passes over them (about a millisecond of a spawn) find nothing to free. A short command
    # keeps it off to its end (a millisecond of a list of 500 records); any other has it
    # back once its module is in, with all it has made so far out of its sight (frozen): else
    # its first pass walks every object the imports made, and later ones again.
    collecting = gc.isenabled()
    gc.disable()

    def command() -> int | None:
        got = _command(argv)
        if isinstance(got, int):
            return got
        module, args, short = got
        if collecting and not short:
            gc.freeze()
            gc.enable()
        return module.run(args)

    try:
        return outcome(command)
    finally:  # as it was, for a caller that goes on (a test calling main)
        early = sys.modules.get("am.headstart")
        if early is not None:
            try:
                early.discard()  # a spawn's that nothing took
            except KeyboardInterrupt:  # a second Ctrl-C, held until that was done: out now
                pass
        gc.unfreeze()
        if collecting:
            gc.enable()


def outcome(run, *args) -> int:
    """RUN(*ARGS)'s exit code as an am command ends: an AmError as its message and code, an
    interrupt as 130, standard output's reader gone as 0 (``am list | head``), standard
    error's as 141 (``streams.ErrGone``: a spawn it cut short is undone, and must not read as
    made)."""
    from am import streams

    try:
        return run(*args) or 0
    except AmError as e:
        streams.say_err(e.render())
        return e.code
    except KeyboardInterrupt:
        streams.say_err("am: interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except streams.ErrGone:
        return streams.GONE_CODE


def entry() -> None:
    """The ``am`` command: ``main``, then out at once. A command's objects all die with its
    process, and the interpreter's own teardown (every module's objects freed one by one) is
    about 8 ms of each command; ``atexit``'s work (early calls nobody took) and the output
    still happen first. An error nobody caught ends as Python ends it, with its traceback."""
    import os

    from am.streams import ErrGone, say_err

    try:
        code = main()
    except SystemExit as e:  # argparse's help and usage errors
        code = e.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        say_err(str(code))
        code = 1
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # a reader gone (am list | head), or closed
        pass
    except OSError as e:  # a full disk: the output is not all there, and a script must know
        say_err(f"am: error: cannot write the output: {e.strerror or e}")
        code = 120  # what Python itself exits with when its last flush fails
    try:
        sys.stderr.flush()
    except (OSError, ValueError, ErrGone):
        pass
    os._exit(code)


if __name__ == "__main__":
    entry()

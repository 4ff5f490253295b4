"""Command-line entry point: parse arguments, then hand over to one module per command.

Command modules are imported only when chosen, so ``am --version`` stays as cheap as Python.
"""

import argparse
import importlib
import sys

from am import __version__
from am.errors import AmError


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors in am's one-line ``am: error:`` form."""

    def error(self, message):
        self.exit(2, f"am: error: {message} (see '{self.prog} --help')\n")


def _spawn(sub):
    p = sub.add_parser("spawn", help="create a workspace and start an agent in it")
    p.add_argument(
        "source", help="git URL (https, ssh, git@host:path, file://) or local repository"
    )
    p.add_argument("--container", action="store_true", help="run in an isolated container")
    p.add_argument("--runtime", choices=["docker", "podman", "auto"], help="container engine")
    p.add_argument("--agent", help="agent profile: claude, codex, aider, gemini, ...")
    p.add_argument("--cmd", help="run this shell command as the agent instead of a profile's CLI")
    p.add_argument(
        "--skip-permissions",
        action="store_true",
        help="pass the profile's flag for running without approval prompts",
    )
    p.add_argument("--name", help="agent id to use instead of a generated one")
    p.add_argument("--base", help="branch, tag or commit to start from (default: source HEAD)")
    p.add_argument("--branch", help="branch to create (default: am/<id>)")
    p.add_argument(
        "--worktree",
        action="store_true",
        help="a git worktree of the local repository instead of a clone",
    )
    p.add_argument("--network", choices=["none", "limited", "full"],
                   help="container network policy (docs/network.md)")
    p.add_argument(
        "--allow-domain",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="domain a limited network allows (repeatable)",
    )
    p.add_argument("--memory", help="container memory limit, e.g. 2g")
    p.add_argument("--cpus", help="container CPU limit, e.g. 2")
    p.add_argument("--pids", help="container process limit, e.g. 100")
    p.add_argument("--gpus", help="GPU access: all, a count, or device ids")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="environment for the agent; a bare NAME passes the caller's value",
    )
    p.add_argument("--image", help="agent image (default: the built am-agent image)")
    p.add_argument(
        "--mount-agent-config",
        action="store_true",
        help="mount the agent CLI's own config from your home read-only (exposes its tokens)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="am",
        description="Run many AI coding agents side by side, each on "
        "its own copy of a git repository, in tmux or in isolated containers.",
    )
    parser.add_argument("--version", action="version", version=f"am {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    _spawn(sub)

    p = sub.add_parser("list", help="agents and their live status")
    p.add_argument("--json", action="store_true")
    p.add_argument("--status", choices=["running", "stopped", "exited", "error", "starting"])

    p = sub.add_parser("status", help="live CPU, memory, processes and health of agents")
    p.add_argument("id", nargs="?")
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true", help="refresh every 2 seconds until Ctrl-C")

    p = sub.add_parser("info", help="everything known about one agent")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("attach", help="the agent's own terminal (detach: Ctrl-b d)")
    p.add_argument("id")

    p = sub.add_parser("logs", help="the agent's terminal output")
    p.add_argument("id")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", type=int, metavar="N")
    p.add_argument("--network", action="store_true",
                   help="requests the agent's proxy refused (--network limited)")

    p = sub.add_parser("diff", help="the agent's changes against the commit it started from")
    p.add_argument("id")

    p = sub.add_parser("stop", help="stop an agent, keeping its workspace")
    p.add_argument("id")

    p = sub.add_parser("rm", help="delete an agent and its workspace")
    p.add_argument("id")
    p.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="delete even with unsaved work (a snapshot is taken first)",
    )

    p = sub.add_parser("snapshot", help="archive an agent's whole workspace")
    p.add_argument("id")

    p = sub.add_parser("restore", help="a new stopped agent from a snapshot")
    p.add_argument("snapshot")
    p.add_argument("--name")

    p = sub.add_parser("clean", help="remove stopped agents without unsaved work, and orphans")
    p.add_argument(
        "--all", action="store_true", help="also agents with unsaved work (snapshotted first)"
    )
    p.add_argument("--containers", action="store_true",
                   help="first remove every container labelled for this AM_HOME")

    p = sub.add_parser("doctor", help="check tools and repair drift between state and reality")
    p.add_argument("--fix", action="store_true")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("config", help="the effective configuration")
    csub = p.add_subparsers(
        dest="config_command", metavar="ACTION", parser_class=Parser, required=True
    )
    c = csub.add_parser("show", help="each setting, its value and where it came from")
    c.add_argument("--json", action="store_true")
    c.add_argument("--runtime", choices=["docker", "podman", "auto"])
    c.add_argument("--agent")
    c.add_argument("--image")
    c.add_argument("--network", choices=["none", "limited", "full"])
    c.add_argument("--allow-domain", action="append", default=[], metavar="DOMAIN")
    c.add_argument("--memory")
    c.add_argument("--cpus")
    c.add_argument("--pids")

    p = sub.add_parser("image", help="the agent image")
    isub = p.add_subparsers(
        dest="image_command", metavar="ACTION", parser_class=Parser, required=True
    )
    b = isub.add_parser("build", help="build the agent image")
    b.add_argument("--runtime", choices=["docker", "podman", "auto"])
    b.add_argument("--tag")
    return parser


MODULES = {"list": "list_", "rm": "rm", "status": "status_", "config": "config_"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.command:
        build_parser().print_help(sys.stderr)
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

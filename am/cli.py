"""am's command line: the argument parser of every command (argparse)."""

import argparse

from am import __version__

# Options whose value may start with '-' (argparse would read '--memory -1g' as a missing
# value): the value is joined to its option, so am's own check explains what is wrong with it.
DASH_VALUES = ("--memory", "--cpus", "--pids")


def join_dash_values(args: list[str]) -> list[str]:
    out, rest = [], list(args)
    while rest:
        a = rest.pop(0)
        if a == "--":
            return out + [a] + rest
        if a in DASH_VALUES and rest and rest[0].startswith("-") and rest[0] != "--":
            a = f"{a}={rest.pop(0)}"
        out.append(a)
    return out


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` finds it: COLUMNS, else stdout's
    terminal, else 80."""
    import os
    import sys

    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class Formatter(argparse.HelpFormatter):
    """argparse's own help layout, its width found without importing ``shutil``: argparse
    makes a formatter for every argument added, and shutil's import (with its compression
    modules) was 2-3 ms of every command."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        width = _columns() - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors in am's one-line ``am: error:`` form."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"am: error: {message} (see '{self.prog} --help')\n")

    def parse_known_args(self, args=None, namespace=None):
        import sys

        args = join_dash_values(sys.argv[1:] if args is None else list(args))
        return super().parse_known_args(args, namespace)


ID = "agent id (see 'am list')"
JSON = "print JSON for scripts instead of a table"
AUTO = "auto: podman if it enforces the limits here, else docker"
MAX_COUNT = 100  # spawn --count: a slip of the finger makes no thousand agents


def _spawn(p):
    p.add_argument(
        "source", help="git URL (https, ssh, git@host:path, file://) or local repository"
    )
    _run_options(p)
    _env_option(p)
    p.add_argument(
        "--name", help="agent id to use instead of a generated one (with --count: NAME-1 ...)"
    )
    p.add_argument(
        "--count",
        type=_count,
        default=1,
        metavar="N",
        help="spawn N agents alike, each with its own workspace and id (one id a line)",
    )
    p.add_argument("--base", help="branch, tag or commit to start from (default: source HEAD)")
    p.add_argument("--branch", help="branch to create (default: am/<id>)")
    p.add_argument(
        "--worktree",
        action="store_true",
        help="a git worktree of the local repository instead of a clone",
    )
    _disk_option(p)
    _prompt_options(p)
    p.epilog = (
        "Defaults of --runtime, --agent, --image, --network, --isolation, "
        "--allow-domain and the limits can be set in config.toml or AM_* variables "
        "('am config show')."
    )


def _count(text: str) -> int:
    n = int(text) if text.isascii() and text.isdigit() and len(text) <= 3 else 0
    if not 1 <= n <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_COUNT}")
    return n


def _disk_option(p):
    p.add_argument(
        "--disk",
        metavar="SIZE",
        help="cap a container agent's workspace at SIZE (e.g. 10g; none: no cap): a "
        "file system of its own, mounted on a loop device (needs root)",
    )


def _run_options(p):
    """How an agent runs: the options of spawn that am start takes for a restored agent."""
    from am.plan import DEFAULT_IMAGE, DEFAULT_LIMITS

    p.add_argument(
        "--container",
        action="store_true",
        help="run in an isolated container (default: a tmux session on the host)",
    )
    p.add_argument(
        "--runtime",
        choices=["docker", "podman", "auto", "kubernetes"],
        help=f"container engine (default: {AUTO}), or kubernetes: a pod in "
        "kubectl's current context (docs/scale.md)",
    )
    p.add_argument(
        "--kube-workspace",
        choices=["pvc", "emptydir"],
        help="a Kubernetes agent's workspace: a PersistentVolumeClaim (default), or "
        "an emptyDir that lives as long as its pod",
    )
    p.add_argument(
        "--agent",
        help="agent profile: claude (default), codex, aider, gemini, or one of config.toml's",
    )
    p.add_argument("--cmd", help="run this shell command as the agent instead of a profile's CLI")
    p.add_argument(
        "--skip-permissions",
        action="store_true",
        help="pass the profile's flag for running without approval prompts",
    )
    p.add_argument(
        "--network",
        choices=["none", "limited", "full"],
        help="container network: none (default; not even the agent's model API), "
        "limited (the profile's API domains and --allow-domain, through a proxy), "
        "full (the engine's bridge); see docs/network.md",
    )
    p.add_argument(
        "--isolation",
        choices=["runc", "gvisor"],
        help="container kernel isolation: runc shares the host's kernel, gvisor "
        "runs the agent on gVisor's (docs/security.md)",
    )
    p.add_argument(
        "--allow-domain",
        action="append",
        default=[],
        metavar="DOMAIN[:PORT]",
        help="host a limited network allows: example.com, *.example.com; ports 80 "
        "and 443, or the one given (repeatable)",
    )
    p.add_argument(
        "--allow-private-domain",
        action="append",
        default=[],
        metavar="DOMAIN[:PORT]",
        help="like --allow-domain, and the host may be at a private, loopback, "
        "link-local or host address (repeatable)",
    )
    p.add_argument("--memory", help=f"container memory limit (default: {DEFAULT_LIMITS['memory']})")
    p.add_argument("--cpus", help=f"container CPU limit (default: {DEFAULT_LIMITS['cpus']})")
    p.add_argument("--pids", help=f"container process limit (default: {DEFAULT_LIMITS['pids']})")
    p.add_argument("--gpus", help="GPU access: all, a count, or device ids")
    p.add_argument("--image", help=f"agent image (default: {DEFAULT_IMAGE}, built on first use)")
    p.add_argument(
        "--mount-agent-config",
        action="store_true",
        help="mount the agent CLI's own config from your home read-only (exposes its tokens)",
    )
    p.add_argument(
        "--publish",
        action="append",
        default=[],
        metavar="[ADDR:]HOST_PORT:PORT",
        help="publish a port of a container agent (network limited or full); "
        "binds 127.0.0.1 unless ADDR is given (repeatable)",
    )


def _env_option(p):
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="environment for the agent; a bare NAME passes the caller's value",
    )


def _prompt_options(p):
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--prompt",
        metavar="TEXT",
        help="the agent's task, given the profile's own way (AM_PROMPT for --cmd)",
    )
    g.add_argument(
        "--prompt-file", metavar="FILE", help="the task from a file ('-': standard input)"
    )


def _start(p):
    p.add_argument("id", help="the agent to start (see 'am list')")
    p.add_argument(
        "--continue",
        dest="continue_",
        action="store_true",
        help="resume the agent CLI's last conversation (claude --continue) instead "
        "of giving it its task again",
    )
    _prompt_options(p)
    _env_option(p)
    _run_options(
        p.add_argument_group(
            "how it runs, for an agent without settings yet (restored or adopted; as am spawn)"
        )
    )


def _send(p):
    p.add_argument("id", help="a running agent (see 'am list')")
    p.add_argument("text", nargs="?", help="the text to type, taken literally")
    p.add_argument("--file", metavar="FILE", help="type this file's text ('-': standard input)")
    p.add_argument("--no-enter", action="store_true", help="type the text without pressing Enter")


def _wait(p):
    p.add_argument("id", help="the agent to wait for (see 'am list')")
    p.add_argument(
        "--until",
        choices=["exited", "idle", "any"],
        default="exited",
        help="what to wait for (default: exited, which also ends on am stop)",
    )
    p.add_argument(
        "--idle-after",
        type=float,
        metavar="SECONDS",
        help="idle after this long without output (default: idle_after of the configuration)",
    )
    p.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="give up after this long (exit status 124)"
    )
    p.add_argument("--json", action="store_true", help="print what ended the wait as JSON")


def _diff(p):
    p.add_argument("id", help="the agent whose work to show (see 'am list')")
    p.add_argument("--stat", action="store_true", help="a summary: the files changed and how much")


def _log(p):
    p.add_argument("id", help="the agent whose commits to list (see 'am list')")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--oneline", action="store_true", help="one line per commit")
    g.add_argument("--json", action="store_true", help="each commit's fields as JSON")


def _pull(p):
    p.add_argument("id", help="the agent whose branch to bring in (see 'am list')")
    p.add_argument(
        "--branch",
        metavar="NAME",
        help="the branch to create or move (default: the agent's, am/<id>)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="move the branch even when the agent's history was rewritten",
    )
    p.add_argument("--json", action="store_true", help="what was done, as JSON")


def _push(p):
    p.add_argument("id", help="the agent whose branch to push (see 'am list')")
    p.add_argument(
        "--remote",
        metavar="URL|NAME|PATH",
        help="where to push: a URL, a remote's name, or a repository's folder (default: the "
        "URL the agent was spawned from; for a local source, its remote origin)",
    )
    p.add_argument(
        "--branch",
        metavar="NAME",
        help="the branch name on the remote (default: the agent's, am/<id>)",
    )


def _list(p):
    from am.record import Status  # am list imports it anyway; other commands need not

    p.add_argument("--json", action="store_true", help=JSON)
    # the same choices as am.main.quick_list, which parses these without argparse
    p.add_argument("--status", choices=Status.ALL, help="only the agents with this status")


def _status(p):
    p.add_argument("id", nargs="?", help=ID + "; default: every agent")
    p.add_argument("--json", action="store_true", help=JSON)
    p.add_argument("--watch", action="store_true", help="refresh every 2 seconds until Ctrl-C")


def _info(p):
    p.add_argument("id", help=ID)
    p.add_argument("--json", action="store_true", help=JSON)


def _ui(p):
    p.description = (
        "Every agent in a table (as am list and am status show them), with the selected "
        "one's terminal, diff and log. Keys: Enter attach (detach returns), n spawn, s stop, "
        "p pull, r remove, / filter, v next tab, q quit. Needs a terminal."
    )


def _id_only(p):
    p.add_argument("id", help=ID)


def _logs(p):
    p.add_argument("id", help=ID)
    p.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new output until the agent stops"
    )
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    p.add_argument(
        "--network",
        action="store_true",
        help="requests the agent's proxy refused (--network limited)",
    )


def _stop(p):
    p.add_argument("id", nargs="+", help="the agents to stop (see 'am list')")


def _rm(p):
    p.add_argument("id", nargs="+", help="the agents to delete (see 'am list')")
    p.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="delete even with unsaved work (a snapshot is taken first)",
    )


def _restore(p):
    p.add_argument("snapshot", help="the snapshot archive 'am snapshot' printed")
    p.add_argument("--name", help="id of the new agent (default: a generated one)")
    p.add_argument(
        "--source",
        metavar="REPO",
        help="the repository to restore into: needed for a worktree agent's "
        "snapshot, whose commits live there; never taken from the archive",
    )
    _disk_option(p)


def _clean(p):
    p.add_argument(
        "--all", action="store_true", help="also agents with unsaved work (snapshotted first)"
    )
    p.add_argument(
        "--containers",
        action="store_true",
        help="first remove every container labelled for this AM_HOME: this stops "
        "running agents (asks first on a terminal)",
    )
    p.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="do not ask: stop running agents without a question",
    )


def _doctor(p):
    p.add_argument(
        "--fix",
        action="store_true",
        help="repair the drift found: remove orphans, settle interrupted spawns, "
        "adopt leftover workspaces that hold work",
    )
    p.add_argument("--json", action="store_true", help=JSON)


def _config(p):
    csub = p.add_subparsers(
        dest="config_command", metavar="ACTION", parser_class=Parser, required=True
    )
    c = csub.add_parser("show", help="each setting, its value and where it came from")
    c.add_argument("--json", action="store_true", help=JSON)
    like = "as the spawn flag: show what a spawn with it would use"
    c.add_argument("--runtime", choices=["docker", "podman", "auto", "kubernetes"], help=like)
    c.add_argument("--kube-workspace", choices=["pvc", "emptydir"], help=like)
    c.add_argument("--agent", help=like)
    c.add_argument("--image", help=like)
    c.add_argument("--network", choices=["none", "limited", "full"], help=like)
    c.add_argument("--isolation", choices=["runc", "gvisor"], help=like)
    c.add_argument(
        "--allow-domain", action="append", default=[], metavar="DOMAIN[:PORT]", help=like
    )
    c.add_argument(
        "--allow-private-domain", action="append", default=[], metavar="DOMAIN[:PORT]", help=like
    )
    c.add_argument("--memory", help=like)
    c.add_argument("--cpus", help=like)
    c.add_argument("--pids", help=like)
    c.add_argument("--disk", help=like)


def _image(p):
    from am.plan import DEFAULT_IMAGE

    isub = p.add_subparsers(
        dest="image_command", metavar="ACTION", parser_class=Parser, required=True
    )
    b = isub.add_parser("build", help="build the agent image (--proxy: the network proxy's)")
    b.add_argument(
        "--runtime",
        choices=["docker", "podman", "auto"],
        help=f"engine to build it for (default: the configured runtime; {AUTO})",
    )
    b.add_argument(
        "--tag", help=f"the image's tag (default: {DEFAULT_IMAGE}; with --proxy, the proxy's)"
    )
    b.add_argument(
        "--agents",
        metavar="CLI,...",
        help="agent CLIs to put in the image: claude, codex, gemini, aider "
        "(default: agent_clis of the config, else claude; '' for none)",
    )
    b.add_argument(
        "--push",
        metavar="REGISTRY",
        help="then push it as REGISTRY/TAG (host[:port][/path]), for clusters that "
        "pull from a registry",
    )
    b.add_argument(
        "--proxy",
        action="store_true",
        help="build the --network limited proxy image anew from Debian's mirror "
        "(picks up squid's security updates)",
    )
    ls = isub.add_parser("ls", help="am's agent images and the agent CLIs each holds")
    ls.add_argument(
        "--runtime",
        choices=["docker", "podman"],
        help="only this engine (default: each installed one)",
    )
    ls.add_argument("--json", action="store_true", help="one JSON list for scripts")


# name, help, what adds its arguments
COMMANDS = [
    ("spawn", "create a workspace and start an agent in it", _spawn),
    ("list", "agents and their live status", _list),
    ("status", "live CPU, memory, processes and health of agents", _status),
    ("info", "everything known about one agent", _info),
    ("attach", "the agent's own terminal (detach: Ctrl-b d)", _id_only),
    ("logs", "the agent's terminal output", _logs),
    ("diff", "the agent's changes against the commit it started from", _diff),
    ("log", "the agent's commits since the commit it started from", _log),
    ("pull", "bring the agent's commits into the source repository as a branch", _pull),
    ("push", "push the agent's branch to the source's remote with your credentials", _push),
    ("send", "type text into a running agent's terminal", _send),
    ("wait", "wait until an agent exits or goes idle", _wait),
    ("stop", "stop agents, keeping their workspaces", _stop),
    ("start", "run a stopped or exited agent again on its workspace", _start),
    ("rm", "delete agents and their workspaces", _rm),
    ("snapshot", "archive an agent's whole workspace", _id_only),
    ("restore", "a new stopped agent from a snapshot", _restore),
    ("clean", "remove stopped agents without unsaved work, and orphans", _clean),
    ("doctor", "check tools and repair drift between state and reality", _doctor),
    ("config", "the effective configuration", _config),
    ("image", "the agent image", _image),
    ("ui", "a full-screen dashboard of every agent, with keys for these commands", _ui),
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser: every command with its arguments, or with ONLY a command's name, just that
    command: adding every argument of every command is most of what parsing would cost, and
    a parser for each of the others (which parsing ONLY never reads) 3-5 ms more. A name that
    is no command gets them all, so the error lists the choices.
    """
    if only not in {name for name, _, _ in COMMANDS}:
        only = None
    parser = Parser(
        prog="am",
        description="Run many AI coding agents side by side, each on "
        "its own copy of a git repository, in tmux or in isolated containers.",
    )
    parser.add_argument("--version", action="version", version=f"am {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, text, add in COMMANDS:
        if only is None or name == only:
            add(sub.add_parser(name, help=text))
    return parser

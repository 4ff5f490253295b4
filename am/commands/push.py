"""``am push``: the agent's branch to a remote, with the user's own git credentials.

The push goes from a trusted copy of the commits, never from the workspace: for an agent
spawned from a URL, am's outbox (``am.trusted``), which ``am.commands.pull.receive`` first
brings up to date through a verified bundle; for a local source, the source itself, after the
same pull. git runs on the host with the user's configuration, so their credential helper, SSH
agent and URL rewrites work, and nothing of it reaches the agent. A push to the agent's own URL
is recorded (``pushed``), so ``am rm`` no longer counts those commits as unsaved.
"""

import sys
from pathlib import Path

from am import git, paths, proc, records, trusted
from am.errors import AmError
from am.valueclass import value_class

KEEP_PUSHED = 16  # tips recorded as pushed to the agent's URL


@value_class(frozen=False)
class Pushed:
    """One agent's branch pushed: to which remote, as which branch, at which commit."""

    agent: str
    remote: str
    branch: str  # on the remote
    commit: str
    output: str  # git's report


def check_remote(remote: str) -> str:
    if not remote or remote.startswith("-") or any(ord(c) < 32 or c == "\x7f" for c in remote):
        raise AmError(
            f"invalid --remote {remote!r}",
            "a URL, or the name of a remote of the source repository",
        )
    return remote


def resolve_remote(record: dict, target: trusted.Target, remote: str | None) -> str:
    """The URL or remote name to push to (see the command's help)."""
    source = record["source"]
    if remote is not None:
        remote = check_remote(remote)
    if target.outbox:
        if remote is None:
            return source
        folder = folder_path(remote)
        if folder:
            return folder
        if not git.is_url(remote):
            raise AmError(
                f"--remote {remote!r} is not a URL, nor a folder",
                f"agent {record['id']} was spawned from {source}, not from a "
                "repository with named remotes: give a URL, or a repository's folder",
            )
        return remote
    name = remote or "origin"
    if git.is_url(name):
        return name
    if not trusted.run(target, "remote", "get-url", "--", name).ok:
        folder = folder_path(name)
        if folder:
            return folder
        raise AmError(
            f"{target} has no remote {name!r}, and no folder has that path",
            f"am push {record['id']} --remote URL|NAME|PATH",
        )
    return name


def folder_path(remote: str) -> str | None:
    """REMOTE, written as a path (``/``, ``./``, ``../`` or ``~`` first) to a folder, as that
    folder's absolute path, which git takes as is (a ``file://`` URL would be percent-decoded:
    ``d%41`` is ``dA`` to git); None otherwise. A mistyped remote name is never taken for a
    folder that happens to be here. Relative paths are the caller's, as typed."""
    import os

    if not remote.startswith(("/", "./", "../", "~")) or git.is_url(remote):
        return None
    path = os.path.expanduser(remote)
    return os.path.abspath(path) if os.path.isdir(path) else None


def push(
    agent_id: str,
    remote: str | None = None,
    branch: str | None = None,
    *,
    interactive: bool = False,
    layout=None,
) -> Pushed:
    """Push agent AGENT_ID's branch to REMOTE as BRANCH; INTERACTIVE lets git ask for a
    password on this terminal."""
    from am.commands import pull
    from am.store import open_store

    layout = layout or paths.layout()
    store = open_store(layout)
    record = records.check(store.get(agent_id), layout, agent_id)
    own = trusted.agent_branch(record)
    dest = git.check_branch(branch) if branch else own
    if record.get("worktree"):
        target = trusted.Target(Path(record["source"]))
        where = resolve_remote(record, target, remote)
        commit = trusted.tip(target, own)
        if commit is None:
            raise AmError(
                f"agent {agent_id} works in a worktree of {target}, whose branch "
                f"{own} is gone: nothing to push",
                f"'am diff {agent_id}' shows its work",
            )
        return send(record, store, target, where, own, dest, commit, interactive)
    with trusted.opened(record, layout) as target:
        where = resolve_remote(record, target, remote)
        # The outbox is am's own staging copy: it follows the agent (the remote refuses what
        # does not fast-forward); a local source's branch only moves forward, as am pull does.
        done = pull.receive(record, layout, target, own, target.outbox, "am push")
        for w in done.warnings:
            print(f"am: warning: {w}", file=sys.stderr)
        if done.moved and not target.outbox:
            print(done.summary(), file=sys.stderr)  # the user's branch moved: said
        if done.new is None:
            raise AmError(
                f"agent {agent_id} has no commits since its base: nothing to push",
                f"'am diff {agent_id}' shows its uncommitted work",
            )
        return send(record, store, target, where, own, dest, done.new, interactive)


def push_argv(target: trusted.Target, where: str, commit: str, dest: str) -> list[str]:
    """One ref, and nothing the agent's commits could add to it: no tag they lead to, no
    submodule their gitlinks name (whatever push.followTags or push.recurseSubmodules say)."""
    return [
        "git",
        "-C",
        str(target.path),
        "push",
        "--no-follow-tags",
        "--recurse-submodules=no",
        "--",
        where,
        f"{commit}:refs/heads/{dest}",
    ]


def send(
    record: dict,
    store,
    target: trusted.Target,
    where: str,
    own: str,
    dest: str,
    commit: str,
    interactive: bool,
) -> Pushed:
    env = git.source_env()
    if interactive:
        env.pop("GIT_TERMINAL_PROMPT", None)
    print(f"Pushing {own} ({commit[:12]}) to {where} as {dest} ...", file=sys.stderr, flush=True)
    res = proc.run(push_argv(target, where, commit, dest), env=env, cwd="/")
    if not res.ok:
        said = res.brief(3)
        raise AmError(
            f"git push to {where} failed: {said}",
            f"{dest} moved on there and is not overwritten: push to another, "
            f"am push {record['id']} --branch NAME"
            if "rejected" in res.err
            else f"check that your git can push there: git push --dry-run {where}",
        )
    if target.outbox and where == record["source"]:
        pushed = [o for o in record.get("pushed") or [] if o != commit] + [commit]
        store.update(record["id"], pushed=pushed[-KEEP_PUSHED:])
    return Pushed(record["id"], where, dest, commit, res.err.strip())


def run(args) -> int:
    done = push(args.id, args.remote, args.branch, interactive=sys.stdin.isatty())
    if done.output:
        print(done.output, file=sys.stderr)
    print(f"Pushed {done.commit[:12]} to {done.remote} as {done.branch}", file=sys.stderr)
    print(done.commit)
    return 0

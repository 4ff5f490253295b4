"""Git: pure composition of git command lines, and the few calls am makes.

Two kinds of repository are touched. The *source* is the user's own (trusted) repository or URL:
it is cloned with the user's git configuration, so credentials and URL rewrites keep working.
A *workspace* is written by an agent and so is hostile: once an agent has had it, am reads it
only through ``am.workspace`` (a git folder of am's own, in the agent's sandbox for a container
agent). The few calls into a workspace am has just made (the spawn's branch switch, the cache
clone's remote URL) go through ``ws_git`` with a ``Repo`` that ``am.gitsafe`` checked; it names
the git folder and work tree explicitly, ignores the system and global configuration and
overrides the keys through which a repository can make git run programs (docs/security.md).
"""

import os
import re
from pathlib import Path

from am import gitfiles, proc
from am.errors import AmError
from am.gitfiles import REPO_VARS, source_env  # noqa: F401 (what callers know as git.*)

URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^[^/:@\s]+@[^/:\s]+:")

# Keys a workspace's own config could use to make host-side git run a program, neutralised on
# every call (the command line beats the repository). Drivers named by .gitattributes (filters,
# textconv, diff and merge drivers) only run when configured; with system and global config
# ignored they can only come from the repository config, which gitsafe's allowlist refuses.
HARDENING = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "core.editor=false",
    "core.sshCommand=false",
    "core.askPass=false",
    "credential.helper=",
    "diff.external=",
    "gpg.program=false",
    "protocol.allow=never",
    "protocol.file.allow=never",
    "safe.bareRepository=explicit",
    "submodule.recurse=false",
    "diff.submodule=short",
    "status.submoduleSummary=false",
    "uploadpack.packObjectsHook=",
)


def is_url(source: str) -> bool:
    return bool(URL_RE.match(source))


def ws_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for git calls in a workspace: no system/global config, no GIT_* leaks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_ATTR_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_OPTIONAL_LOCKS="0",
        GIT_AUTHOR_NAME="am",
        GIT_AUTHOR_EMAIL="am@localhost",
        GIT_COMMITTER_NAME="am",
        GIT_COMMITTER_EMAIL="am@localhost",
    )
    env.update(extra or {})
    return env


def ws_argv(repo, *args: str) -> list[str]:
    """A git command line for a checked workspace (a ``gitsafe.Repo``), hardened against its
    own configuration; the git folder and work tree are explicit, so git discovers nothing."""
    ws = repo.work_tree
    argv = [
        "git",
        "--no-pager",
        "-C",
        str(ws),
        f"--git-dir={repo.git_dir}",
        f"--work-tree={ws}",
        "-c",
        f"safe.directory={ws}",
    ]
    for kv in HARDENING:
        argv += ["-c", kv]
    return argv + list(args)


def ws_git(repo, *args: str, env_extra=None, check=True) -> proc.Result:
    """Run git in a checked workspace (``gitsafe.Repo``); raise AmError on failure when CHECK."""
    res = proc.run(ws_argv(repo, *args), env=ws_env(env_extra))
    if check and not res.ok:
        raise AmError(f"git {args[0]} failed in {repo.work_tree}: {res.brief()}")
    return res


def clone_argv(source: str, dest: Path, *, hardlinks: bool) -> list[str]:
    """Clone SOURCE into DEST without a checkout (the agent branch is checked out next)."""
    if is_url(source):
        return ["git", "clone", "--quiet", "--no-checkout", "--", source, str(dest)]
    return gitfiles.local_clone_argv(source, str(dest), hardlinks=hardlinks)


def worktree_add_argv(source: Path, dest: Path, branch: str, base: str) -> list[str]:
    return [
        "git",
        "-C",
        str(source),
        "worktree",
        "add",
        "--quiet",
        "-b",
        branch,
        "--",
        str(dest),
        base,
    ]


def check_source(source: str) -> str:
    """Return SOURCE as git should see it: a URL unchanged, a local repository as absolute path."""
    if gitfiles.malformed(source):
        raise AmError(f"invalid source {source!r}")
    if is_url(source):
        return source
    path = Path(source).expanduser()
    if not path.exists():
        raise AmError(f"source {source!r} is neither a git URL nor an existing path")
    if not gitfiles.plainly_a_repository(str(path)):
        res = proc.run(["git", "-C", str(path), "rev-parse", "--git-dir"], env=source_env())
        if not res.ok:
            raise AmError(f"source {source!r} is not a git repository")
    return str(path.resolve())


def check_branch(branch: str) -> str:
    """BRANCH if it is a valid branch name that cannot be read as an option or extra text."""
    # HEAD: git makes the ref, then every command reads the name as HEAD itself
    bad = (
        not branch
        or branch.startswith("-")
        or branch == "HEAD"
        or any(ord(c) < 32 or c == "\x7f" for c in branch)
    )
    if not bad:
        res = proc.run(
            ["git", "check-ref-format", f"refs/heads/{branch}"],
            cwd="/",
            env=ws_env({"GIT_DIR": os.devnull}),
        )
        bad = not res.ok
    if bad:
        raise AmError(f"invalid branch name {branch!r}", "see 'git help check-ref-format'")
    return branch


def clone(source: str, dest: Path, *, hardlinks: bool) -> None:
    res = proc.run(clone_argv(source, dest, hardlinks=hardlinks), env=source_env())
    if not res.ok:
        raise AmError(f"cannot clone {source}: {res.brief()}")


def resolve_base(repo, base: str | None) -> str:
    """The commit the agent starts from: BASE (a ref of the source or a commit), else HEAD."""
    candidates = ["HEAD"] if base is None else [f"refs/remotes/origin/{base}", base]
    if base is not None and base.startswith("-"):
        raise AmError(f"invalid base {base!r}")
    for ref in candidates:
        res = ws_git(
            repo,
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{ref}^{{commit}}",
            check=False,
        )
        if res.ok:
            return res.out.strip()
    if base is None:
        raise AmError("the source has no commits to start from")
    raise AmError(f"base {base!r} is not a branch, tag or commit of the source")


def _switch_args(branch: str, commit: str) -> list[str]:
    return ["switch", "--quiet", "--no-track", "-c", branch, "--end-of-options", commit]


def start_branch(repo, branch: str, base: str | None) -> str:
    """Make BRANCH at BASE (``resolve_base``) in a clone am has just made, and check it out;
    returns its commit."""
    running, finish = begin_branch(repo, branch, base)
    return finish()


def begin_branch(repo, branch: str, base: str | None, pass_fds=()):
    """``start_branch``, its checkout left running beside the caller: returns the checkout
    (``proc.Background``, for an undo to ``end``; PASS_FDS stay open in it) and a call that
    waits for it and returns BRANCH's commit, or raises. Without a BASE, the commit HEAD's
    branch holds is read from the files the clone wrote (no agent has had them), and the one
    git put on BRANCH, peeled, read back: a git call fewer. Anything unusual is asked of
    git."""
    head = gitfiles.head_branch(repo.git_dir) if base is None else None
    start = gitfiles.loose_ref(repo.git_dir, head) if head else None
    known = start is not None
    if not known:
        start = resolve_base(repo, base)
    args = _switch_args(branch, start)
    running = proc.Background(ws_argv(repo, *args), env=ws_env(), pass_fds=pass_fds)

    def finish() -> str:
        res = running.result()
        if not res.ok:
            why = res.brief() or f"exit status {res.code}"  # killed: nothing said
            raise AmError(f"git {args[0]} failed in {repo.work_tree}: {why}")
        if not known:
            return start
        made = gitfiles.loose_ref(repo.git_dir, f"refs/heads/{branch}")
        if made is not None:
            return made
        ref = f"refs/heads/{branch}"
        return ws_git(repo, "rev-parse", "--verify", "--end-of-options", ref).out.strip()

    return running, finish


def worktree_add(source: Path, dest: Path, branch: str, base: str | None) -> str:
    """Add a worktree of the user's own repository; returns the base commit."""
    ref = base or "HEAD"
    res = proc.run(
        [
            "git",
            "-C",
            str(source),
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{ref}^{{commit}}",
        ],
        env=source_env(),
    )
    if not res.ok:
        raise AmError(f"base {ref!r} is not a branch, tag or commit of {source}")
    commit = res.out.strip()
    res = proc.run(worktree_add_argv(source, dest, branch, commit), env=source_env())
    if not res.ok:
        raise AmError(f"cannot add a worktree of {source}: {res.brief()}")
    _branches_made.add((str(source), branch))
    return commit


def common_dir(source: Path) -> Path:
    """The git folder a worktree of SOURCE shares with it (objects, refs, config, hooks)."""
    res = proc.run(
        ["git", "-C", str(source), "rev-parse", "--path-format=absolute", "--git-common-dir"],
        env=source_env(),
    )
    if not res.ok:
        raise AmError(f"cannot find the git folder of {source}: {res.brief()}")
    return Path(res.out.strip())


def worktree_remove(source: Path, dest: Path) -> None:
    """Drop the worktree's files and its entry in the source; the branch (the work) stays."""
    import shutil

    if dest.is_symlink():
        dest.unlink()
    shutil.rmtree(dest, ignore_errors=True)
    proc.run(["git", "-C", str(source), "worktree", "prune"], env=source_env())


def worktree_branch(source: Path, dest: Path) -> str | None:
    """The branch SOURCE records as checked out in its worktree at DEST (None if it has no
    worktree there, or one on no branch). DEST is compared as given (absolute) and as its
    parent's real path and its own name: a link at DEST itself is never followed."""
    want = {os.path.abspath(dest), os.path.join(os.path.realpath(dest.parent), dest.name)}
    for path, branch in _worktrees(source) or []:
        if path in want:
            return branch
    return None


def _worktrees(source: Path) -> list[tuple[str, str | None]] | None:
    """SOURCE's worktrees (its own first) as git lists them; None if git could not say."""
    res = proc.run(
        ["git", "-C", str(source), "worktree", "list", "--porcelain", "-z"], env=source_env()
    )
    return parse_worktrees(res.out) if res.ok else None


def parse_worktrees(out: str) -> list[tuple[str, str | None]]:
    """Each worktree's path and branch (pure), from ``worktree list --porcelain -z``."""
    found = []
    for entry in out.split("\0\0"):
        fields = dict(f.partition(" ")[::2] for f in entry.split("\0") if f)
        if "worktree" in fields:
            branch = fields.get("branch", "").removeprefix("refs/heads/") or None
            found.append((fields["worktree"], branch))
    return found


def has_branch(record: dict) -> bool:
    """Whether the source of worktree agent RECORD has the branch its record names."""
    source, branch = record.get("source"), record.get("branch")
    if not isinstance(source, str) or not isinstance(branch, str) or not branch:
        return False
    return proc.run(
        ["git", "-C", source, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
        env=source_env(),
    ).ok


def delete_made_branch(source: Path, branch: str) -> str:
    """Delete BRANCH of SOURCE, which an interrupted spawn made and no agent worked on, if no
    worktree has it checked out and another branch or tag (not a link to it) holds its commit
    too, so that nothing is lost; only while it is still at that commit. Says what was done."""
    ref = f"refs/heads/{branch}"
    tip = proc.run(
        ["git", "-C", str(source), "rev-parse", "--verify", "--quiet", "--end-of-options", ref],
        env=source_env(),
    ).out.strip()
    if not tip:
        return f"the branch {branch} it had made in {source} is gone"
    kept = f"kept the branch {branch} it had made in {source}"
    worktrees = _worktrees(source)
    if worktrees is None:
        return f"{kept}: git could not list its worktrees"
    if any(b == branch for _, b in worktrees):
        return f"{kept}: a worktree has it checked out"
    holders = proc.run(
        [
            "git",
            "-C",
            str(source),
            "for-each-ref",
            "--contains",
            tip,
            "--format=%(refname)%00%(symref)",
            "refs/heads/",
            "refs/tags/",
        ],
        env=source_env(),
    ).out.splitlines()
    if not any(name != ref and not link for name, _, link in (h.partition("\0") for h in holders)):
        return f"{kept}: its commit is on no other branch or tag"
    res = proc.run(["git", "-C", str(source), "update-ref", "-d", ref, tip], env=source_env())
    if not res.ok:
        return f"{kept}: {res.brief()}"
    return f"deleted the branch {branch} it had made in {source} (its commit is kept elsewhere)"


# Branches of the user's repository that worktree_add created in this process: undoing a failed
# spawn or restore may delete those, and never a branch that was there before (the user's own,
# or the work of an earlier agent of the same name).
_branches_made: set[tuple[str, str]] = set()


def delete_branch(source: Path, branch: str) -> None:
    """Delete BRANCH of SOURCE if, and only if, this process created it with worktree_add."""
    if (str(source), branch) not in _branches_made:
        return
    proc.run(["git", "-C", str(source), "branch", "-D", branch], env=source_env())
    _branches_made.discard((str(source), branch))

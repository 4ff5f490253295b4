"""Git's own files of a local repository, read without running git, and the environment and
command line of a clone of one.

Without ``re`` and ``pathlib`` (paths are text): a spawn's head start (``am/headstart.py``)
uses this to begin its clone before Python has imported either, and ``am.git`` builds on it.
"""

import os
import stat

# Variables that would point git at another repository than the one am names explicitly.
REPO_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
)


def source_env() -> dict[str, str]:
    """The environment for git calls on the user's own source: theirs (credentials, URL
    rewrites), minus prompts and anything that would select another repository."""
    env = {k: v for k, v in os.environ.items() if k not in REPO_VARS}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def malformed(source: str) -> bool:
    """Whether SOURCE cannot name a repository: empty, read as an option, or holding a
    line break or NUL."""
    return not source or source.startswith("-") or any(c in source for c in "\n\r\0")


def plain_source(source: str) -> str | None:
    """SOURCE as a local repository's full path (links resolved), when it is plainly the top
    of a work tree of the user's own (``plainly_a_repository``); None for anything else,
    which ``git.check_source`` decides. A URL is no such path unless a folder of that name
    exists here: a caller that must tell them apart asks ``git.check_source``."""
    if malformed(source):
        return None
    path = os.path.expanduser(source)
    return os.path.realpath(path) if plainly_a_repository(path) else None


def local_clone_argv(source: str, dest: str, *, hardlinks: bool) -> list[str]:
    """Clone the local repository SOURCE into DEST without a checkout (the agent branch is
    checked out next); without HARDLINKS its object files are copied, never shared."""
    argv = ["git", "clone", "--quiet", "--no-checkout"]
    if not hardlinks:
        argv.append("--no-hardlinks")
    return argv + ["--", source, dest]


def plainly_a_repository(path: str) -> bool:
    """Whether PATH is the top of a work tree of the user's own whose ``.git`` is a folder
    (no link) with a HEAD, ``objects`` and ``refs``: what ``rev-parse --git-dir`` would find
    at once, found without a git call. False leaves the question to git (a bare repository,
    a worktree's ``.git`` file, a subfolder, another owner)."""
    gd = os.path.join(path, ".git")
    try:
        top, git_dir = os.stat(path), os.lstat(gd)
        objects = os.lstat(os.path.join(gd, "objects"))
        refs = os.lstat(os.path.join(gd, "refs"))
    except OSError:
        return False
    me = os.geteuid()
    if top.st_uid != me or git_dir.st_uid != me:
        return False  # git's own ownership check (safe.directory) decides
    if not all(stat.S_ISDIR(st.st_mode) for st in (git_dir, objects, refs)):
        return False
    return head_branch(gd) is not None or loose_ref(gd, "HEAD") is not None


def head_of(path: str, size: int, dir_fd: int | None = None) -> str:
    """The first SIZE bytes of the regular file PATH (relative to the folder DIR_FD if given)
    as text, never through a link; "" if it is no such file."""
    from am import files

    f = files.open_regular(path, dir_fd)
    if f is None:
        return ""
    with f:
        return f.read(size).decode("ascii", "replace")


def loose_ref(git_dir, ref: str) -> str | None:
    """The object name in REF's own file in GIT_DIR (a branch as git clone and switch write
    it), never through a link; None for anything else (a packed or symbolic ref, no file)."""
    return object_name(head_of(os.path.join(git_dir, ref), 100))


def object_name(text: str) -> str | None:
    """The object name a loose ref's TEXT holds (pure); None for anything else."""
    name = text[:-1]
    if text.endswith("\n") and len(name) in (40, 64) and set(name) <= set("0123456789abcdef"):
        return name
    return None


def head_branch(git_dir) -> str | None:
    """The branch HEAD names in GIT_DIR, when it names one plainly; None otherwise."""
    return branch_in_head(head_of(os.path.join(git_dir, "HEAD"), 300))


def branch_in_head(text: str) -> str | None:
    """The branch's ref (``refs/heads/...``) that a HEAD file's TEXT names plainly (pure);
    None otherwise."""
    if not text.startswith("ref: "):
        return None
    ref = text.removeprefix("ref: ").removesuffix("\n")
    plain = all(c.isalnum() or c in "-_./" for c in ref)
    parts = ref.split("/")
    if text.endswith("\n") and ref.startswith("refs/heads/") and plain and "" not in parts:
        if "." not in parts and ".." not in parts:
            return ref
    return None

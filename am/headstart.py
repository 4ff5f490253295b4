"""A spawn's clone and checkout, begun while Python still imports the rest of am.

``am spawn REPO ...`` of a local repository spends its first 25-30 ms in Python's start and
imports, and only then runs git, whose checkout is most of a spawn (docs/performance.md).
``begin`` guesses from the arguments alone, before argparse and the plan, what the spawn will
clone and which branch it will make, and starts the clone into a folder of its own among the
workspaces; ``advance``, once the spawn's imports are done, checks the clone as a spawn
checks its own (``gitsafe.open_clone``) and starts the branch's checkout. ``take`` hands the
result to the spawn only if the plan wants exactly that (the same source, branch, base and
kind of clone, a plain workspace); anything else, a failed step included, is thrown away and
the spawn makes its workspace as it always does. So a guess costs time when it is wrong, and
never changes what a spawn makes or the errors it gives.

The folder is ``.spawn-<random>`` in the workspaces, held by a lock file as ``files.held_temp_dir``
does, so ``am doctor`` tells one at work from one a kill left (``leftover-spawn``). The clone is
made in ``ws`` inside it and moved to the agent's workspace once the spawn has reserved its
record, as every workspace is made.
"""

from __future__ import annotations

import os

TEMP = ".spawn-"  # the folder's prefix among the workspaces
FIRST_WAIT = 0.02  # seconds ``begin`` waits for the clone at most
# Options that make a spawn other than a plain clone at the source's HEAD (help makes none).
OTHER = ("--worktree", "--disk", "--count", "--base", "--help", "-h")

_early: Early | None = None


class Guess:
    """What a spawn's arguments say of its workspace, read without the parser (``predict``)."""

    __slots__ = ("source", "container", "name", "branch")

    def __init__(self, source: str, container: bool, name: str | None, branch: str | None):
        self.source, self.container, self.name, self.branch = source, container, name, branch


def predict(argv: list[str]) -> Guess | None:
    """The workspace ``am spawn ARGV`` will make, when ARGV is plainly one clone of a source
    given first (pure); None for anything else. Only a guess: ``take`` compares it with the
    plan, so an option argparse reads otherwise (an abbreviation, say) wastes it, no more."""
    if not argv or argv[0].startswith("-"):
        return None
    guess = Guess(argv[0], False, None, None)
    rest = argv[1:]
    for i, arg in enumerate(rest):
        key, eq, value = arg.partition("=")
        if not eq:
            nxt = rest[i + 1 : i + 2]
            value = nxt[0] if nxt and not nxt[0].startswith("-") else ""
        if arg == "--" or key in OTHER or key == "--runtime" and value == "kubernetes":
            return None  # a Kubernetes agent's workspace is made in its cluster
        if arg == "--container":
            guess.container = True
        elif key == "--name" and value:
            guess.name = value
        elif key == "--branch" and value and not value.startswith("-"):
            guess.branch = value
    return guess


class Early:
    """A head start at work: its folder, the clone, then the checkout."""

    def __init__(
        self, folder: str, dirfd: int, held: int, guess: Guess, source: str, agent_id: str
    ):
        self.pid = os.getpid()  # a forked child (--count) never takes its parent's
        # The folder as made: what is removed and moved goes through it, never through a
        # link a process of the user's might put in its place.
        self.folder, self.dirfd, self.held = folder, dirfd, held
        self.ws = os.path.join(folder, "ws")
        self.source, self.hardlinks = source, not guess.container
        self.agent_id = agent_id
        self.branch = guess.branch or f"am/{agent_id}"
        self.clone = None  # git's clone, a proc.Child
        self.checkout = None  # the checkout's proc.Background, once begun
        self.finish = None  # waits for the checkout; returns the base commit
        self.failed = False

    def start_clone(self) -> None:
        from am import gitfiles, proc

        argv = gitfiles.local_clone_argv(self.source, self.ws, hardlinks=self.hardlinks)
        # git holds the folder's lock file too: doctor leaves the folder alone until git has
        # ended, even when this process is killed first. Its messages go to /dev/null: a step
        # that fails is done again by the spawn, which says why.
        self.clone = proc.Child(argv, gitfiles.source_env(), keep=(self.held,), traced=True)

    def advance(self, wait: float | None) -> None:
        """The clone checked, and the branch's checkout begun, once the clone has ended: at
        most WAIT seconds from now (None: however long it takes). On any failure, marked
        failed (the spawn then does it all again itself, and says what is wrong)."""
        if self.failed or self.finish is not None or self.clone is None:
            return
        if wait is not None and not self.clone.done(within=wait):
            return
        if self.clone.wait() != 0:
            self.failed = True
            return
        from pathlib import Path

        from am import git, gitsafe
        from am.errors import AmError

        try:
            repo = gitsafe.open_clone(Path(self.ws))
            self.checkout, self.finish = git.begin_branch(
                repo, self.branch, None, pass_fds=(self.held,)
            )
        except (AmError, OSError, ValueError):  # the spawn's own steps say what is wrong
            self.failed = True

    def fits(self, plan) -> bool:
        """Whether PLAN's workspace is the one this makes (pure)."""
        return (
            not self.failed
            and plan.source == self.source  # a local path: a URL is never this full path
            and plan.runtime != "kubernetes"
            and not plan.worktree
            and not plan.disk
            and plan.base is None
            and (plan.mode == "tmux") == self.hardlinks
            and plan.branch == self.branch
            and plan.id == self.agent_id
            and os.path.dirname(os.fspath(plan.workspace)) == os.path.dirname(self.folder)
        )

    def moved_to(self, workspace) -> str:
        """Wait for the checkout, move the clone to WORKSPACE; returns the base commit."""
        from am.errors import AmError

        assert self.finish is not None
        try:
            base = self.finish()
        except AmError as e:  # said of the workspace it was made for, not of this folder
            e.message = e.message.replace(self.ws, os.fspath(workspace))
            raise
        try:
            os.rename("ws", workspace, src_dir_fd=self.dirfd)
        except OSError as e:  # something made it since the spawn reserved its name
            raise AmError(f"cannot make the workspace {workspace}: {e.strerror or e}") from None
        self.release()
        return base

    def release(self) -> None:
        """The folder and its lock file removed once nothing else is left in it (the lock
        file last, as ``files.held_temp_dir`` does: what could not be removed stays a folder
        doctor knows for a dead spawn's once this process has ended)."""
        from am import files

        try:
            if os.listdir(self.dirfd) == [files.HELD]:
                os.unlink(files.HELD, dir_fd=self.dirfd)
                os.rmdir(self.folder)  # a link put in its place is not removed: ENOTDIR
        except OSError:
            pass
        finally:
            if self.held >= 0:
                os.close(self.held)
                os.close(self.dirfd)
                self.held = -1

    def discard(self) -> None:
        """End the clone and checkout, and remove what they made."""
        for running in (self.clone, self.checkout):
            if running is not None:
                running.end()
        if self.held < 0:  # moved and released, or discarded already
            return
        import shutil

        shutil.rmtree("ws", ignore_errors=True, dir_fd=self.dirfd)
        self.release()


def begin(argv: list[str]) -> None:
    """Start the head start of ``am spawn ARGV``, if ARGV plainly clones a local repository
    into an AM_HOME that has its workspaces folder already (a spawn never leaves one made
    for nothing); otherwise nothing."""
    global _early
    discard()
    guess = predict(argv)
    if guess is None or overturned(guess, os.environ):
        return
    from am import files, gitfiles, ids, paths
    from am.errors import AmError

    try:
        if guess.name is not None:
            ids.validate_name(guess.name)
        source = gitfiles.plain_source(guess.source)
        if source is None:
            return
        parent = paths.layout().workspaces_text
        folder = os.path.join(parent, TEMP + os.urandom(4).hex())
        os.mkdir(folder, 0o700)
    except (OSError, RuntimeError, AmError):  # no workspaces folder yet; not ours; a bad name
        return
    try:
        dirfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # no longer the folder just made
        return
    try:
        held = files.create_locked(files.HELD, dir_fd=dirfd)
    except OSError:  # no locks here: the file is not left either
        held = None
    if held is None:  # doctor took it, empty, as a dead one's; or no locks here
        os.close(dirfd)
        try:
            os.rmdir(folder)
        except OSError:
            pass
        return
    _early = Early(folder, dirfd, held, guess, source, guess.name or ids.draw())
    _catch_stops()
    try:
        _early.start_clone()
    except Exception:
        discard()
        return
    # What checks the clone and starts the checkout, imported while git clones (the spawn
    # imports it anyway); then a short wait: a small clone ends about then, and its checkout
    # begins before the parser is built. A longer one is taken up at the spawn's next steps.
    from am import gitsafe  # noqa: F401

    try:
        _early.advance(wait=FIRST_WAIT)
    except Exception:  # the spawn does it all itself, and says what is wrong
        discard()


def overturned(guess: Guess, environ) -> bool:
    """Whether a setting the guess cannot see makes another workspace of GUESS's container
    agent (pure): a Kubernetes runtime or a disk cap from AM_* variables. (From config.toml,
    whose reading costs more than the head start gains, ``take`` finds it.)"""
    disk = environ.get("AM_DISK", "none") not in ("", "none")
    return guess.container and (environ.get("AM_RUNTIME") == "kubernetes" or disk)


# SIGTERM and SIGHUP before the spawn catches them itself (``spawn.spawn_alone``): the head
# start is thrown away, then the signal ends am as it would have.
STOPS = ("SIGTERM", "SIGHUP")
_before: dict = {}


def _catch_stops() -> None:
    import signal

    for name in STOPS:
        s = getattr(signal, name)
        try:
            if signal.getsignal(s) is signal.SIG_DFL:  # nohup's SIG_IGN stays
                _before[s] = signal.signal(s, _stopped)
        except ValueError:  # not the main thread: its process's own
            pass


def _stopped(signum, _frame) -> None:
    import signal

    discard()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _release_stops() -> None:
    import signal

    while _before:
        s, handler = _before.popitem()
        if signal.getsignal(s) is _stopped:
            signal.signal(s, handler)


def advance() -> None:
    """Check the head start's clone and begin its checkout, if the clone has ended; never a
    wait (the spawn's own checks come first). Called at each step of the spawn's start, until
    one finds the clone ended (``take`` waits for it)."""
    if _early is not None and _early.pid == os.getpid():
        _early.advance(wait=0.0)


def take(plan) -> Early | None:
    """The head start, for the spawn of PLAN to move into its workspace
    (``Early.moved_to``), if it makes what PLAN wants (its clone then checked and its
    checkout begun); else it is thrown away, and None. It stays here too, so that whatever
    ends the spawn throws it away if the spawn did not take it whole (``discard``)."""
    early = _early
    if early is None or early.pid != os.getpid():
        return None
    if early.fits(plan):
        early.advance(wait=None)
        if early.finish is not None:
            return early
    discard()
    return None


def discard() -> None:
    """Throw away a head start nobody took, or what is left of one (a spawn that failed or
    made something else); nothing once it is in its workspace."""
    global _early
    early, _early = _early, None
    if early is not None and early.pid == os.getpid():
        import signal

        from am import ids

        ids.undraw(early.agent_id)
        # A second Ctrl-C (or a stop) while a partial clone is removed waits until it is
        # gone, then ends am as it would have: nothing half-removed is left.
        stops = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        held = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        try:
            early.discard()
            _release_stops()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

"""``am pull``: the agent's commits into the source repository, as a branch.

The commits cross as a git bundle of the workspace's HEAD, made where the workspace is read
(``am.workspace``: in the agent's sandbox for a container agent), and enter the trusted
repository (``am.trusted``: the user's source, or am's outbox for a URL agent) only through
``am.bundle``'s checks. Nothing of the workspace runs. The branch only moves forward unless
FORCE. ``pull`` is what the dashboard calls; ``run`` is the command.
"""

import sys
from pathlib import Path

from am import files, git, paths, records, trusted
from am.errors import AmError
from am.valueclass import field, value_class

# A pull's bundle is written in <cache>/bundle-<random>, held while it works
# (files.held_temp_dir): doctor removes one a kill left.
BUNDLE_TEMP = "bundle-"


@value_class(frozen=False)
class Pulled:
    """What a pull did (or found nothing to do)."""

    agent: str
    repo: str  # the trusted repository, as shown to the user
    path: str  # its folder
    branch: str
    head: str | None  # the workspace's HEAD, as it was read
    old: str | None = None  # the branch before (None: it did not exist)
    new: str | None = None  # the branch now
    commits: int = 0  # commits the branch gained
    since_base: int | None = None  # commits on the branch since the agent's base
    changed: int = 0  # uncommitted or untracked files left behind
    submodules: int = 0
    outbox: bool = False
    worktree: bool = False
    forced: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def moved(self) -> bool:
        return self.new is not None and self.new != self.old

    def summary(self) -> str:
        short = (self.new or self.head or "")[:12]
        if self.worktree:
            return (
                f"Agent {self.agent} works in a worktree of {self.repo}: its commits are "
                f"already on {self.branch} there (at {short}); nothing to pull"
            )
        if self.new is None:
            return f"Agent {self.agent} has no commits since its base: nothing to pull"
        if not self.moved:
            return f"{self.branch} in {self.repo} is up to date (at {short})"
        total = f", {self.since_base} since its base" if self.since_base is not None else ""
        if self.old is None:
            what, total = f"Created {self.branch} with {self.commits} commit(s)", ""
        elif self.forced and not self.commits:
            what = f"Reset {self.branch} (was {self.old[:12]})"
        else:
            what = (
                f"{'Forced' if self.forced else 'Fast-forwarded'} {self.branch} by "
                f"{self.commits} commit(s)"
            )
        return f"{what} in {self.repo}: now at {short}{total}"


def pull(agent_id: str, branch: str | None = None, force: bool = False, *, layout=None) -> Pulled:
    """Bring agent AGENT_ID's commits into its trusted repository as BRANCH (default: the
    agent's own branch). Raises AmError, changing nothing, when it cannot."""
    from am.store import open_store

    layout = layout or paths.layout()
    record = records.check(open_store(layout).get(agent_id), layout, agent_id)
    branch = git.check_branch(branch) if branch else trusted.agent_branch(record)
    if record.get("worktree"):
        # its commits are the source's already: on its own branch, whatever --branch says
        source = trusted.Target(Path(record["source"]))
        own = trusted.agent_branch(record)
        tip = trusted.tip(source, own)
        if tip is None:
            raise AmError(
                f"agent {agent_id} works in a worktree of {source}, whose branch {own} is gone",
                f"'am diff {agent_id}' shows its work",
            )
        return Pulled(
            agent_id, str(source), str(source.path), own, None, old=tip, new=tip, worktree=True
        )
    with trusted.opened(record, layout) as target:
        return receive(record, layout, target, branch, force, "am pull")


def receive(
    record: dict, layout, target: trusted.Target, branch: str, force: bool, why: str
) -> Pulled:
    """Bundle the workspace's HEAD, check it, and move BRANCH of TARGET there."""
    from am import bundle, workspace

    agent_id = record["id"]
    workspace.check_present(record)
    where = trusted.checked_out(target, branch)
    if where is not None:
        raise AmError(
            f"{branch} is checked out in {where}",
            f"switch that worktree to another branch first, or pull into another: "
            f"am pull {agent_id} --branch NAME",
        )
    old = trusted.tip(target, branch)
    have = trusted.tips(target, record.get("base_commit"))
    layout.cache.mkdir(parents=True, exist_ok=True)
    ops = workspace.for_record(record, layout)
    with files.held_temp_dir(layout.cache, BUNDLE_TEMP) as tmp:
        path = Path(tmp) / f"{agent_id}.bundle"
        got = ops.bundle(have, path)
        head = got.head.commit
        if head is None:
            raise AmError(
                f"agent {agent_id} has no commit to pull",
                f"'am diff {agent_id}' shows its uncommitted work",
            )
        result = Pulled(
            agent_id,
            str(target),
            str(target.path),
            branch,
            head,
            old=old,
            new=old,
            changed=got.changed,
            submodules=got.submodules,
            outbox=target.outbox,
            warnings=list(ops.warnings),
        )
        if got.commits:
            result.warnings += bundle.receive(target.path, path, head)
        elif not trusted.has_commit(target, head):
            raise AmError(
                f"the workspace's HEAD {head} is neither in {target} nor in the "
                "bundle of the agent's commits; nothing was taken",
                f"'am log {agent_id}' and 'am diff {agent_id}' show its work",
            )
    own = record.get("branch") or f"am/{agent_id}"
    if got.head.branch != own:
        on = f"on {got.head.branch}" if got.head.branch else "detached"
        result.warnings.append(f"the workspace's HEAD is {on}, not on {own}: am took HEAD")
    if got.changed or got.submodules:
        left = [f"{got.changed} uncommitted or untracked file(s)"] if got.changed else []
        left += [f"{got.submodules} submodule(s)"] if got.submodules else []
        result.warnings.append(
            f"the workspace holds {' and '.join(left)} that were not pulled: see am diff {agent_id}"
        )
    base = record.get("base_commit")
    if old is None and head == base:
        result.new = None
        return result
    if old != head:
        if old is not None and not trusted.is_ancestor(target, old, head):
            if not force:
                raise AmError(
                    f"{branch} in {target} has commits that the agent's HEAD "
                    f"{head[:12]} does not: its history was rewritten",
                    f"'am pull {agent_id} --force' replaces {branch} (now at "
                    f"{old[:12]}); or pull into another: --branch NAME",
                )
            result.forced = True
        trusted.move(target, branch, head, old, f"{why}: agent {agent_id}", agent_id)
        result.new = head
    if base and trusted.has_commit(target, base):
        result.since_base = trusted.count(target, head, base)
    if result.moved:
        # what the branch gained; a new one: its commits since the base (else what no branch
        # had before)
        result.commits = (
            trusted.count(target, head, old)
            if old
            else result.since_base
            if result.since_base is not None
            else trusted.count(target, head, *have)
        )
    return result


def hint(result: Pulled) -> str | None:
    """What to do next, for people."""
    if result.worktree or not result.moved:
        return None
    if result.outbox:
        return (
            f"send it with: am push {result.agent}; or fetch it into a clone of yours: "
            f"git fetch {result.path} {result.branch}:{result.branch}"
        )
    return f"review it with: git log {result.branch}; merge it with: git merge {result.branch}"


def run(args) -> int:
    result = pull(args.id, args.branch, args.force)
    for w in result.warnings:
        print(f"am: warning: {w}", file=sys.stderr)
    print(result.summary(), file=sys.stderr)
    nxt = hint(result)
    if nxt:
        print(f"  {nxt}", file=sys.stderr)
    if getattr(args, "json", False):
        from am import output

        output.print_json(result.__dict__ | {"moved": result.moved})
    else:
        print(result.new or result.head or "")
    return 0

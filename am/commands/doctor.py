"""``am doctor``: check the tools am needs, and find (``--fix``: repair) drift."""

import contextlib
import errno
import os
import re
import shutil
import sys
from pathlib import Path

from am import drift, git, ids, output, paths, proc, session, versions, workspace
from am.backends import for_runtime as engine
from am.errors import AmError
from am.record import Record, Status
from am.store import open_store
from am.validate import DEFAULT_IMAGE


def checks() -> tuple[list[dict], list]:
    """One row per tool; also the engines that answer, for drift detection."""
    rows, usable = [], []

    def row(name, ok, detail):
        rows.append({"check": name, "ok": ok, "detail": detail})

    ok, text = versions.git_status()
    row("git", ok is not False, text)
    t = versions.tool_version(["tmux", "-V"])
    row("tmux", bool(t), versions.show(t))
    for name in ("docker", "podman"):
        if not proc.which(name):
            row(name, None, "not installed (container mode needs docker or podman)")
            continue
        eng = engine(name)
        try:
            eng.check()
        except AmError as e:
            row(name, False, e.message + (f" ({e.hint})" if e.hint else ""))
            continue
        usable.append(eng)
        row(name, True, "answers")
        try:
            problem = eng.limits_problem()
        except AmError as e:
            problem = e.message
        row(
            f"{name} limits",
            problem is None,
            "memory, CPU and process limits enforced"
            if problem is None
            else f"{problem}: container spawns on {name} are refused ({eng.limits_hint})",
        )
        labels = eng.image_labels(DEFAULT_IMAGE)
        row(f"{name} image", *image_row(eng, labels))
        row(f"{name} proxy", *proxy_image_row(eng))
        row(f"{name} gvisor", *gvisor_check(eng, labels is not None))
    if usable:
        row("agent uid", *agent_uid_row())
    ok, text = versions.runc_status()
    if ok is not None:
        row("runc", ok, text)
    return rows, usable


def gvisor_check(eng, has_image: bool) -> tuple[bool | None, str]:
    """Whether ENG can run gVisor agents (``--isolation gvisor``) with every network policy:
    registered, and a sandbox of am's image really starts on gVisor's kernel."""
    from am import isolation

    for network in isolation.RUNSC_FLAGS:
        problem = eng.gvisor_problem(network)
        if problem:
            return None, f"not available: {problem.message}" + (
                f" ({problem.hint})" if problem.hint else ""
            )
    text = versions.version_text(["runsc", "--version"])
    runsc = text.splitlines()[0] if text else "runsc"
    if not has_image:
        return None, f"{runsc}; not tried: {DEFAULT_IMAGE} missing"
    argv = [
        *isolation.run_head(eng.runtime, "gvisor", "none"),
        "--rm",
        "--pull",
        "never",
        "--network",
        "none",
        "--",
        DEFAULT_IMAGE,
        "dmesg",
    ]
    try:
        res = proc.run(argv, timeout=120)
    except proc.NotFound:
        return False, f"{eng.runtime} not found"
    if res.ok and "gVisor" in res.out:
        return True, f"available ({runsc}): a test sandbox ran on gVisor's kernel"
    return False, f"{runsc} is set up, but a test sandbox failed: {res.brief()}"


def image_row(eng, labels: dict | None) -> tuple[bool | None, str]:
    """The image check: whether it exists (LABELS not None), the agent CLIs it holds, and
    whether the default agent's CLI is among them."""
    from am import image

    if labels is None:
        return False, f"{DEFAULT_IMAGE} missing: run 'am image build'"
    held = image.clis_of(labels)
    if held is None:
        return True, f"{DEFAULT_IMAGE} (no {image.LABEL} label: its agent CLIs are unknown)"
    text = f"{DEFAULT_IMAGE} (agent CLIs: {', '.join(held) or 'none'})"
    try:
        from am import config

        cfg = config.load()
        agent = cfg.resolve()["agent"].value
        cli = image.needed_cli(list(cfg.profile(agent).command))
    except AmError:
        return True, text  # a broken config file is reported by the commands that read it
    if cli and cli not in held:
        want = ",".join(sorted({*held, cli}))
        return None, (
            f"{text}: no {cli} for the default agent {agent!r}; 'am image build "
            f"--runtime {eng.runtime} --agents {want}' adds it"
        )
    return True, text


PROXY_MAX_AGE_DAYS = 30


def proxy_image_row(eng) -> tuple[bool | None, str]:
    """The proxy image: whether it is built, its squid and its age (security updates arrive
    only with a rebuild)."""
    from am.backends.network import PROXY_IMAGE

    res = eng.call(
        "image",
        "inspect",
        "--format",
        '{{.Created}}|{{index .Config.Labels "am.squid"}}',
        PROXY_IMAGE,
    )
    if not res.ok:
        return None, (
            PROXY_IMAGE + " not built yet: the first --network limited spawn (or "
            "'am image build --proxy') builds it"
        )
    created, _, squid = res.out.strip().partition("|")
    days = age_days(created)
    text = f"{PROXY_IMAGE}, squid {squid or '?'}, built " + (
        "at an unknown time" if days is None else f"{days} day{'s' * (days != 1)} ago"
    )
    if days is not None and days > PROXY_MAX_AGE_DAYS:
        return None, text + (
            f": rebuild it for Debian's security updates with 'am image build "
            f"--proxy --runtime {eng.runtime}'"
        )
    return True, text


def age_days(created: str) -> int | None:
    """Whole days since an engine's ``Created`` time: docker's RFC 3339, or podman's
    ``2026-11-28 04:50:47.468403422 +0000 UTC``."""
    from datetime import UTC, datetime, timedelta

    m = re.match(
        r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.\d+)? ?(Z|[+-]\d\d:?\d\d)?", created.strip()
    )
    if not m:
        return None
    when = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}").replace(tzinfo=UTC)
    zone = m.group(3) or "Z"
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        when -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return max(0, (datetime.now(UTC) - when).days)


def agent_uid_row() -> tuple[bool | None, str]:
    """Who container agents run as: the caller, or as root a uid no account has."""
    from am.backends.engine import AGENT_UID_ENV, agent_uid, uid_problem

    if os.getuid() != 0:
        return True, (
            f"container agents run as you (uid {os.getuid()}; rootless podman maps "
            "it with --userns=keep-id)"
        )
    try:
        uid = agent_uid()
    except AmError as e:
        return False, e.message + f" ({e.hint})"
    problem = uid_problem(uid)
    if problem:
        return False, (
            f"container agents would run as {problem}: set {AGENT_UID_ENV} to a uid no account uses"
        )
    return True, (
        f"container agents run as uid {uid}, which no account, group or subordinate "
        f"id range of this host has ({AGENT_UID_ENV} to change)"
    )


def adopt(path: Path, store, layout, disk: str | None = None) -> str:
    """Give a workspace with unsaved work and no record a stopped record, so it is not lost;
    DISK: the size of the file system it is (its first start runs it in a container)."""
    agent_id = path.name
    ids.validate_name(agent_id)
    base = head = branch = None
    try:
        ops = workspace.at_path(path)
        found = ops.head()
        head, branch = found.commit, found.branch
        base = ops.base()
    except AmError:
        pass  # kept without reading it; 'am rm --force' can still delete it
    with store.transaction() as agents:
        agents[agent_id] = Record(
            agent_id,
            str(path),
            str(layout.log_file(agent_id)),
            str(layout.root),
            status=Status.STOPPED,
            branch=branch or None,
            base_commit=base or head or None,
            limits={"disk": disk} if disk else None,
            extra={"adopted": True},
        ).as_dict()
    return agent_id


def branch_it_made(record: dict) -> str | None:
    """The branch ``am/ID`` of the user's repository that an interrupted worktree spawn or
    restore of RECORD made, as far as can be told: the one checked out in the worktree at its
    own workspace (a real folder, no link), which 'git worktree add -b' made, since it refuses
    a branch that exists. None for any other agent, or when it cannot be told."""
    if not record.get("worktree") or not isinstance(record.get("source"), str):
        return None
    ws = Path(record["workspace"])
    if ws.is_symlink() or not ws.is_dir():
        return None
    branch = f"am/{record['id']}"
    return branch if git.worktree_branch(Path(record["source"]), ws) == branch else None


def settle_spawn(record: dict, store, layout) -> str:
    """End an interrupted spawn: stop what it started; keep (adopt, stopped) a workspace that
    holds unsaved work, delete the rest. An agent cannot have worked when its session never
    started (its log was never made) and its spec was never written, or when neither its spec
    nor its clone's checkout (the index) is there: its workspace holds only what the spawn put
    there, a tmux agent's session waiting for that spec. A restore's counts as started: its
    record is made before it unpacks, and its log once it has."""
    from am import lifecycle

    spec = layout.run / f"{record['id']}.spec.json"
    index = Path(record.get("workspace") or "/nonexistent") / ".git" / "index"
    # (A restore's record: its log is made once its workspace is whole.)
    started = record.get("restored_from") or os.path.lexists(spec) or os.path.lexists(index)
    lifecycle.stop(record, store)
    record = store.agents()[record["id"]]
    log = bool(record.get("log")) and Path(record["log"]).exists()
    ran = started and (log or os.path.lexists(spec))
    reasons = lifecycle.unsaved(record) if ran else []
    if not reasons:
        made = None if ran else branch_it_made(record)
        lifecycle.delete(record, store, layout)
        why = "no unsaved work" if ran else "its agent never ran"
        done = f"stopped, and removed the record and its workspace ({why})"
        if made:
            done += "; " + git.delete_made_branch(Path(record["source"]), made)
        elif not ran and record.get("worktree") and git.has_branch(record):
            done += (
                f"; the branch {record['branch']} stays in {record['source']}: am cannot tell "
                "that this spawn made it"
            )
        return done
    base = record.get("base_commit")
    if not base and not record.get("worktree"):
        try:
            base = workspace.for_record(record, layout).base()
        except AmError:
            base = None
    store.update(record["id"], base_commit=base, spawn_pid=None, adopted=True)
    return f"stopped, and kept as a stopped agent: unsaved work ({'; '.join(reasons)})"


def fix(d: drift.Drift, store, layout) -> str:
    """Repair one drift; returns what was done. What a spawn may own is repaired under the
    state file's lock, and only if the records, read again, show no agent that owns it
    (``drift.claimed``): a spawn begun since the look has reserved its record, and one that
    begins now waits for the lock."""
    handler = FIXES.get(d.kind)
    if handler is None:
        return "left alone"
    if d.kind not in drift.SPAWN_MAY_OWN:
        return handler(d, store, layout)
    with store.transaction() as agents:
        if drift.claimed(d, agents):
            return "left alone: an agent record names it now (a spawn began meanwhile)"
        return handler(d, Held(agents), layout)


class Held:
    """The records while ``fix`` holds the state file's lock, for a repair that adopts a
    workspace: its record is written when the hold ends."""

    def __init__(self, agents: dict):
        self._agents = agents

    @contextlib.contextmanager
    def transaction(self):
        yield self._agents

    def agents(self) -> dict:
        return self._agents


def _kill_session(d, store, layout) -> str:
    session.kill(d.subject)
    return "killed the session"


def _remove_container(d, store, layout) -> str:
    engine(d.runtime).remove_agent(d.subject)
    return "removed the container"


def _remove_proxy_or_network(d, store, layout) -> str:
    from am.backends import network

    eng = engine(d.runtime)
    if d.kind == drift.Kind.ORPHAN_PROXY:
        eng.remove(d.subject)
    for name in network.networks(eng, str(layout.root)):
        network.remove_network(eng, name)  # refused while another proxy uses it
    return f"removed the {d.kind.split('-')[1]}"


def _remove_lost_container(d, store, layout) -> str:
    # Stopped or exited in am's view, yet still there (the engine was down when it was
    # stopped): only ever a container labelled for this AM_HOME.
    engine(d.runtime).remove_agent(d.subject, home=str(layout.root))
    return "removed the container"


def _prune_worktrees(d, store, layout) -> str:
    proc.run(["git", "-C", d.subject, "worktree", "prune"], env=git.source_env())
    return "pruned"


def _remove_record(d, store, layout) -> str:
    store.remove(d.subject)
    return "removed the record only; nothing it names was touched"


def _settle_stale_spawn(d, store, layout) -> str:
    from am import records

    return settle_spawn(records.check(store.agents()[d.subject], layout, d.subject), store, layout)


def _remove_or_adopt_disk(d, store, layout) -> str:
    return fix_disk(Path(d.subject), store, layout)


def _detach_loop(d, store, layout) -> str:
    from am import disk

    return "detached" if disk.detach(d.subject) else "already detached"


def _remove_or_adopt_workspace(d, store, layout) -> str:
    path = Path(d.subject)
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return "removed"
    if not any(path.iterdir()):
        path.rmdir()
        return "removed (empty)"
    if not os.path.lexists(path / ".git"):
        # Not something a spawn made: neither adopted as an agent nor deleted.
        return "left alone: not a git workspace; look at it, and remove it yourself"
    try:
        has_work = bool(workspace.at_path(path).unsaved())
    except workspace.Refused:
        has_work = True  # not a layout am made: keep it, never guess
    except AmError:
        has_work = False
    if has_work:
        return f"kept: adopted as stopped agent {adopt(path, store, layout)}"
    shutil.rmtree(path)
    return "removed (no unsaved work)"


GONE = "already gone (its {} finished meanwhile)"


def _remove_leftover_restore(d, store, layout) -> str:
    """A dead restore's folder: taken as a held one when it is empty or has the lock file;
    else an older am's, whose restore its record told dead, removed. A restore makes its
    lock file first and removes it last, so looked at in that order (empty, then the lock
    file), a folder that has content but no lock file is never a restore's at work."""
    from am import files

    path = Path(d.subject)
    if not os.path.lexists(path):
        return GONE.format("restore")
    if path.is_dir() and not path.is_symlink():
        with os.scandir(path) as entries:
            empty = next(entries, None) is None
        if empty or os.path.lexists(path / files.HELD):
            return _remove_held_leftover(d, store, layout)
    try:
        _remove(path)
    except FileNotFoundError:
        return GONE.format("restore")
    return "removed"


def _remove_held_leftover(d, store, layout) -> str:
    """What a snapshot, pull or restore that died left: removed while held here (a file, or a held
    folder's lock file), so that one at work (which holds it) keeps it, and one that makes
    its name now makes a new one."""
    from am import files

    what = {
        drift.Kind.LEFTOVER_SNAPSHOT: "snapshot",
        drift.Kind.LEFTOVER_RESTORE: "restore",
        drift.Kind.LEFTOVER_SPAWN: "spawn",
    }.get(d.kind, "pull")
    path = Path(d.subject)
    if not os.path.lexists(path):
        return GONE.format(what)
    folder = path.is_dir() and not path.is_symlink()
    if folder and os.path.ismount(path):
        return "left alone: a file system is mounted there"
    held = None
    if folder and not os.path.lexists(path / files.HELD):
        try:  # killed before it made its lock file: only ever an empty folder goes
            path.rmdir()
        except FileNotFoundError:
            return GONE.format(what)
        except OSError as e:  # not empty: a maker has made its lock file since
            if e.errno == errno.ENOTEMPTY:
                return f"left alone: a {what} is at work on it"
            return f"left alone: {e.strerror}"
        return "removed (empty)"
    if folder or path.is_file() and not path.is_symlink():
        held = files.take_if_free(path / files.HELD if folder else path)
        if held is None:
            busy = os.path.lexists(path)
            return f"left alone: a {what} is at work on it" if busy else GONE.format(what)
    try:
        _remove(path)
    finally:
        if held is not None:
            os.close(held)
    return "removed"


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)  # never follows a link: it removes the links themselves


FIXES = {
    drift.Kind.ORPHAN_SESSION: _kill_session,
    drift.Kind.ORPHAN_CONTAINER: _remove_container,
    drift.Kind.ORPHAN_PROXY: _remove_proxy_or_network,
    drift.Kind.ORPHAN_NETWORK: _remove_proxy_or_network,
    drift.Kind.LOST_CONTAINER: _remove_lost_container,
    drift.Kind.STALE_WORKTREE: _prune_worktrees,
    drift.Kind.INVALID_RECORD: _remove_record,
    drift.Kind.STALE_SPAWN: _settle_stale_spawn,
    drift.Kind.ORPHAN_WORKSPACE: _remove_or_adopt_workspace,
    drift.Kind.LEFTOVER_RESTORE: _remove_leftover_restore,
    drift.Kind.LEFTOVER_SNAPSHOT: _remove_held_leftover,
    drift.Kind.LEFTOVER_PULL: _remove_held_leftover,
    drift.Kind.LEFTOVER_SPAWN: _remove_held_leftover,
    drift.Kind.ORPHAN_DISK: _remove_or_adopt_disk,
    drift.Kind.LOOSE_LOOP: _detach_loop,
}


def fix_disk(image: Path, store, layout) -> str:
    """A workspace file system with no record: adopted if it holds unsaved work (mounted to
    look), else unmounted and deleted with its mount point."""
    from am import disk

    agent_id = image.name.removesuffix(disk.PARTIAL).removesuffix(disk.SUFFIX)
    ids.validate_name(agent_id)
    ws = layout.workspace(agent_id)
    whole = layout.disk_image(agent_id)
    if image == whole and whole.is_file():  # made whole: it may hold work
        disk.ensure(whole, ws, agent_id)
        try:
            # empty: a spawn killed before its clone
            has_work = any(e.name != "lost+found" for e in ws.iterdir()) and bool(
                workspace.at_path(ws).unsaved()
            )
        except workspace.Refused:
            has_work = True
        except AmError:
            has_work = False
        if has_work:
            size = f"{max(1, whole.stat().st_size // 1024**2)}m"
            return f"kept: adopted as stopped agent {adopt(ws, store, layout, size)}"
    disk.remove(whole, ws)
    if ws.is_dir() and not ws.is_symlink() and not any(ws.iterdir()):
        ws.rmdir()
    return "unmounted and removed"


def run(args) -> int:
    layout = paths.layout()
    store = open_store(layout)
    rows, usable = checks()
    try:
        found = drift.find(layout, usable)
    except proc.NotFound:
        found = []
    fixed = {}
    if args.fix:
        for d in found:
            try:
                fixed[d.subject] = fix(d, store, layout)
            except AmError as e:
                fixed[d.subject] = f"not fixed: {e.message}"
            except OSError as e:  # a file it may not remove, say: the next drift still fixed
                where = f" ({e.filename})" if e.filename else ""
                fixed[d.subject] = f"not fixed: {e.strerror or e}{where}"
    if args.json:
        output.print_json(
            {
                "checks": rows,
                "drift": [
                    {
                        "kind": d.kind,
                        "subject": d.subject,
                        "detail": d.detail,
                        "fixed": fixed.get(d.subject),
                    }
                    for d in found
                ],
            }
        )
    else:
        for r in rows:
            mark = {True: "ok", False: "FAIL", None: "--"}[r["ok"]]
            print(f"{mark:5} {r['check']:14} {r['detail']}")
        for d in found:
            note = f" -> {fixed[d.subject]}" if d.subject in fixed else ""
            # One line each: a folder's name may hold a newline, and forge a line of its own.
            line = f"{d.subject}: {d.detail}{note}".replace("\n", "\\n")
            print(f"drift {d.kind:17} {line}")
        if not found:
            print("no drift between the state file and what runs")
        elif not args.fix:
            print("run 'am doctor --fix' to repair", file=sys.stderr)
    bad = any(r["ok"] is False and r["check"] in ("git", "tmux") for r in rows)
    return 1 if bad or (found and not args.fix) else 0

"""Stopping and deleting agents: the steps ``stop``, ``rm``, ``clean`` and ``doctor`` share."""

import contextlib
import os
import shutil
import sys
from pathlib import Path

from am import backends, clock, git, paths, session
from am.errors import AmError
from am.record import Status, stop_count


def stop(record: dict, store) -> None:
    """Mark the agent stopped first (so nobody sees it as exited), then end what runs: only a
    container and a session that carry this AM_HOME's label (the record was checked)."""
    from am.status import spawn_alive

    with store.transaction() as agents:
        now = agents.get(record["id"])
        if now is not None:
            # Counted: a spawn or start still at work sees that a stop came meanwhile. A
            # spawn's record stays 'starting' until the spawn, which still writes the
            # workspace, ends and settles it 'stopped' (or, killed, leaves it to doctor).
            if not (now.get("status") == Status.STARTING and spawn_alive(now)):
                now["status"] = Status.STOPPED
            now.update(stopped=clock.iso(), stops=stop_count(now) + 1)
    with contextlib.suppress(AmError):
        backends.for_record(record).stop(record)  # tmux: nothing runs beyond the session
    session.kill_own(record["session"], str(paths.layout().root))


def unsaved(record: dict, layout=None) -> list[str]:
    """Why deleting the agent would lose work; a workspace that could not be read counts as
    work. Read in the agent's sandbox for a container agent (``am.workspace``). Commits that
    ``am pull`` or ``am push`` saved (``am.trusted.saved``) are not unsaved work."""
    from am import trusted, workspace

    ws = Path(record["workspace"])
    if workspace.held_on_host(record):
        if not ws.exists() and not ws.is_symlink():
            return []
        if ws.is_symlink():
            return []  # a link holds nothing of the agent's: delete removes the link itself
    try:
        layout = layout or paths.layout()
        return workspace.for_record(record, layout).unsaved(trusted.saved(record, layout))
    except workspace.Gone:
        return []  # nothing is left to lose
    except AmError as e:
        return [f"not inspected ({e.message})"]


def delete(record: dict, store, layout) -> None:
    """Delete an agent's workspace, record and run files (the caller checked for unsaved work)."""
    from am import workspace

    ws = Path(record["workspace"])
    from am import disk

    image = layout.disk_image(record["id"])
    if disk.made(image):
        # Its file system goes whole (no walk of the files); the empty mount point below.
        disk.remove(image, ws)
    if workspace.in_cluster(record):
        backends.for_record(record).delete_workspace(record)  # in its cluster
    elif record.get("worktree"):
        git.worktree_remove(Path(record["source"]), ws)
    elif ws.is_symlink():
        ws.unlink()  # the link itself, never what it points to
    else:
        # rmtree never follows symbolic links; it removes the links themselves.
        shutil.rmtree(ws, ignore_errors=True)
    if ws.exists() or ws.is_symlink():
        raise AmError(f"could not remove {ws} entirely; the record is kept")
    if record.get("volume"):
        from am.backends.engine import workspace_volume

        backends.for_record(record).remove_volume(workspace_volume(record["id"]), str(layout.root))
    for f in (
        layout.exit_file(record["id"]),
        layout.health_file(record["id"]),
        layout.guest_file(record["id"]),
        layout.gate_file(record["id"]),
        layout.run / f"{record['id']}.spec.json",
        layout.run / f"{record['id']}.start.lock",
        layout.log_file(record["id"]),
        Path(f"{layout.log_file(record['id'])}.1"),  # the older part, once it reached its cap
        # what a rotation cut short by a kill leaves (runfiles.rotate_written)
        Path(f"{layout.log_file(record['id'])}.new"),
        Path(f"{layout.log_file(record['id'])}.old"),
        Path(f"{layout.log_file(record['id'])}.1.tmp"),  # a tmux agent's, by its supervisor
        Path(f"{layout.log_file(record['id'])}.1.at"),  # where its last cut was made
    ):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    _remove_fifos(layout.run, record["id"])
    # The engine client's folder (a root am's passwd and group for the container, conmon's
    # OOM marker): am's own, never mounted as a folder, and no agent runs now.
    shutil.rmtree(layout.run / record["id"], ignore_errors=True)
    if record.get("proxy"):
        from am.backends import network

        network.discard_files(network.files(layout.run, layout.logs, record["id"]))
    store.remove(record["id"])


def _remove_fifos(run: Path, agent_id: str) -> None:
    """The hand-over FIFOs (``<id>.<8 hex>.env``) a killed spawn of the agent left."""
    import re

    name = re.compile(re.escape(agent_id) + r"\.[0-9a-f]{8}\.env")
    try:
        entries = os.listdir(run)
    except OSError:
        return
    for entry in entries:
        if name.fullmatch(entry):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(run / entry)


def snapshot_then_delete(record: dict, store, layout) -> Path | None:
    """Delete an agent; if it holds unsaved work, snapshot it first and say where."""
    snap = None
    ws = Path(record["workspace"])
    # A workspace swapped for a link holds nothing of the agent's: the link is removed, never
    # archived or followed.
    if not ws.is_symlink() and unsaved(record, layout):
        from am import snapshot, workspace

        try:
            snap = snapshot.create(record, layout)
        except workspace.Unavailable as e:
            backend = backends.of_record(record)
            if backend is None or not backend.snapshot_on_host(record):
                raise
            # The engine cannot run the sandbox (down, image gone) and the agent was stopped
            # first, so nothing writes the workspace: the host reads it, running no git of
            # the workspace's, following no link. Removal never depends on the engine.
            print(f"am: warning: {e.message}; snapshotting on the host", file=sys.stderr)
            snap = snapshot.create(record, layout, on_host=True)
        print(f"Saved unsaved work of {record['id']} to {snap}", file=sys.stderr)
    delete(record, store, layout)
    return snap

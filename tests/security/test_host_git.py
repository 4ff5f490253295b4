"""Property 1: host-side git never runs repository-controlled code.

Each attack is planted the way an agent would: by writing into its workspace. Its positive
control runs plain git there and sees the marker; then every am command that runs git in a
workspace (diff, rm's unsaved check, snapshot, clean, doctor) must leave no marker, and either
refuse naming what it refused or work safely. `am rm --force` must still delete the workspace.
"""

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import assert_am_error, git

from .conftest import plain_git

PROPERTY = "1 host git runs no repository code"


def cfg(ws: Path, key: str, value: str, *extra: str) -> None:
    git("config", "--file", ws / ".git" / "config", *extra, key, value)


def modify(ws: Path) -> None:
    (ws / "README").write_text("changed by the agent\n")


# --- the attacks: plant(ws, markers) and control(ws) ---------------------------------------


def plant_fsmonitor(ws, m):
    cfg(ws, "core.fsmonitor", m.payload())
    modify(ws)


def control_status(ws):
    plain_git(ws, "status")


def plant_diff_external(ws, m):
    cfg(ws, "diff.external", m.payload())
    modify(ws)


def control_diff(ws):
    plain_git(ws, "diff")


def plant_textconv(ws, m):
    (ws / ".gitattributes").write_text("* diff=evil\n")
    cfg(ws, "diff.evil.textconv", m.payload())
    modify(ws)


def plant_filter_clean(ws, m):
    (ws / ".gitattributes").write_text("* filter=evil\n")
    cfg(ws, "filter.evil.clean", m.payload())
    modify(ws)


def control_add(ws):
    plain_git(ws, "add", "--all")


def plant_filter_smudge(ws, m):
    (ws / ".gitattributes").write_text("* filter=evil\n")
    cfg(ws, "filter.evil.smudge", m.payload())
    (ws / "README").unlink()


def control_checkout(ws):
    plain_git(ws, "checkout", "--", "README")


def plant_filter_process(ws, m):
    (ws / ".gitattributes").write_text("* filter=evil\n")
    cfg(ws, "filter.evil.process", m.payload())
    modify(ws)


def plant_pager(ws, m):
    cfg(ws, "core.pager", m.payload())


def control_log_on_tty(ws):
    plain_git(ws, "log", "-1", tty=True)


def plant_editor(ws, m):
    cfg(ws, "core.editor", m.payload())


def control_commit_no_message(ws):
    plain_git(ws, "commit", "--allow-empty")


def plant_ssh_command(ws, m):
    cfg(ws, "core.sshCommand", m.payload())
    cfg(ws, "remote.origin.url", "ssh://git.invalid/repo.git")


def control_fetch(ws):
    plain_git(ws, "fetch", "origin")


def plant_credential_helper(ws, m):
    cfg(ws, "credential.helper", "!" + m.payload())


def control_credential_fill(ws):
    plain_git(ws, "credential", "fill", input="protocol=https\nhost=git.invalid\n\n")


def plant_include(ws, m):
    (ws / "evil.cfg").write_text(f"[core]\n\tfsmonitor = {m.payload()}\n")
    cfg(ws, "include.path", str(ws / "evil.cfg"))
    modify(ws)


def plant_include_if(ws, m):
    (ws / "evil.cfg").write_text(f"[core]\n\tfsmonitor = {m.payload()}\n")
    cfg(ws, "includeIf.gitdir:/.path", str(ws / "evil.cfg"))
    modify(ws)


def plant_gpg(ws, m):
    # git runs gpg.program directly (no shell): the agent points it at a script of its own
    script = ws / "tools" / "gpg"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\n{m.payload()}\n")
    script.chmod(0o755)
    cfg(ws, "gpg.program", str(script))
    cfg(ws, "commit.gpgSign", "true")


def control_commit(ws):
    plain_git(ws, "commit", "--allow-empty", "-m", "x")


def plant_uploadpack(ws, m):
    cfg(ws, "uploadpack.packObjectsHook", m.payload())


def control_clone_from(ws):
    # git itself honours this key only from protected (global/system/command-line) config: the
    # control reads the planted file with that scope, as a tool merging configs naively would.
    out = ws.parent / f"{ws.name}-clone"
    subprocess.run(
        ["git", "clone", "-q", "--no-local", str(ws), str(out)],
        capture_output=True,
        env={
            **__import__("conftest").GIT_ID,
            "PATH": __import__("os").environ["PATH"],
            "HOME": str(ws.parent),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(ws / ".git" / "config"),
        },
    )
    shutil.rmtree(out, ignore_errors=True)


def plant_core_worktree(ws, m):
    outside = m.folder.parent / "outside"
    outside.mkdir()
    (outside / "host-secret").write_text("SECRET-OF-THE-HOST\n")
    cfg(ws, "core.worktree", str(outside))
    m.secret = "SECRET-OF-THE-HOST"


def control_core_worktree(ws, m):
    res = plain_git(ws, "add", "--all")
    res = plain_git(ws, "diff", "--cached", "HEAD")
    assert m.secret in res.stdout  # git read a file outside the workspace
    m.path().touch()


def plant_commondir(ws, m):
    evil = ws / "evil-common"
    shutil.copytree(ws / ".git", evil)
    git("config", "--file", evil / "config", "core.fsmonitor", m.payload())
    (ws / ".git" / "commondir").write_text("../evil-common\n")
    modify(ws)


def plant_gitdir_file(ws, m):
    evil = ws / "evil-gitdir"
    shutil.move(ws / ".git", evil)
    git("config", "--file", evil / "config", "core.fsmonitor", m.payload())
    (ws / ".git").write_text(f"gitdir: {evil}\n")
    modify(ws)


def plant_bare_root(ws, m):
    """The workspace itself becomes a repository with no .git: plain git discovers it."""
    for entry in (ws / ".git").iterdir():
        shutil.move(entry, ws / entry.name)
    (ws / ".git").rmdir()
    git("config", "--file", ws / "config", "core.bare", "false")
    git("config", "--file", ws / "config", "core.worktree", str(ws))
    git("config", "--file", ws / "config", "core.fsmonitor", m.payload())


def plant_submodule(ws, m):
    """A checked-out submodule whose own config holds a filter: plain status enters it."""
    sub = ws / "sub"
    sub.mkdir()
    git("init", "-q", cwd=sub)
    (sub / "f").write_text("x\n")
    (sub / ".gitattributes").write_text("* filter=evil\n")
    git("add", ".", cwd=sub)
    git("commit", "-qm", "sub", cwd=sub)
    git("add", "sub", cwd=ws)
    git("commit", "-qm", "add submodule", cwd=ws)
    git("config", "--file", sub / ".git" / "config", "filter.evil.clean", m.payload())
    (sub / "f").write_text("changed\n")


# Git never reads the workspace's configuration (am.workspace gives it a git folder of am's
# own), so planted keys are not refused: they are simply never read, and am diff shows the
# agent's work. Only a layout am did not make (a .git file or none) is refused.
REFUSED = "refusing to read the workspace"
ATTACKS = {
    # name: (plant, control, what am's refusal names, or None when it works safely)
    "core.fsmonitor": (plant_fsmonitor, control_status, None),
    "diff.external": (plant_diff_external, control_diff, None),
    "textconv": (plant_textconv, control_diff, None),
    "filter.clean": (plant_filter_clean, control_add, None),
    "filter.smudge": (plant_filter_smudge, control_checkout, None),
    "filter.process": (plant_filter_process, control_add, None),
    "core.pager": (plant_pager, control_log_on_tty, None),
    "core.editor": (plant_editor, control_commit_no_message, None),
    "core.sshCommand": (plant_ssh_command, control_fetch, None),
    "credential.helper": (plant_credential_helper, control_credential_fill, None),
    "include.path": (plant_include, control_status, None),
    "includeIf": (plant_include_if, control_status, None),
    "gpg.program": (plant_gpg, control_commit, None),
    "uploadpack.packObjectsHook": (plant_uploadpack, control_clone_from, None),
    "commondir": (plant_commondir, control_status, None),
    ".git file (gitdir redirection)": (
        plant_gitdir_file,
        control_status,
        "its .git is not the folder am cloned",
    ),
    "bare repository at the root": (
        plant_bare_root,
        control_status,
        "its .git is not the folder am cloned",
    ),
    "submodule config": (plant_submodule, control_status, None),
}


def am_commands_leave_no_marker(am, agent_id, ws, markers, refusal):
    """Every am command that runs git in a workspace: none may run the planted code."""
    diff = am("diff", agent_id, check=False)
    if refusal:
        line = assert_am_error(diff)
        assert REFUSED in line and refusal in line, line
        assert "hint:" in line
    else:
        assert diff.returncode == 0, diff.stderr
    assert markers.fired() == [], "am diff"
    snap = am("snapshot", agent_id)
    assert Path(snap.stdout.strip()).is_file()
    assert markers.fired() == [], "am snapshot"
    am("doctor", check=False)
    assert markers.fired() == [], "am doctor"
    rm = am("rm", agent_id, check=False)  # unsaved-work check
    if refusal:
        line = assert_am_error(rm)
        assert "unsaved work" in line and "not inspected" in line and refusal in line, line
    assert markers.fired() == [], "am rm"
    if rm.returncode == 0:
        assert not ws.exists()  # a planted config alone is no one's work
        return
    assert "unsaved work" in rm.stderr
    clean = am("clean")
    assert f"Kept {agent_id}" in clean.stderr and ws.exists()
    assert markers.fired() == [], "am clean"
    am("rm", "--force", agent_id)  # never lose the ability to remove
    assert not ws.exists()
    assert markers.fired() == [], "am rm --force"


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_planted_config_never_runs(am, agent, markers, attack):
    plant, control, refusal = ATTACKS[attack]
    agent_id, ws = agent
    plant(ws, markers)
    if control is control_core_worktree:
        control(ws, markers)
    else:
        control(ws)
    markers.take()
    am_commands_leave_no_marker(am, agent_id, ws, markers, refusal)


def test_core_worktree_is_never_read_and_nothing_outside_is_read(am, agent, markers):
    agent_id, ws = agent
    plant_core_worktree(ws, markers)
    control_core_worktree(ws, markers)
    markers.take()
    modify(ws)
    diff = am("diff", agent_id)
    assert "+changed by the agent" in diff.stdout  # the workspace itself, not the outside
    assert markers.secret not in diff.stdout + diff.stderr
    am_commands_leave_no_marker(am, agent_id, ws, markers, None)


def test_hooks_never_run(am, agent, markers):
    """Hooks in .git/hooks and under core.hooksPath: am diff stages files (which fires
    post-index-change in plain git), and works here because the hooks path is pinned."""
    agent_id, ws = agent
    hook = f"#!/bin/sh\n{markers.payload()}\n"
    for folder in (ws / ".git" / "hooks", ws / "githooks"):
        folder.mkdir(exist_ok=True)
        for name in ("post-index-change", "pre-commit", "post-checkout", "fsmonitor-watchman"):
            (folder / name).write_text(hook)
            (folder / name).chmod(0o755)
    plain_git(ws, "add", "--all", "--intent-to-add", "githooks")
    markers.take()  # .git/hooks fired
    cfg(ws, "core.hooksPath", str(ws / "githooks"))
    plain_git(ws, "commit", "--allow-empty", "-m", "x")
    markers.take()  # core.hooksPath fired
    modify(ws)
    diff = am("diff", agent_id)
    assert "changed by the agent" in diff.stdout
    assert markers.fired() == []
    am_commands_leave_no_marker(am, agent_id, ws, markers, None)


def test_embedded_bare_repository(am, agent, markers):
    """A bare repository committed inside the workspace: plain git run in that folder obeys
    it; am names the git folder explicitly, and safe.bareRepository=explicit refuses it too."""
    agent_id, ws = agent
    bare = ws / "vendor" / "evil.git"
    git("init", "-q", "--bare", bare)
    git("config", "--file", bare / "config", "core.bare", "false")
    git("config", "--file", bare / "config", "core.worktree", str(ws / "vendor"))
    git("config", "--file", bare / "config", "core.fsmonitor", markers.payload())
    plain_git(bare, "status")
    markers.take()
    from am import git as amgit

    refused = subprocess.run(
        ["git", "-C", str(bare), "-c", "safe.bareRepository=explicit", "status"],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "bare" in refused.stderr
    assert "safe.bareRepository=explicit" in amgit.HARDENING
    assert markers.fired() == []
    am_commands_leave_no_marker(am, agent_id, ws, markers, None)


def test_worktree_gitdir_redirection(am, wt_agent, markers):
    """A worktree's .git file pointed at a git folder the agent made in its workspace."""
    agent_id, ws = wt_agent
    real = Path((ws / ".git").read_text().split(":", 1)[1].strip())
    evil = ws / "evil"
    shutil.copytree(real, evil / "worktrees" / "x")
    for name in ("HEAD", "objects", "refs"):
        src = real.parent.parent / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, evil / name)
    (evil / "config").write_text(f"[core]\n\tfsmonitor = {markers.payload()}\n")
    (ws / ".git").write_text(f"gitdir: {evil / 'worktrees' / 'x'}\n")
    modify(ws)
    plain_git(ws, "status")
    markers.take()
    line = assert_am_error(am("diff", agent_id, check=False))
    assert REFUSED in line and "not to a worktree of" in line
    am_commands_leave_no_marker(am, agent_id, ws, markers, "not to a worktree of")


def test_worktree_config_worktree_is_checked(am, wt_agent, repo, markers):
    """The per-worktree config (read when the repository enables worktreeConfig)."""
    agent_id, ws = wt_agent
    git("config", "extensions.worktreeConfig", "true", cwd=repo)
    gd = Path((ws / ".git").read_text().split(":", 1)[1].strip())
    (gd / "config.worktree").write_text(f"[core]\n\tfsmonitor = {markers.payload()}\n")
    modify(ws)
    plain_git(ws, "status")
    markers.take()
    assert "+changed by the agent" in am("diff", agent_id).stdout
    am_commands_leave_no_marker(am, agent_id, ws, markers, None)


def test_hardening_layer_alone(am, agent, markers):
    """Defence in depth: with the allowlist bypassed, ws_git's -c overrides and clean
    environment still stop the keys they pin (git's command line beats the repository)."""
    from am import git as amgit
    from am.gitsafe import Repo

    agent_id, ws = agent
    for key in (
        "core.fsmonitor",
        "diff.external",
        "core.pager",
        "core.editor",
        "core.sshCommand",
        "gpg.program",
    ):
        cfg(ws, key, markers.payload())
    cfg(ws, "credential.helper", "!" + markers.payload())
    cfg(ws, "commit.gpgSign", "true")
    modify(ws)
    repo = Repo(ws, ws / ".git", ws / ".git")
    for args in (
        ("status",),
        ("diff",),
        ("log", "-1"),
        ("add", "--all"),
        ("commit", "-m", "x"),
        ("fetch", "ssh://git.invalid/x"),
    ):
        amgit.ws_git(repo, *args, check=False)
    amgit.ws_git(repo, "credential", "fill", check=False)
    assert markers.fired() == []
    plain_git(ws, "status")
    markers.take()

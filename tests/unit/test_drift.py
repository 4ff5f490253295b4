"""drift.find and doctor.fix called directly, on a private AM_HOME with real git (no engine):
each kind of drift that needs no container is found, and fixed as the handler says."""

import os
import re
import subprocess

import pytest
from helpers import git

from am import drift, gitsafe, paths
from am.commands import doctor
from am.record import Record, Status
from am.store import open_store


@pytest.fixture
def layout(tmp_path, monkeypatch):
    monkeypatch.setenv("AM_HOME", str(tmp_path / "home"))
    lay = paths.layout()
    paths.private_dir(lay.workspaces)
    return lay


def add_record(layout, agent_id, **fields) -> dict:
    record = Record(
        agent_id, str(layout.workspace(agent_id)), str(layout.log_file(agent_id)), str(layout.root)
    ).as_dict()
    record.update(fields)
    with open_store(layout).transaction() as agents:
        agents[agent_id] = record
    return record


def kinds(found) -> list[tuple[str, str]]:
    return sorted((d.kind, d.subject) for d in found)


def test_find_reports_each_kind_and_nothing_for_a_sound_agent(layout):
    add_record(layout, "sound", status=Status.STOPPED)
    layout.workspace("sound").mkdir()
    add_record(layout, "stale")  # starting, and no spawn alive: a spawn that never finished
    layout.workspace("stale").mkdir()
    add_record(layout, "bad", workspace="/etc")
    (layout.workspaces / "left").mkdir()
    (layout.workspaces / ".hidden").mkdir()  # am's own temporary folders start with a dot
    (layout.workspaces / ".restore-gone+k2j4_x9a").mkdir()  # but a dead restore's is told
    assert kinds(drift.find(layout)) == [
        ("invalid-record", "bad"),
        ("leftover-restore", str(layout.workspaces / ".restore-gone+k2j4_x9a")),
        ("orphan-workspace", str(layout.workspaces / "left")),
        ("stale-spawn", "stale"),
    ]


def test_find_reports_a_stale_worktree_of_a_recorded_source(layout, repo):
    gone = layout.workspaces / "wt"
    git("worktree", "add", "-q", "-b", "am/wt", str(gone), cwd=repo)
    subprocess.run(["rm", "-rf", str(gone)], check=True)
    add_record(layout, "wt", status=Status.STOPPED, worktree=True, source=str(repo))
    found = [d for d in drift.find(layout) if d.kind == "stale-worktree"]
    assert [d.subject for d in found] == [str(repo)]
    assert doctor.fix(found[0], open_store(layout), layout) == "pruned"
    assert "wt" not in git("worktree", "list", cwd=repo)


def test_fix_removes_an_invalid_record_only(layout):
    add_record(layout, "bad", workspace="/etc")
    (d,) = [d for d in drift.find(layout) if d.kind == "invalid-record"]
    assert doctor.fix(d, open_store(layout), layout).startswith("removed the record only")
    assert open_store(layout).agents() == {} and os.path.isdir("/etc")


def test_fix_of_orphan_workspaces(layout, repo):
    empty = layout.workspaces / "empty"
    empty.mkdir()
    loose = layout.workspaces / "loose"
    loose.mkdir()
    (loose / "notes.txt").write_text("not a clone\n")
    link = layout.workspaces / "link"
    link.symlink_to(repo)
    work = layout.workspaces / "work"
    git("clone", "-q", str(repo), str(work))
    (work / "new.txt").write_text("unsaved\n")
    store = open_store(layout)
    fixed = {d.subject: doctor.fix(d, store, layout) for d in drift.find(layout)}
    assert fixed[str(link)] == "removed" and not os.path.lexists(link)
    assert (repo / "README").exists()  # a link is removed, never followed
    assert fixed[str(work)] == "kept: adopted as stopped agent work"
    adopted = store.agents()["work"]
    assert adopted["status"] == "stopped" and adopted["adopted"] is True
    assert (work / "new.txt").exists()
    assert fixed[str(empty)] == "removed (empty)" and not empty.exists()
    assert fixed[str(loose)].startswith("left alone") and (loose / "notes.txt").exists()
    assert [d.subject for d in drift.find(layout)] == [str(loose)]


@pytest.mark.parametrize(
    "key, ok",
    [
        ("core.bare", True),
        ("Core.FileMode", True),
        ("remote.origin.url", True),
        ("remote.a.b.c.fetch", True),
        ("branch.Main.merge", True),
        ("core.hooksPath", True),
        ("core.fsmonitor", False),
        ("core.sshCommand", False),
        ("core.worktree", False),
        ("include.path", False),
        ("includeIf.gitdir:/x/.path", False),
        ("remote.origin.uploadpack", False),
        ("filter.lfs.smudge", False),
        ("remote.url", False),
        ("core.pager", False),
        ("diff.external", False),
    ],
)
def test_gitsafe_allowed(key, ok):
    assert gitsafe.allowed(key) is ok


def test_gitsafe_check_config_names_the_refused_key(tmp_path):
    config = tmp_path / "config"
    config.write_text('[remote "origin"]\n\turl = /x\n[core]\n\tbare = false\n')
    gitsafe.check_config(config, tmp_path)
    config.write_text("[core]\n\tbare = false\n\tfsmonitor = touch /tmp/pwned\n")
    with pytest.raises(gitsafe.Refused, match="sets 'core.fsmonitor'"):
        gitsafe.check_config(config, tmp_path)


@pytest.mark.parametrize("plant", ["link", "fifo", "unreadable"])
def test_gitsafe_open_clone_refuses_a_link_or_special_file_deep_in_its_git_folder(
    tmp_path, plant, monkeypatch
):
    """The clone's whole .git tree is checked, however deep: the control opens it clean."""
    src, ws = tmp_path / "src", tmp_path / "ws"
    git("init", "-q", src)
    (src / "a").write_text("a\n")
    git("-C", src, "add", "a")
    git("-C", src, "-c", "user.name=t", "-c", "user.email=t@l", "commit", "-qm", "a")
    git("clone", "-q", "--no-checkout", "--no-hardlinks", src, ws)
    assert gitsafe.open_clone(ws).git_dir == ws / ".git"  # the control
    deep = next(p for p in (ws / ".git" / "objects").iterdir() if len(p.name) == 2)
    if plant == "link":
        (deep / "planted").symlink_to("/etc/shadow")
        said = "holds a symbolic link: " + str(deep / "planted")
    elif plant == "fifo":
        os.mkfifo(deep / "planted")
        said = "holds a special file: " + str(deep / "planted")
    else:  # root reads any folder: the listing's own failure stands in for chmod 000
        real = os.scandir
        monkeypatch.setattr(
            os, "scandir", lambda p: real(p) if p != str(deep) else real(tmp_path / "none")
        )
        said = f"cannot read {deep}: No such file or directory"
    with pytest.raises(gitsafe.Refused, match=re.escape(said)):
        gitsafe.open_clone(ws)


def test_every_kind_has_a_fix():
    assert set(doctor.FIXES) == set(drift.Kind)


def test_a_record_written_since_the_look_claims_what_it_names():
    from am.drift import Drift, Kind, claimed

    records = {
        "a1": {"id": "a1", "session": "am-a1", "workspace": "/h/agents/a1"},
        "c1": {"id": "c1", "container": "am-c1", "workspace": "/h/agents/c1"},
        "bad": {"id": "bad", "workspace": 7},  # a hostile record: no traceback
    }
    assert claimed(Drift(Kind.ORPHAN_SESSION, "am-a1", ""), records)
    assert not claimed(Drift(Kind.ORPHAN_SESSION, "am-zz", ""), records)
    assert claimed(Drift(Kind.ORPHAN_CONTAINER, "am-c1", ""), records)
    assert not claimed(Drift(Kind.ORPHAN_CONTAINER, "am-a1", ""), records)
    assert claimed(Drift(Kind.ORPHAN_WORKSPACE, "/h/agents/c1", ""), records)
    assert not claimed(Drift(Kind.ORPHAN_WORKSPACE, "/h/agents/zz", ""), records)
    assert claimed(Drift(Kind.ORPHAN_DISK, "/h/disks/a1.ext4", ""), records)
    assert claimed(Drift(Kind.ORPHAN_DISK, "/h/disks/a1.ext4.partial", ""), records)
    assert not claimed(Drift(Kind.ORPHAN_DISK, "/h/disks/zz.ext4", ""), records)
    # a proxy: its agent's spawn or run; an outside network: any spawn under way
    assert not claimed(Drift(Kind.ORPHAN_PROXY, "am_proxy-a1", ""), records)
    assert not claimed(Drift(Kind.ORPHAN_NETWORK, "am_egress-x", ""), records)
    records["a1"]["status"] = "starting"
    assert claimed(Drift(Kind.ORPHAN_PROXY, "am_proxy-a1", ""), records)
    assert claimed(Drift(Kind.ORPHAN_NETWORK, "am_egress-x", ""), records)
    records["a1"]["status"] = "exited"
    assert not claimed(Drift(Kind.ORPHAN_PROXY, "am_proxy-a1", ""), records)
    # what a spawn never makes is never 'claimed'
    assert not claimed(Drift(Kind.INVALID_RECORD, "a1", ""), records)


def test_the_folder_of_a_restore_at_work_is_its_own_and_a_dead_ones_goes(layout):
    from am import clock

    restore = subprocess.Popen(["sh", "-c", "sleep 60", "am"])  # 'am' in its command line
    try:
        add_record(
            layout, "r.1-x", status=Status.STARTING, spawn_pid=restore.pid, created=clock.iso()
        )
        mine = layout.workspaces / ".restore-r.1-x+ab_cd012"
        old = layout.workspaces / ".restore-ab_cd012"  # an older am's: any live restore's
        dead = layout.workspaces / ".restore-r.1+ab_cd012"  # no record: its restore died
        for folder in (mine, old, dead):
            folder.mkdir()
        (dead / "f").write_text("x")
        (dead / "link").symlink_to("/etc")
        found = [d for d in drift.find(layout) if d.kind == "leftover-restore"]
        assert [d.subject for d in found] == [str(dead)]
        records = open_store(layout).agents()
        assert drift.claimed(drift.Drift(drift.Kind.LEFTOVER_RESTORE, str(mine), ""), records)
        assert drift.claimed(drift.Drift(drift.Kind.LEFTOVER_RESTORE, str(old), ""), records)
        assert doctor.fix(found[0], open_store(layout), layout) == "removed"
        assert not dead.exists() and os.path.isdir("/etc") and mine.is_dir()
        assert doctor.fix(found[0], open_store(layout), layout).startswith("already gone")
    finally:
        restore.kill()
        restore.wait()
    # Its restore gone, the agent's folder is a leftover too.
    assert len([d for d in drift.find(layout) if d.kind == "leftover-restore"]) == 2


def test_a_held_restore_folder_is_told_by_its_lock_not_by_a_record(layout):
    """A restore holds its folder's lock file: at work while it does, whatever the records
    say (none names it here, as after its pid was reused or its record went); left over
    once nobody holds it, and then removed under doctor's own hold."""
    from am import files

    folder = layout.workspaces / ".restore-back+ab_cd012"
    folder.mkdir(parents=True)
    fd = files.create_locked(folder / files.HELD)
    (folder / "root").mkdir()
    (folder / "root" / "f").write_text("x")
    try:
        assert [d for d in drift.find(layout) if d.kind == "leftover-restore"] == []
        d = drift.Drift(drift.Kind.LEFTOVER_RESTORE, str(folder), "")
        assert drift.claimed(d, open_store(layout).agents())
        assert doctor.fix(d, open_store(layout), layout).startswith("left alone")
        assert (folder / "root" / "f").exists()
    finally:
        os.close(fd)
    (found,) = [d for d in drift.find(layout) if d.kind == "leftover-restore"]
    assert found.subject == str(folder)
    assert not drift.claimed(found, open_store(layout).agents())
    assert doctor.fix(found, open_store(layout), layout) == "removed"
    assert not folder.exists()


@pytest.mark.parametrize("moment", ["scandir", "rmdir"])
def test_a_restore_that_locks_its_folder_as_doctor_takes_it_keeps_it(layout, monkeypatch, moment):
    """Doctor found an empty restore folder (between the restore's mkdtemp and its lock file,
    no record naming it); the restore makes its lock file and unpacks the moment doctor
    looks inside, or the moment it removes the folder it saw empty: doctor must leave it,
    not remove it whole."""
    from am import files

    folder = layout.workspaces / ".restore-back+ab_cd012"
    folder.mkdir(parents=True)
    (found,) = [d for d in drift.find(layout) if d.kind == "leftover-restore"]
    real, held = getattr(os, moment), []

    def at(path) -> bool:  # by name, or by descriptor (as shutil.rmtree looks)
        if isinstance(path, int):
            return folder.exists() and os.path.samestat(os.fstat(path), os.stat(folder))
        return os.fspath(path) == str(folder)

    def restore_moves_on(path=".", *args, **kw):
        if at(path) and not held:
            held.append(files.create_locked(folder / files.HELD))
            (folder / "root").mkdir()
        return real(path, *args, **kw)

    monkeypatch.setattr(os, moment, restore_moves_on)
    try:
        said = doctor.fix(found, open_store(layout), layout)
        assert said == "left alone: a restore is at work on it"
        assert held and (folder / files.HELD).exists() and (folder / "root").is_dir()
    finally:
        for fd in held:
            os.close(fd)


def test_the_parts_of_a_snapshot_at_work_are_its_own_and_a_dead_ones_go(layout):
    from am import files, snapshot

    folder = layout.snapshots
    working, working_tmp, fd = snapshot.reserve(folder, "w")
    with files.held_temp_dir(folder, snapshot.PACK_TEMP) as working_pack:
        dead = folder / "d-20260101T000000Z.tar.partial"
        os.close(files.create_locked(dead))  # as a kill leaves it: made, and no longer held
        dead_pack = folder / ".pack-ef_gh"
        dead_pack.mkdir()
        os.close(files.create_locked(dead_pack / files.HELD))  # likewise
        (dead_pack / "incoming.pack").write_bytes(b"PACK")
        link = folder / "l.tar.partial"  # no snapshot's
        link.symlink_to("/etc/passwd")
        users = [folder / ".pack-mine", folder / "mine.partial"]  # folders with no lock file
        for f in users:
            f.mkdir()
            (f / "notes").write_text("mine")
        empty = folder / ".pack-empty"  # a kill before its lock file was made
        empty.mkdir()
        finished = folder / "f-20260101T000000Z.tar.gz"
        finished.write_bytes(b"whole")
        try:
            found = [d for d in drift.find(layout) if d.kind == "leftover-snapshot"]
            assert sorted(d.subject for d in found) == sorted(
                map(str, (dead, dead_pack, link, empty))
            )
            store = open_store(layout)
            assert {doctor.fix(d, store, layout) for d in found} == {"removed", "removed (empty)"}
            for live in (working_tmp, working_pack):
                d = drift.Drift(drift.Kind.LEFTOVER_SNAPSHOT, str(live), "")
                assert doctor.fix(d, store, layout) == "left alone: a snapshot is at work on it"
            assert os.path.isfile("/etc/passwd")
        finally:
            os.close(fd)  # its writer dies
        assert [d.subject for d in drift.find(layout) if d.kind == "leftover-snapshot"] == [
            str(working_tmp)
        ]  # the pack folder is still held
    assert sorted(os.listdir(folder)) == sorted(
        [finished.name, working_tmp.name] + [f.name for f in users]
    )


def test_a_held_folder_that_doctor_took_between_its_making_and_its_lock_is_made_anew(
    tmp_path, monkeypatch
):
    import fcntl

    from am import files

    real_flock, taken = fcntl.flock, []

    def flock(fd, op):
        if not taken:  # doctor comes between the lock file's making and its lock
            (made,) = [p for p in tmp_path.iterdir()]
            taken.append(made)
            held = files.take_if_free(made / files.HELD)
            assert held is not None and files.held_left_by_a_kill(made) is False
            import shutil

            shutil.rmtree(made)
            os.close(held)
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    with files.held_temp_dir(tmp_path, "bundle-") as path:
        assert path != taken[0] and (path / files.HELD).is_file()
        assert not files.held_left_by_a_kill(path)
    assert list(tmp_path.iterdir()) == []


def test_fix_of_a_stale_worktree_spawn_deletes_only_a_branch_it_made_and_nothing_lost(layout, repo):
    def stale(name, branch=None):  # a killed worktree spawn's record
        add_record(layout, name, worktree=True, source=str(repo), branch=branch or f"am/{name}")

    def worktree(name, *at):
        git("worktree", "add", "-q", "-b", f"am/{name}", str(layout.workspace(name)), *at, cwd=repo)

    worktree("made")
    stale("made")
    git("branch", "am/kept", cwd=repo)  # the user's own: the spawn died before its worktree
    stale("kept")
    tree = git("rev-parse", "HEAD^{tree}", cwd=repo).strip()
    lone = git("commit-tree", "-m", "only here", tree, cwd=repo).strip()
    worktree("lone", lone)
    stale("lone")
    fetched = git("commit-tree", "-m", "only here and on a remote's", tree, cwd=repo).strip()
    git("update-ref", "refs/remotes/origin/gone-soon", fetched, cwd=repo)
    worktree("remote", fetched)
    stale("remote")
    linked = git("commit-tree", "-m", "only here, and a link to it", tree, cwd=repo).strip()
    worktree("linked", linked)
    git("symbolic-ref", "refs/heads/alias", "refs/heads/am/linked", cwd=repo)
    stale("linked")
    # A hand-made record: its workspace a link to the user's repository, its branch theirs.
    os.symlink(repo, layout.workspace("forged"))
    stale("forged", branch="main")
    store = open_store(layout)
    said = {
        d.subject: doctor.fix(d, store, layout)
        for d in drift.find(layout)
        if d.kind == "stale-spawn"
    }
    gone = "stopped, and removed the record and its workspace (its agent never ran)"
    assert said["made"] == (
        f"{gone}; deleted the branch am/made it had made in {repo} (its commit is kept elsewhere)"
    )
    assert said["kept"] == f"{gone}; the branch am/kept stays in {repo}: am cannot tell that " + (
        "this spawn made it"
    )
    for name in ("lone", "linked", "remote"):  # a remote's ref goes with the next prune
        assert said[name] == (
            f"{gone}; kept the branch am/{name} it had made in {repo}: its commit is on no other "
            "branch or tag"
        )
    assert "deleted" not in said["forged"] and (repo / ".git").is_dir()  # the link went alone
    branches = git("branch", "--list", "--format=%(refname:short)", cwd=repo).split()
    assert sorted(branches) == [
        "alias",
        "am/kept",
        "am/linked",
        "am/lone",
        "am/remote",
        "main",
        "side",
    ]
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo).strip() == "main"
    assert open_store(layout).agents() == {}


def test_fix_of_a_stale_spawn_whose_agent_started_checks_its_work_even_with_no_log(layout, repo):
    """Its spec was written (the agent may have run), its log is gone: its workspace is still
    checked for unsaved work, never deleted unread."""
    ws = layout.workspace("w1")
    git("worktree", "add", "-q", "-b", "am/w1", str(ws), cwd=repo)
    (ws / "wip.txt").write_text("precious\n")
    paths.private_dir(layout.run)
    (layout.run / "w1.spec.json").write_text("{}")
    add_record(layout, "w1", worktree=True, source=str(repo), branch="am/w1")
    (d,) = [d for d in drift.find(layout) if d.kind == "stale-spawn"]
    said = doctor.fix(d, open_store(layout), layout)
    assert said.startswith("stopped, and kept as a stopped agent: unsaved work"), said
    assert (ws / "wip.txt").read_text() == "precious\n"
    assert git("branch", "--list", "am/w1", cwd=repo).strip()

"""A head start's folder, with real git in a real AM_HOME (in this process): what is removed
goes through the folder it made, never a link put in its place; a file system without locks
leaves nothing; a failing step is the spawn's to redo, not a traceback; and a Ctrl-C while
a partial clone is removed waits until it is gone."""

import fcntl
import os
import shutil
import signal

import pytest

from am import gitsafe, headstart


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "amhome"
    (home / "agents").mkdir(parents=True, mode=0o700)
    monkeypatch.setenv("AM_HOME", str(home))
    yield home
    headstart.discard()


def folders(home):
    return sorted(p.name for p in (home / "agents").iterdir())


def begun(repo):
    headstart.begin([str(repo), "--cmd", "sleep 1"])
    early = headstart._early
    assert early is not None  # the head start is under way
    return early


def test_a_link_put_in_place_of_its_folder_is_not_followed(home, repo, tmp_path):
    early = begun(repo)
    early.clone.wait()
    outside = tmp_path / "outside"
    (outside / "ws").mkdir(parents=True)
    (outside / "ws" / "keep.txt").write_text("mine\n")
    moved = tmp_path / "moved-away"
    os.rename(early.folder, moved)  # a process of the user's swaps in a link
    os.symlink(outside, early.folder)
    headstart.discard()
    assert (outside / "ws" / "keep.txt").read_text() == "mine\n"
    assert os.path.islink(early.folder)  # left as it was, not removed through
    assert not (moved / "ws").exists()  # what it made is gone all the same
    # positive control: by its path, as before, the removal goes through the link
    shutil.rmtree(os.path.join(early.folder, "ws"))
    assert not (outside / "ws").exists()


def test_a_file_system_without_locks_leaves_nothing(home, repo, monkeypatch):
    def no_locks(fd, op):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    headstart.begin([str(repo)])
    assert headstart._early is None
    assert folders(home) == []  # neither the folder nor its lock file


def test_a_step_that_fails_otherwise_is_left_to_the_spawn(home, repo, monkeypatch):
    def vanished(path):
        raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr(gitsafe, "open_clone", vanished)
    early = begun(repo)
    early.advance(wait=None)  # the clone has ended: the check runs and fails
    assert early.failed and early.finish is None
    headstart.discard()
    assert folders(home) == []


@pytest.mark.parametrize("guarded", [True, False])
def test_an_interrupt_while_it_is_removed_waits_until_it_is_gone(home, repo, monkeypatch, guarded):
    """The control (GUARDED false) removes it as before, with no signal held: the interrupt
    breaks off the removal and leaves the partial clone."""
    early = begun(repo)
    early.clone.wait()
    real = shutil.rmtree

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C, in the middle of it
        return real(*args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        if guarded:
            headstart.discard()
        else:
            headstart._early = None
            early.discard()
    assert (folders(home) == []) is guarded
    if not guarded:
        monkeypatch.setattr(shutil, "rmtree", real)
        early.discard()

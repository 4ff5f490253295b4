"""What a spawn's head start guesses from its arguments alone (pure)."""

import pytest

from am import ids
from am.headstart import predict


def guessed(argv):
    g = predict(argv)
    return g and (g.source, g.container, g.name, g.branch)


def test_a_plain_spawn_is_guessed():
    assert guessed(["/r", "--cmd", "sleep 600"]) == ("/r", False, None, None)
    assert guessed(["/r", "--container", "--runtime", "podman"]) == ("/r", True, None, None)


def test_name_and_branch_are_read_in_both_forms():
    assert guessed(["/r", "--name", "n1", "--branch=b/x"]) == ("/r", False, "n1", "b/x")
    assert guessed(["/r", "--name=n2", "--branch", "b"]) == ("/r", False, "n2", "b")


def test_a_value_that_looks_like_an_option_is_no_value():
    # argparse reads '--branch -x' as a missing value: the spawn fails, the guess is empty
    assert guessed(["/r", "--branch", "-x"]) == ("/r", False, None, None)
    assert guessed(["/r", "--branch=-x"]) == ("/r", False, None, None)
    assert guessed(["/r", "--name"]) == ("/r", False, None, None)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--container", "/r"],  # the source is not first: not guessed
        ["/r", "--worktree"],
        ["/r", "--disk", "1g"],
        ["/r", "--count", "3"],
        ["/r", "--count=3"],
        ["/r", "--base", "v1"],
        ["/r", "--base=v1"],
        ["/r", "--help"],
        ["/r", "-h"],
        ["/r", "--container", "--runtime", "kubernetes"],
        ["/r", "--container", "--runtime=kubernetes"],
        ["/r", "--", "x"],
    ],
)
def test_anything_but_one_plain_clone_is_not_guessed(argv):
    assert predict(argv) is None


def test_a_drawn_id_is_the_next_new_one_and_can_be_taken_back():
    drawn = ids.draw()
    assert ids.new_id() == drawn
    assert ids.new_id() != drawn
    again = ids.draw()
    ids.undraw(again)
    assert ids.new_id() != again


def test_the_guessed_source_is_the_path_the_spawn_checks(repo, tmp_path, monkeypatch):
    """The head start is taken only when its source equals check_source's: the same path
    whichever way it is written."""
    from am import git, gitfiles

    link = tmp_path / "link"
    link.symlink_to(repo)
    monkeypatch.setenv("HOME", str(repo.parent))
    monkeypatch.chdir(repo.parent)
    for written in (str(repo), f"{repo}/", f"{repo}/.", str(link), repo.name, f"~/{repo.name}"):
        assert gitfiles.plain_source(written) == git.check_source(written), written
    assert gitfiles.plain_source("git@host:x") is None  # no such folder here
    assert gitfiles.plain_source("-x") is None


@pytest.mark.parametrize(
    "environ, container, overturned",
    [
        ({}, True, False),
        ({"AM_RUNTIME": "kubernetes"}, True, True),
        ({"AM_RUNTIME": "kubernetes"}, False, False),  # a tmux agent has no runtime
        ({"AM_DISK": "10g"}, True, True),
        ({"AM_DISK": "none"}, True, False),
    ],
)
def test_settings_that_make_another_workspace_stop_the_head_start(environ, container, overturned):
    from am.headstart import Guess
    from am.headstart import overturned as is_overturned

    assert is_overturned(Guess("/r", container, None, None), environ) == overturned

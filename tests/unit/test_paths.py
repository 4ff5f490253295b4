"""The layout keeps its folders as text (``am list`` never imports pathlib): the same paths,
to the character, as pathlib gives; the root is the am.home label of every container."""

from pathlib import Path

import pytest

from am import paths


@pytest.mark.parametrize(
    "home",
    ["/srv/am", "/srv/am/", "/srv//am", "/srv/./am", "/srv/x/../am", "/", "//", "rel/am", "~/am"],
)
def test_the_layout_is_pathlibs_to_the_character(home, monkeypatch, tmp_path):
    monkeypatch.setenv("AM_HOME", home)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    root = Path(home).expanduser().absolute()
    lay = paths.layout()
    assert lay.root_text == str(root)
    assert [lay.root, lay.state_dir, lay.workspaces, lay.data_dir, lay.config_dir] == [
        root,
        root / "state",
        root / "agents",
        root / "data",
        root,
    ]
    assert lay.run_text == str(root / "state" / "run") == str(lay.run)
    assert lay.state_file_text == str(root / "state" / "state.json") == str(lay.state_file)
    assert lay.lock_file_text == str(root / "state" / "state.lock") == str(lay.lock_file)
    assert lay.config_file_text == str(root / "config.toml") == str(lay.config_file)


def test_a_layout_of_paths_equals_one_of_text(tmp_path):
    a = paths.Layout(tmp_path, tmp_path / "s", tmp_path / "a", tmp_path / "d", tmp_path)
    b = paths.Layout(
        str(tmp_path), f"{tmp_path}/s", f"{tmp_path}/a", f"{tmp_path}/d", str(tmp_path)
    )
    assert a == b and hash(a) == hash(b) and a.state_dir == tmp_path / "s"


def test_a_home_of_no_such_user_is_one_clear_error(monkeypatch):
    from am.errors import AmError

    monkeypatch.setenv("AM_HOME", "~am-no-such-user-x/home")
    with pytest.raises(AmError, match="its ~ names no user") as e:
        paths.layout()
    assert "full path" in e.value.hint
    with pytest.raises(RuntimeError):  # the positive control: what pathlib does with it
        Path("~am-no-such-user-x/home").expanduser()

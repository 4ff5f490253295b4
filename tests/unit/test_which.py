"""``proc.which`` finds a program as ``shutil.which`` does, without importing shutil."""

import os
import shutil

from am import proc


def test_which_agrees_with_shutil(tmp_path, monkeypatch):
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    (a / "tool").write_text("#!/bin/sh\n")  # not executable: passed over
    (b / "tool").mkdir()  # a folder: passed over
    (c / "tool").write_text("#!/bin/sh\n")
    (c / "tool").chmod(0o755)
    (a / "first").write_text("")
    (a / "first").chmod(0o755)
    (c / "first").write_text("")
    (c / "first").chmod(0o755)
    paths = [
        os.pathsep.join(map(str, (a, b, c))),
        os.pathsep.join(map(str, (a, b))),
        os.pathsep.join(map(str, (c, a, c))),
        "",
        None,
    ]
    names = ["tool", "first", "sh", "no-such-program", str(c / "tool"), str(a / "tool"), "c/tool"]
    monkeypatch.chdir(tmp_path)
    checked = 0
    for path in paths:
        if path is None:
            monkeypatch.delenv("PATH", raising=False)
        else:
            monkeypatch.setenv("PATH", path)
        for name in names:
            assert proc.which(name) == shutil.which(name), (path, name)
            checked += 1
    assert proc.which("tool") is None  # the last PATH (none): the system's default path
    monkeypatch.setenv("PATH", os.pathsep.join(map(str, (a, b, c))))
    assert proc.which("tool") == str(c / "tool")  # positive control: the walk finds it
    assert checked == len(paths) * len(names)


def test_the_help_is_as_wide_as_argparse_makes_it(monkeypatch):
    """am's help formatter finds the width as argparse's own (through shutil) does."""
    import argparse

    from am import cli

    for columns in ("100", "37", "0", "-5", "wide", None):
        if columns is None:
            monkeypatch.delenv("COLUMNS", raising=False)
        else:
            monkeypatch.setenv("COLUMNS", columns)
        ours, theirs = cli.Formatter("am"), argparse.HelpFormatter("am")
        assert ours._width == theirs._width, columns
    monkeypatch.setenv("COLUMNS", "60")
    parser = cli.build_parser("spawn")
    spawn = parser._subparsers._group_actions[0].choices["spawn"]
    ours = spawn.format_help()
    spawn.formatter_class = argparse.HelpFormatter
    assert ours == spawn.format_help() and "--container" in ours
    monkeypatch.setenv("COLUMNS", "120")
    assert ours != spawn.format_help()  # positive control: the width shows in the text

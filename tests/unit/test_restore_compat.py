"""Restoring does not lean on tarfile's extraction filters (Debian 12's python3 is 3.11.2,
which has none): with or without them, am's own rules refuse every attack the ``data`` filter
refuses, and restore an honest archive the same way."""

import os
import stat
import tarfile

import pytest
from security import test_symlinks
from security.test_symlinks import SECRET, _archive, _attacks, _file, _link

from am import snapshot
from am.errors import AmError

outside = test_symlinks.outside  # the fixture: a folder with a secret file, outside the target


@pytest.fixture(params=["filter", "no filter"])
def python(request, monkeypatch):
    if request.param == "no filter":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return request.param


@pytest.mark.parametrize(
    "attack",
    [
        "dotdot name",
        "absolute name",
        "file through absolute link",
        "file through relative link",
        "file over a link",
        "hard link to outside",
    ],
)
def test_attacks_are_refused_with_or_without_filters(tmp_path, outside, python, attack):
    evil = _archive(tmp_path / "evil.tar.gz", _attacks(outside, tmp_path)[attack])
    with pytest.raises(AmError, match="refusing to restore"):
        snapshot.extract(evil, tmp_path / "restored")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == SECRET + "\n"


def test_special_files_are_refused(tmp_path, python):
    fifo = tarfile.TarInfo("workspace/pipe")
    fifo.type = tarfile.FIFOTYPE
    with pytest.raises(AmError, match="refusing to restore"):
        snapshot.extract(_archive(tmp_path / "fifo.tar.gz", [(fifo, None)]), tmp_path / "r")


def test_an_honest_archive_restores_alike(tmp_path, python):
    setuid, data = _file("workspace/tool", b"#!/bin/sh\n")
    setuid.mode = 0o4777
    plain, text = _file("workspace/notes.txt", b"notes\n")
    plain.mode = 0o640
    hard = _link("workspace/again.txt", "workspace/notes.txt", tarfile.LNKTYPE)
    soft = _link("workspace/to-notes", "notes.txt")
    dest = tmp_path / "restored"
    snapshot.extract(
        _archive(tmp_path / "ok.tar.gz", [(setuid, data), (plain, text), hard, soft]), dest
    )
    assert (dest / "again.txt").read_text() == "notes\n"
    assert os.readlink(dest / "to-notes") == "notes.txt"
    mode = stat.S_IMODE((dest / "tool").stat().st_mode)
    assert mode & (stat.S_ISUID | stat.S_IWGRP | stat.S_IWOTH) == 0 and mode & 0o100
    assert (dest / "notes.txt").stat().st_uid == os.getuid()

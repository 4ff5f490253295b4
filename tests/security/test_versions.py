"""Property 5: git older than 2.39 and runc with known container escapes are flagged."""

import os
from pathlib import Path

import pytest

from am import versions

PROPERTY = "5 version checks"


@pytest.mark.parametrize(
    "text,ok",
    [
        ("git version 2.39.5", True),
        ("git version 2.39.0", True),
        ("git version 2.45.2.windows.1", True),
        ("git version 2.39.3 (Apple Git-146)", True),
        ("git version 2.38.1", False),
        ("git version 2.30.2", False),
        ("git version 1.9", False),
    ],
)
def test_git_verdict(text, ok):
    got, detail = versions.git_verdict(text)
    assert got is ok
    if not ok:
        assert "older than 2.39" in detail and "upgrade git" in detail


def test_git_verdict_unreadable():
    assert versions.git_verdict("no version here")[0] is None


RUNC = "runc version {v}\ncommit: {c}\nspec: 1.0.2-dev\n"


@pytest.mark.parametrize(
    "v,c,ok",
    [
        ("1.1.12", "v1.1.12-0-g51d5e946", True),
        ("1.2.0", "v1.2.0-0-g0aa1234", True),
        ("1.1.11", "v1.1.11-0-g4bccb38c", False),
        ("1.0.0-rc93", "v1.0.0-rc93", False),
        ("1.1.5+ds1", "1.1.5+ds1-1+deb12u1", True),  # Debian 12 with the CVE-2024-21626 fix
        ("1.1.5+ds1", "1.1.5+ds1-1", False),  # the same release before the fix
        ("1.0.0~rc93+ds1", "1.0.0~rc93+ds1-5+deb11u3", False),
    ],
)
def test_runc_verdict(v, c, ok):
    got, detail = versions.runc_verdict(RUNC.format(v=v, c=c))
    assert got is ok, detail
    if not ok:
        assert "CVE-2024-21626" in detail and "1.1.12" in detail


def fake_tool(folder: Path, name: str, version_text: str) -> None:
    """A NAME on PATH that reports VERSION_TEXT and otherwise runs the real one."""
    real = next(
        p
        for p in (Path(d) / name for d in os.environ["PATH"].split(":"))
        if p.is_file() and os.access(p, os.X_OK)
    )
    script = folder / name
    script.write_text(
        f'#!/bin/sh\ncase "$1" in --version|-V|version) printf "%s\\n" '
        f'"{version_text}"; exit 0;; esac\nexec {real} "$@"\n'
    )
    script.chmod(0o755)


def test_doctor_fails_on_old_git_and_warns_on_runc(am, tmp_path):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    fake_tool(bin_, "git", "git version 2.30.2")
    fake_tool(bin_, "runc", "runc version 1.1.11\\ncommit: v1.1.11-0-g4bccb38c")
    res = am("doctor", check=False, env={"PATH": f"{bin_}:{os.environ['PATH']}"})
    assert res.returncode == 1
    rows = {
        line.split()[1]: line
        for line in res.stdout.splitlines()
        if line[:5].strip() in ("ok", "FAIL", "--")
    }
    assert rows["git"].startswith("FAIL") and "older than 2.39" in rows["git"]
    assert rows["runc"].startswith("FAIL") and "CVE-2024-21626" in rows["runc"]


@pytest.mark.container
def test_spawn_container_warns(am, repo, tmp_path):
    from containers import engine_ready, remove_containers

    engine_ready("docker")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    fake_tool(bin_, "git", "git version 2.30.2")
    fake_tool(bin_, "runc", "runc version 1.1.11\\ncommit: v1.1.11-0-g4bccb38c")
    res = am(
        "spawn",
        repo,
        "--container",
        "--runtime",
        "docker",
        "--cmd",
        "true",
        env={"PATH": f"{bin_}:{os.environ['PATH']}"},
        check=False,
    )
    try:
        assert "am: warning: git 2.30.2 is older than 2.39" in res.stderr
        assert "am: warning: runc 1.1.11" in res.stderr and "CVE-2024-21626" in res.stderr
    finally:
        remove_containers("docker", str(am.home))
    assert res.returncode == 0, res.stderr


def test_each_binary_is_asked_once_and_answers_are_kept(tmp_path, monkeypatch):
    """version_text runs a binary once per install: a tool that prints, one that fails, and
    one that is missing, each asked twice (the failing one's empty answer is kept too)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for name, body in (("good", 'echo "good version 1.2"'), ("bad", "exit 3")):
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\necho {name} >> {log}\n{body}\n")
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("AM_HOME", str(tmp_path / "home"))
    for _ in range(2):
        assert versions.version_text(["good", "--version"]) == "good version 1.2\n"
        assert versions.version_text(["bad", "--version"]) == ""
        assert versions.version_text(["am-no-such-tool", "--version"]) is None
    assert sorted(log.read_text().split()) == ["bad", "good"]

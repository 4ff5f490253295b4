"""Standard streams a caller closed, or stopped reading: a spawn whose standard error's reader
went away is undone and fails with 141, as SIGPIPE ends other tools, never a silent success
with nothing made; descriptors 0-2 closed (``2>&-``) are reopened on /dev/null, so what am
says never lands on standard output or in a file am opens."""

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
from helpers import assert_nothing_made, state_agents


def am_argv(*args) -> list[str]:
    return [sys.executable, "-m", "am", *map(str, args)]


@pytest.mark.parametrize("count", [1, 2])
def test_a_spawn_whose_error_reader_is_gone_is_undone_and_fails(am, repo, count):
    args = ["spawn", repo, "--cmd", "sleep 60", "--count", count]
    r, w = os.pipe()
    os.close(r)  # the reader is gone before am's first word: `am spawn 2> >(head -c0)`
    try:
        res = subprocess.run(
            am_argv(*args), env=am.env, stdout=subprocess.PIPE, stderr=w, timeout=300
        )
    finally:
        os.close(w)
    assert res.returncode == 141 and res.stdout == b""
    assert_nothing_made(am.home)
    # The control: the same spawn, its standard error read, makes its agents.
    made = am(*args).stdout.split()
    assert len(made) == count and set(state_agents(am.home)) == set(made)


def test_with_standard_error_closed_a_spawn_prints_only_its_id(am, repo):
    res = subprocess.run(
        ["sh", "-c", 'exec "$@" 2>&-', "sh", *am_argv("spawn", repo, "--cmd", "sleep 60")],
        env=am.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res
    assert re.fullmatch(r"[0-9a-f]{8}\n", res.stdout), res.stdout  # no progress lines
    assert list(state_agents(am.home)) == [res.stdout.strip()]
    # the control: with it open, the progress goes there
    assert "Preparing workspace" in am("spawn", repo, "--cmd", "sleep 60").stderr


@pytest.mark.parametrize("fd", [0, 1, 2])
def test_a_closed_standard_descriptor_is_no_failure(am, repo, fd):
    am.spawn(repo, "--cmd", "sleep 60")
    res = subprocess.run(
        ["sh", "-c", f'exec "$@" {fd}>&-', "sh", *am_argv("list")],
        env=am.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res
    assert ("running" in res.stdout) == (fd != 1) and "Traceback" not in res.stderr


@pytest.mark.parametrize("reader_gone", [True, False])
def test_an_undo_is_whole_though_standard_errors_reader_went_away_meanwhile(
    am, repo, tmp_path, reader_gone
):
    """`AM_DEBUG=1 am spawn ... 2>&1 | tee log`, then Ctrl-C: the same SIGINT ends tee, and the
    undo's first word (a traced tmux call) finds standard error gone. That must not cut the
    undo short: exit 130, nothing left. tmux is real; a gate in front of it holds the
    session's start until the reader is gone and the interrupt sent. The control keeps the
    reader: the same interrupt, the same whole undo."""
    gate = tmp_path / "gate"
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "tmux").write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" new-session "*) while [ ! -e {gate} ]; do sleep 0.01; done;; esac\n'
        f'exec {shutil.which("tmux")} "$@"\n'
    )
    (shim / "tmux").chmod(0o755)
    env = {**am.env, "AM_DEBUG": "1", "PATH": f"{shim}:{os.environ['PATH']}"}
    p = subprocess.Popen(
        am_argv("spawn", repo, "--cmd", "sleep 60"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for line in p.stderr:
            if b"Starting agent" in line:
                break
        if reader_gone:
            p.stderr.close()
        p.send_signal(signal.SIGINT)
        gate.touch()
        p.wait(timeout=120)
    finally:
        gate.touch()
        p.kill()
        p.wait()
    assert p.returncode == 130
    assert_nothing_made(am.home)

"""The ``am`` command's entry: it leaves without the interpreter's teardown, so what must
still happen at exit is tested here: the exit code, all of the output through a pipe, and
``atexit``'s work (the early calls nobody took are killed)."""

import json
import subprocess
import sys

ENTRY = "import sys, am.main as m; {setup}; m.entry()"


def run(*args, setup="pass", env=None):
    return subprocess.run(
        [sys.executable, "-P", "-c", ENTRY.format(setup=setup), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_exit_codes_are_main_s(tmp_path, monkeypatch):
    env = {"AM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    assert run("--version", env=env).returncode == 0
    bad = run("nosuch", env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("am: error:"), bad
    missing = run("info", "nosuch", env=env)
    assert missing.returncode == 1 and "no such agent" in missing.stderr, missing
    helped = run("--help", env=env)
    assert helped.returncode == 0 and "usage: am" in helped.stdout


def test_all_of_a_long_output_reaches_a_pipe(tmp_path):
    """Buffered output is flushed before the process leaves: a state file of 2,000 agents,
    listed as JSON through a pipe, arrives whole."""
    state = tmp_path / "state"
    state.mkdir()
    made = "2026-01-01T00:00:00Z"
    agents = {
        f"a{i:04d}": {"id": f"a{i:04d}", "mode": "tmux", "status": "stopped", "created": made}
        for i in range(2000)
    }
    (state / "state.json").write_text(json.dumps({"agents": agents}))
    env = {"AM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    res = run("list", "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)) == 2000


def test_output_that_cannot_be_written_is_an_error(tmp_path):
    """A full disk (``/dev/full``): the output is not there, so the exit code says so (120,
    as Python's own last flush) with one line that names why; to /dev/null, the control,
    the same command succeeds."""
    env = {"AM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    argv = [sys.executable, "-P", "-c", ENTRY.format(setup="pass"), "--help"]
    with open("/dev/full", "w") as full:
        res = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, text=True, env=env)
    assert res.returncode == 120 and "am: error: cannot write the output" in res.stderr, res
    with open("/dev/null", "w") as null:
        assert subprocess.run(argv, stdout=null, env=env).returncode == 0


def test_atexit_work_still_runs(tmp_path):
    mark = tmp_path / "ran"
    setup = f"import atexit; atexit.register(lambda: open({str(mark)!r}, 'w').close())"
    env = {"AM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    assert run("--version", setup=setup, env=env).returncode == 0
    assert mark.exists()
    # positive control: leaving with os._exit alone skips it
    mark.unlink()
    subprocess.run(
        [
            sys.executable,
            "-c",
            setup.replace("import atexit;", "import atexit, os;") + "; os._exit(0)",
        ],
        check=True,
    )
    assert not mark.exists()


def test_an_uncaught_error_ends_as_python_ends_it(tmp_path):
    setup = "m.main = lambda: 1 / 0"
    res = run(setup=setup)
    assert res.returncode == 1 and "ZeroDivisionError" in res.stderr


def test_main_leaves_the_collector_as_it_found_it(tmp_path, monkeypatch):
    """A command's imports run with the collector off and what they made frozen; a caller
    that goes on after main (a test) gets the collector back as it was, nothing frozen."""
    import gc

    from am.main import main

    monkeypatch.setenv("AM_HOME", str(tmp_path))
    for argv in (["list", "--json"], ["config", "show"], ["no-such-command"]):
        gc.enable()
        try:
            main(argv)
        except SystemExit:
            pass
        assert gc.isenabled() and gc.get_freeze_count() == 0, argv

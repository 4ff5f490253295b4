"""am/proc.py's ``run`` and ``Background`` with real processes, as ``subprocess`` had them:
output and errors captured together (however much of either), input given as text or a file,
the working directory and PATH of the call's own, a timeout that kills, and a child that gets
the default SIGPIPE Python itself ignores."""

import os
import sys
import threading

import pytest

from am import proc

BIG = 1 << 20  # far past a pipe's buffer: a reader of one pipe at a time would deadlock


def test_output_and_errors_are_both_read_however_large():
    script = f"head -c {BIG} /dev/zero | tr '\\0' o; head -c {BIG} /dev/zero | tr '\\0' e >&2"
    res = proc.run(["sh", "-c", script + "; exit 4"])
    assert (res.code, len(res.out), len(res.err)) == (4, BIG, BIG)
    assert set(res.out) == {"o"} and set(res.err) == {"e"}


def test_text_input_larger_than_a_pipe_goes_in_while_output_comes_out():
    text = "line\n" * (BIG // 5)
    res = proc.run(["cat"], stdin=text)
    assert res.ok and res.out == text


def test_input_the_child_does_not_read_is_no_error():
    res = proc.run(["sh", "-c", "exit 0"], stdin="x" * BIG)
    assert res.ok and res.out == ""


def test_a_file_is_given_as_input(tmp_path):
    (tmp_path / "in").write_bytes(b"from a file\n")
    with open(tmp_path / "in", "rb") as f:
        assert proc.run(["cat"], stdin=f).out == "from a file\n"


def test_line_ends_read_as_text_mode_reads_them():
    assert proc.run(["printf", "a\\r\\nb\\rc\\n"]).out == "a\nb\nc\n"


def test_bytes_that_are_not_utf8_are_replaced():
    assert proc.run(["printf", "\\377ok"]).out == "\ufffdok"


def test_the_working_directory_is_the_calls_and_ours_is_left_as_it_was(tmp_path):
    here = os.getcwd()
    assert proc.run(["pwd"], cwd=tmp_path).out == f"{tmp_path}\n"
    assert os.getcwd() == here


@pytest.mark.parametrize("other_thread", [True, False])
def test_with_another_thread_running_our_working_directory_never_changes(
    tmp_path, monkeypatch, other_thread
):
    """Another thread would see this process's working directory change for the moment of
    the start: with one running, the call changes its own (a shell's). The control, with no
    other thread, shows the process's own change that the first avoids."""
    here, seen = os.getcwd(), []
    real = os.posix_spawnp

    def spy(*args, **kwargs):
        seen.append(os.getcwd())
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "posix_spawnp", spy)
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    if other_thread:
        other.start()
    try:
        assert proc.run(["pwd"], cwd=tmp_path).out == f"{tmp_path}\n"
    finally:
        done.set()
        if other_thread:
            other.join()
    assert seen == ([here] if other_thread else [str(tmp_path)])
    assert os.getcwd() == here


def test_a_missing_working_directory_raises_as_subprocess_does(tmp_path):
    with pytest.raises(FileNotFoundError):
        proc.run(["pwd"], cwd=tmp_path / "nope")


def test_the_program_is_found_on_the_calls_own_path(tmp_path):
    tool = tmp_path / "am-only-here"
    tool.write_text("#!/bin/sh\necho found\n")
    tool.chmod(0o755)
    assert proc.run(["am-only-here"], env={"PATH": f"{tmp_path}:/usr/bin:/bin"}).out == "found\n"
    with pytest.raises(proc.NotFound, match="not found in PATH"):
        proc.run(["am-only-here"])  # not on this process's PATH


def test_a_timeout_kills_the_call_and_reaps_it(tmp_path):
    pidfile = tmp_path / "pid"
    res = proc.run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"], timeout=0.5)
    assert res.code == 124 and "timed out" in res.err
    pid = int(pidfile.read_text())
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped already: no zombie is left
    assert not os.path.exists(f"/proc/{pid}")


def test_a_call_that_closes_its_output_and_runs_on_is_timed_out_too(tmp_path):
    res = proc.run(["sh", "-c", "exec >&- 2>&-; sleep 60"], timeout=0.5)
    assert res.code == 124


def test_the_child_gets_the_default_sigpipe_python_ignores():
    """Python ignores SIGPIPE (and SIGXFSZ), and a child would inherit that: a writer to a
    closed pipe would then run on, failing each write, instead of ending at the first. The
    control: this process ignores both."""

    def ignored(status: str) -> int:
        line = next(t for t in status.splitlines() if t.startswith("SigIgn:"))
        return int(line.split()[1], 16)

    pipe, xfsz = 1 << (13 - 1), 1 << (25 - 1)
    with open("/proc/self/status") as f:
        ours = ignored(f.read())
    assert ours & pipe and ours & xfsz
    child = ignored(proc.run(["cat", "/proc/self/status"]).out)
    assert not child & pipe and not child & xfsz


def test_background_gives_output_errors_and_code():
    running = proc.Background(["sh", "-c", "echo out; echo err >&2; exit 2"])
    res = running.result()
    assert (res.code, res.out, res.err) == (2, "out\n", "err\n")


def test_background_end_kills_and_reaps(tmp_path):
    running = proc.Background(["sleep", "60"])
    pid = running.child.pid
    running.end()
    assert running.child.code == 128 + 9
    assert not os.path.exists(f"/proc/{pid}")


def test_background_of_a_missing_program_is_not_found():
    with pytest.raises(proc.NotFound):
        proc.Background(["no-such-program-here"])


def test_no_subprocess_import_for_a_run():
    code = (
        "import sys; from am import proc; proc.run(['true'], cwd='/');"
        "proc.Background(['true']).result();"
        "print('subprocess' in sys.modules, 'threading' in sys.modules)"
    )
    res = proc.run([sys.executable, "-P", "-c", code])
    assert res.out == "False False\n", res.err

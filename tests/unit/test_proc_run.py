"""am/proc.py's ``run`` and ``Background`` with real processes, as ``subprocess`` had them:
output and errors captured together (however much of either), input given as text or a file,
the working directory and PATH of the call's own, a timeout that kills, and a child that gets
the default SIGPIPE Python itself ignores."""

import os
import sys
import threading
import time

import pytest
from helpers import wait_for

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


@pytest.fixture(params=["alone", "beside a thread"])
def threads(request):
    """The calls below made with no other thread, and with one running (where am's working
    directory must not change, and ``subprocess`` changes the child's own)."""
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    if request.param != "alone":
        other.start()
    yield request.param
    done.set()
    if other.is_alive():
        other.join()


def test_with_another_thread_running_our_working_directory_never_changes(
    tmp_path, monkeypatch, threads
):
    """Another thread would see this process's working directory change for the moment of
    a start in another: beside one, no start happens with it changed. The control, alone,
    shows that change, which no other thread is there to see."""
    here, seen = os.getcwd(), []
    real = os.posix_spawnp

    def spy(*args, **kwargs):
        seen.append(os.getcwd())
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "posix_spawnp", spy)
    assert proc.run(["pwd"], cwd=tmp_path).out == f"{tmp_path}\n"
    assert seen == ([str(tmp_path)] if threads == "alone" else [])
    assert os.getcwd() == here


def test_a_working_directory_is_taken_as_subprocess_takes_it(tmp_path, threads):
    """The same answers alone and beside a thread: a physical path (a link's '..' is its
    target's parent), a program relative to the working directory, the environment and
    argv[0] exactly as given."""
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "lnk").symlink_to(tmp_path / "d" / "sub")
    script = tmp_path / "d" / "x.sh"
    script.write_text('#!/bin/sh\necho "$0"\n')
    script.chmod(0o755)
    assert proc.run(["pwd", "-P"], cwd=tmp_path / "lnk" / "..").out == f"{tmp_path / 'd'}\n"
    assert proc.run(["./x.sh"], cwd=tmp_path / "d").out == "./x.sh\n"
    env = {"PATH": os.environ["PATH"], "a-b": "1", "IFS": "x"}
    out = proc.run(["env"], cwd=tmp_path, env=env).out.splitlines()
    assert sorted(out) == sorted(f"{k}={v}" for k, v in env.items())
    assert proc.run(["sh", "-c", "echo $0"], cwd=tmp_path).out == "sh\n"
    with pytest.raises(NotADirectoryError):
        proc.run(["pwd"], cwd=script)


def test_no_signal_handler_runs_while_am_is_in_the_calls_folder(tmp_path, monkeypatch):
    """A handler (a timer's, here, every 50 microseconds) never finds this process in the
    call's working directory. The control, without the mask, finds it there."""
    import signal

    here = os.getcwd()

    def calls(until_seen: bool) -> set[str]:
        seen: set[str] = set()
        signal.signal(signal.SIGALRM, lambda *_: seen.add(os.getcwd()))
        signal.setitimer(signal.ITIMER_REAL, 0.00005, 0.00005)
        try:
            for _ in range(20000 if until_seen else 300):
                assert proc.run(["true"], cwd=tmp_path).ok
                if until_seen and str(tmp_path) in seen:
                    break
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
        return seen

    assert calls(until_seen=False) == {here}
    import _signal

    monkeypatch.setattr(_signal, "pthread_sigmask", lambda how, mask: set())
    assert str(tmp_path) in calls(until_seen=True)


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


def test_text_that_cannot_be_encoded_is_replaced_as_text_mode_did():
    assert proc.run(["cat"], stdin="a\udcffb").out == "a?b"


def test_collect_keeps_its_deadline_though_output_keeps_coming():
    child = proc.Child(["sh", "-c", "yes | head -c 10000000"], reading=True)
    try:
        assert not child.collect(deadline=time.monotonic())
        assert child.output() == (b"", b"")  # not read on past the deadline
    finally:
        child.end()


def test_calls_succeed_when_ams_parent_ignored_sigchld():
    """SIGCHLD ignored is kept across exec: the kernel would then reap every child itself.
    The control: a child started under it cannot be waited for."""
    code = (
        "import os, signal; signal.signal(signal.SIGCHLD, signal.SIG_IGN);"
        "pid = os.posix_spawnp('true', ['true'], os.environ)\n"
        "try: os.waitpid(pid, 0); print('waited')\n"
        "except ChildProcessError: print('gone')\n"
        "from am import proc; print(proc.run(['true']).code, proc.run(['false']).code)"
    )
    res = proc.run([sys.executable, "-P", "-c", code])
    assert res.out == "gone\n0 1\n", res.err


def test_a_dropped_background_leaves_no_zombie_and_no_descriptor():
    """An undo that never came to a Background: its pipes close when it is dropped, and it
    is reaped at the next start, as subprocess does."""
    import gc

    fds = set(os.listdir("/proc/self/fd"))
    pids = []
    for _ in range(5):
        running = proc.Background(["true"])
        pids.append(running.child.pid)
        del running
    gc.collect()
    for pid in pids:  # ended, not yet reaped
        wait_for(lambda pid=pid: proc.stat_fields(pid)[:1] in ([], ["Z"]), "its end", 10, 0.01)
    assert proc.run(["true"]).ok
    assert all(not proc.stat_fields(pid) for pid in pids)
    assert set(os.listdir("/proc/self/fd")) <= fds


def test_a_kept_descriptor_stays_as_it_was_in_am(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for inheritable in (True, False):
            os.set_inheritable(fd, inheritable)
            proc.Background(["true"], pass_fds=(fd,)).result()
            assert os.get_inheritable(fd) is inheritable
    finally:
        os.close(fd)


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

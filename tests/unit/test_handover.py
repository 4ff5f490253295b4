"""The hand-over of a tmux agent's environment through a FIFO: the spawn's forked writer
(``spawn.hand_over_secrets``) and the supervisor's reader (``supervise.read_secrets``)."""

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from am.commands.spawn import hand_over_secrets
from am.supervise import read_secrets

ROOT = Path(__file__).resolve().parents[2]


def test_the_reader_takes_what_the_writer_wrote(tmp_path):
    fifo = tmp_path / "env"
    os.mkfifo(fifo, 0o600)
    hand_over_secrets(fifo, {"TOKEN": "s3cret"})
    assert read_secrets(str(fifo), timeout=60) == {"TOKEN": "s3cret"}
    assert not fifo.exists()  # read once, then gone


def test_no_writer_is_no_environment_not_a_hang(tmp_path):
    fifo = tmp_path / "env"
    os.mkfifo(fifo, 0o600)
    assert read_secrets(str(fifo), timeout=0.2) is None


def test_a_writer_that_left_without_writing_is_no_environment(tmp_path):
    fifo = tmp_path / "env"
    os.mkfifo(fifo, 0o600)

    def leave_at_once():  # once the reader is there: opened, closed, nothing written
        os.close(os.open(fifo, os.O_WRONLY))

    writer = threading.Thread(target=leave_at_once)
    writer.start()
    assert read_secrets(str(fifo), timeout=1) is None
    writer.join()


def test_a_whole_hand_over_is_taken_even_when_the_reader_comes_late(tmp_path):
    """The values all wait in the FIFO, and the reader's time is up as it looks: taken."""
    fifo = tmp_path / "env"
    os.mkfifo(fifo, 0o600)
    early = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer write at once
    try:
        hand_over_secrets(fifo, {"TOKEN": "s3cret"})
        poller = select.poll()
        poller.register(early, select.POLLIN)
        assert poller.poll(60_000)  # the values are in the pipe
        assert read_secrets(str(fifo), timeout=0) == {"TOKEN": "s3cret"}
    finally:
        os.close(early)


def waiting_to_open(pid: int) -> bool:
    return Path(f"/proc/{pid}/wchan").read_text() == "wait_for_partner"


def test_two_hand_overs_in_one_fifo_are_none(tmp_path):
    """A writer of an earlier launch that joined this one's FIFO: nothing of it is taken."""
    fifo = tmp_path / "env"
    os.mkfifo(fifo, 0o600)
    writers = [hand_over_secrets(fifo, {"TOKEN": value}) for value in ("old", "new")]
    deadline = time.monotonic() + 60
    while not all(waiting_to_open(pid) for pid in writers):  # both at the FIFO first
        assert time.monotonic() < deadline, "the writers never came to the FIFO"
        time.sleep(0.001)
    assert read_secrets(str(fifo), timeout=60) is None
    for pid in writers:
        os.waitpid(pid, 0)


SPAWN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from am.commands.spawn import hand_over_secrets

    hand_over_secrets(Path(sys.argv[1]), {"TOKEN": "s3cret"})
    print("handed", flush=True)
    time.sleep(600)  # as a --count spawn, still in the foreground
    """
)


def test_the_writer_outlives_a_ctrl_c_to_the_spawns_group(tmp_path):
    """The spawn and its group get SIGINT (a terminal's Ctrl-C, or SIGTERM as timeout(1)
    sends) before the supervisor came to read: the writer still hands the values over."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        fifo = tmp_path / f"env-{signum}"
        os.mkfifo(fifo, 0o600)
        spawn = subprocess.Popen(
            [sys.executable, "-c", SPAWN, str(fifo)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert spawn.stdout.readline() == "handed\n"
        os.killpg(spawn.pid, signum)
        assert spawn.wait(timeout=60) == -signum  # the spawn itself is gone
        assert read_secrets(str(fifo), timeout=60) == {"TOKEN": "s3cret"}, signum


GONE = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from am.commands.spawn import hand_over_secrets

    hand_over_secrets(Path(sys.argv[1]), {"TOKEN": "s3cret"})
    os.wait()  # the writer, done
    """
)


def test_a_fifo_already_gone_never_becomes_a_file_of_the_values(tmp_path):
    gone = tmp_path / "env"  # an undone spawn removed it before its writer came to it
    subprocess.run([sys.executable, "-c", GONE, str(gone)], cwd=ROOT, check=True, timeout=60)
    assert not gone.exists() and list(tmp_path.iterdir()) == []


def test_await_spec_is_there_at_once_late_or_never(tmp_path):
    from am.supervise import await_spec

    spec = tmp_path / "a.spec.json"
    assert not await_spec(spec, timeout=0.05)  # never: the supervisor gives up
    late = threading.Timer(0.1, spec.write_text, args=("{}",))
    late.start()
    assert await_spec(spec, timeout=30)  # written while it waits
    late.join()
    assert await_spec(spec, timeout=0)  # there already: no wait at all


def test_await_spec_waits_while_its_spawn_works_and_no_longer(tmp_path):
    """With its spawn named (``proc.identity``), the wait has no time limit while that spawn
    lives (a checkout of any size, a spawn stopped with Ctrl-Z), and ends once it is gone or
    its pid is another process's."""
    from am import proc
    from am.supervise import await_spec

    spec = tmp_path / "a.spec.json"
    me = proc.identity()
    late = threading.Timer(0.2, spec.write_text, args=("{}",))
    late.start()
    assert await_spec(spec, me, timeout=0)  # no time limit: it outlives TIMEOUT
    late.join()
    spec.unlink()
    gone = subprocess.Popen(["true"])
    them = proc.identity(gone.pid)
    gone.wait()
    assert them is not None and not await_spec(spec, them, timeout=60)
    pid, _, start = me.partition(":")
    assert not await_spec(spec, f"{pid}:{int(start) + 1}", timeout=60)  # a pid reused
    assert not await_spec(spec, "not-a-pid:1", timeout=60)


def test_a_supervisor_started_before_its_spec_runs_the_agent_once_it_is_there(tmp_path):
    """A spawn starts a tmux agent's session while git still checks its workspace out: the
    supervisor runs nothing until the spec is there, then the agent (an older supervisor
    would have ended at once, the spec missing, and never run it)."""
    import uuid

    from am import files
    from am.launchspec import LaunchSpec

    spec_file, ran = tmp_path / "x.spec.json", tmp_path / "ran"
    name = f"am-test-{uuid.uuid4().hex[:8]}"
    supervise = [sys.executable, "-P", "-m", "am.supervise", str(spec_file)]
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "--", *supervise], check=True)
    try:
        pid = wait_until(lambda: _pid_of(supervise[1:]), "the supervisor to start")
        # Asleep in its wait for the spec (Python's start never sleeps): past its start.
        wait_until(lambda: "sleep" in _wchan(pid), "the supervisor to wait for its spec")
        assert not ran.exists()
        spec = LaunchSpec(
            argv=["sh", "-c", f"echo ran > {ran}"],
            cwd=str(tmp_path),
            env={},
            log=str(tmp_path / "log"),
            exit_file=str(tmp_path / "exit.json"),
        )
        files.write_atomic(spec_file, spec.to_json())
        wait_until(lambda: (tmp_path / "exit.json").exists(), "the agent to run and end")
        assert ran.read_text() == "ran\n"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", f"={name}:"], capture_output=True)


def wait_until(predicate, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
    return value


def _pid_of(args: list[str]) -> int | None:
    """The process whose command line ends with ARGS (a tmux server that a client started
    has that client's command line, ARGS inside it)."""
    tail = "\0".join(args).encode() + b"\0"
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.endswith(tail) and b"tmux" not in cmdline.split(b"\0")[0]:
                return int(entry.name)
    return None


def _wchan(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""

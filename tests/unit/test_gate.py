"""The start gate's FIFO (am/gate.py) with a real FIFO and a real shell reading it, as the
container's first shell does: released only with its own FIFO, never by a stale writer."""

import os
import subprocess
import time

from am import gate
from am.backends import engine as engine_module


def reader(fifo) -> subprocess.Popen:
    return subprocess.Popen(
        ["sh", "-c", gate.SCRIPT.replace(gate.TARGET, str(fifo)), "am-gate", "echo", "ran"],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_gate_is_released_only_through_the_fifo_its_spawn_made(tmp_path):
    fifo = tmp_path / "x.gate"
    made = gate.make(fifo)
    assert oct(os.lstat(fifo).st_mode & 0o777) == "0o644"  # the agent's user reads it
    shell = reader(fifo)
    try:
        other = (made[0], made[1] + 1)
        # another start's FIFO (another inode) is not released, nor removed
        assert gate.release(fifo, same=other, wait=5) is False
        gate.discard(fifo, other)
        assert fifo.exists() and shell.poll() is None
        # the control: its own is, once, and then it is gone
        assert gate.release(fifo, same=made, wait=30) is True
        assert shell.communicate(timeout=30)[0] == "ran\n"
        assert not fifo.exists()
        assert gate.release(fifo, same=made, wait=1) is False  # never delivered twice
    finally:
        shell.kill()
        shell.wait()


def test_a_writer_gone_without_the_line_runs_nothing(tmp_path):
    fifo = tmp_path / "x.gate"
    gate.make(fifo)
    shell = reader(fifo)
    fd = None
    while fd is None:  # the shell opens its end; then a writer comes and goes, silent
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            assert shell.poll() is None
            time.sleep(0.01)
    os.close(fd)
    out, _ = shell.communicate(timeout=30)
    assert shell.returncode != 0 and out == ""


def test_a_keeper_of_an_older_am_gets_agents_it_knows(monkeypatch):
    """A keeper from before gates (it runs on across an upgrade while it has agents) does
    not say 'gate' to a ping: agents then start with create and start, never held."""
    from am import keepersock

    monkeypatch.setattr(keepersock, "request", lambda layout, msg, **kw: {"ok": True, "pid": 1})
    assert engine_module.keeper_gates(None) is False
    monkeypatch.setattr(keepersock, "request", lambda layout, msg, **kw: {"ok": True, "gate": True})
    assert engine_module.keeper_gates(None) is True

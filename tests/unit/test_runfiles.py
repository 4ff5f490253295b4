"""``runfiles.cap_appended``: the cap on a log another process appends to (a limited agent's
network log, which its proxy writes through a bind mount)."""

import os
import subprocess
import sys

from am.runfiles import cap_appended

# A writer like squid: O_APPEND, one line per write, until told to stop by its stdin closing.
WRITER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
i = 0
print("ready", flush=True)
while True:
    os.write(fd, b"%08d " % i + b"x" * 91 + b"\n")
    i += 1
    if i == int(sys.argv[2]):
        break
print(i, flush=True)
"""


def test_a_small_log_is_left_alone(tmp_path):
    log = tmp_path / "a.network.log"
    log.write_bytes(b"1 line\n")
    assert not cap_appended(str(log), 64)
    assert log.read_bytes() == b"1 line\n" and not (tmp_path / "a.network.log.1").exists()


def test_over_the_cap_the_content_moves_and_the_writer_goes_on_at_the_start(tmp_path):
    log = tmp_path / "a.network.log"
    log.touch()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(log), "200000"], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline() == "ready\n"
    rotations = 0
    while writer.poll() is None:
        rotations += cap_appended(str(log), 64 << 10)
    writer.wait()
    rotations += cap_appended(str(log), 64 << 10)
    assert rotations >= 2  # the writer outran the cap more than once
    older, now = (tmp_path / "a.network.log.1").read_bytes(), log.read_bytes()
    # no hole: the writer appends at the new end, never at its old offset
    assert b"\0" not in now and b"\0" not in older
    assert len(now) <= 64 << 10
    lines = (older + now).splitlines()
    numbers = [int(line[:8]) for line in lines]
    assert numbers == sorted(numbers) and numbers[-1] == 199999  # the newest kept, in order
    assert all(len(line) == 100 for line in lines)  # whole lines, none cut
    # what was dropped is older output: far more was written than is kept
    assert len(lines) < 200000
    # the positive control: without the cap the same writer leaves the whole of it
    plain = tmp_path / "b.network.log"
    plain.touch()
    subprocess.run([sys.executable, "-c", WRITER, str(plain), "200000"], check=True)
    assert plain.stat().st_size == 200000 * 101


def test_never_follows_a_link_or_reads_a_fifo(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 1000)
    link = tmp_path / "l.network.log"
    link.symlink_to(secret)
    try:
        cap_appended(str(link), 64)
        raise AssertionError("followed a link")
    except OSError:
        pass
    assert secret.read_bytes() == b"s" * 1000 and not (tmp_path / "l.network.log.1").exists()
    fifo = tmp_path / "f.network.log"
    os.mkfifo(fifo)
    assert not cap_appended(str(fifo), 0)  # opened without blocking, left alone

"""``runfiles.cap_appended``: the cap on a log another process appends to (a limited agent's
network log, which its proxy writes through a bind mount)."""

import os
import select
import subprocess
import sys

from am.runfiles import cap_appended

# A writer like squid: O_APPEND, one line per write. After N lines it says so and waits for a
# line on its stdin, then writes line N: one written after the last rotation.
WRITER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
n = int(sys.argv[2])
print("ready", flush=True)
for i in range(n):
    os.write(fd, b"%08d " % i + b"x" * 91 + b"\n")
print(n, flush=True)
sys.stdin.readline()
os.write(fd, b"%08d " % n + b"x" * 91 + b"\n")
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
        [sys.executable, "-c", WRITER, str(log), "200000"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,  # unbuffered: select sees every line it has not read
    )
    assert writer.stdout.readline() == b"ready\n"
    rotations = 0
    while not select.select([writer.stdout], [], [], 0)[0]:  # rotating while it writes
        rotations += cap_appended(str(log), 64 << 10)
    assert writer.stdout.readline() == b"200000\n"
    # The last rotation, with the writer paused: nothing moves under it, so the newest whole
    # lines within the cap (two of 101 bytes in 250) must be in the .1 file after it, and the
    # log empty.
    before = log.read_bytes()
    rotated = cap_appended(str(log), 250)  # forced, unless the log holds 250 bytes or less
    assert rotated == (len(before) > 250)
    rotations += rotated
    if rotated:
        assert (tmp_path / "a.network.log.1").read_bytes() == before[-202:]
        assert log.read_bytes() == b""
    writer.communicate(b"go\n")  # its line 200000, after every rotation
    assert writer.returncode == 0
    assert log.read_bytes() == b"%08d " % 200000 + b"x" * 91 + b"\n"  # at the start
    assert rotations >= 2  # the writer outran the cap more than once
    older, now = (tmp_path / "a.network.log.1").read_bytes(), log.read_bytes()
    # no hole: the writer appends at the new end, never at its old offset
    assert b"\0" not in now and b"\0" not in older
    assert len(now) <= 64 << 10
    lines = (older + now).splitlines()
    numbers = [int(line[:8]) for line in lines]
    # In order, and the line written after the last rotation is kept. (A line appended while
    # a rotation read, between its last read and its truncation, may be lost: the
    # docstring's microseconds, which a writer this fast can hit.)
    assert numbers == sorted(numbers) and numbers[-1] == 200000
    assert all(len(line) == 100 for line in lines)  # whole lines, none cut
    # what was dropped is older output: far more was written than is kept
    assert len(lines) < 200001 // 2
    # the positive control: without the cap the same writer leaves the whole of it
    plain = tmp_path / "b.network.log"
    plain.touch()
    subprocess.run(
        [sys.executable, "-c", WRITER, str(plain), "200000"],
        input="go\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert plain.stat().st_size == 200001 * 101


def test_what_moves_is_the_newest_whole_lines_within_the_cap(tmp_path):
    """A flood between two looks: the .1 file gets the newest lines that fit in the cap, not
    all that was written since (a second of a proxy's refusals can be megabytes)."""
    log = tmp_path / "a.network.log"
    lines = [b"%08d " % i + b"x" * 91 + b"\n" for i in range(10_000)]
    log.write_bytes(b"".join(lines))
    assert log.stat().st_size == 10_000 * 101  # control: far past the cap
    assert cap_appended(str(log), 64 << 10)
    older = (tmp_path / "a.network.log.1").read_bytes()
    assert older == b"".join(lines[-((64 << 10) // 101) :]) and log.read_bytes() == b""
    # a cap that ends on a line's end keeps that line whole
    log.write_bytes(b"".join(lines[:3]))
    assert cap_appended(str(log), 202)
    assert (tmp_path / "a.network.log.1").read_bytes() == b"".join(lines[1:3])


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

"""am attach's detach key for container agents, and the engine options podman repeats."""

from am import isolation
from am.ptyrelay import split_detach


def test_ctrl_b_d_detaches_and_what_came_before_goes_through():
    assert split_detach(b"", b"abc\x02d rest") == (b"abc", b"", True)


def test_a_trailing_ctrl_b_is_held_until_the_next_key():
    assert split_detach(b"", b"ab\x02") == (b"ab", b"\x02", False)
    assert split_detach(b"\x02", b"d") == (b"", b"", True)
    # anything else after Ctrl-b goes to the agent, Ctrl-b included
    assert split_detach(b"\x02", b"x") == (b"\x02x", b"", False)


def test_plain_keys_pass_through():
    assert split_detach(b"", b"hello\r") == (b"hello\r", b"", False)


def test_podman_repeats_the_gvisor_runtime_on_init_and_start():
    assert isolation.engine_options("podman", "gvisor", "none") == [
        "--runtime",
        isolation.RUNSC,
        "--runtime-flag",
        "network=none",
    ]
    assert isolation.engine_options("podman", "runc", "none") == []
    # docker names the runtime on the create; its start takes none
    assert isolation.engine_options("docker", "gvisor", "none") == []


def relay_on_a_terminal(
    argv: list[str], keys: list[bytes], deadline: float = 30, before=None
) -> str:
    """am's relay run on a terminal of the test's own (no engine: ARGV stands in for the
    attach client), KEYS typed into it; the relay's return value, or "exit N" when it ended
    the process (a signal's). BEFORE() runs first in the relay's process."""
    import os
    import pty
    import select
    import termios
    import time

    pid, fd = pty.fork()
    if pid == 0:
        from am import ptyrelay

        if before:
            before()
        try:
            code = ptyrelay.relay(argv)
        except SystemExit as e:
            code = f"exit {e.code}"
        os.write(1, f"\r\nRELAY-RC={code}\r\n".encode())
        os._exit(0)
    os.set_blocking(fd, False)
    out, typed = b"", memoryview(b"".join(keys))
    end = time.monotonic() + deadline
    # type once the relay has the terminal in raw mode, as a user at the keyboard would
    while keys and termios.tcgetattr(fd)[3] & termios.ICANON:
        assert time.monotonic() < end, "the relay never set the terminal raw"
        time.sleep(0.01)
    while True:
        assert time.monotonic() < end, f"the relay did not return: {out[-200:]!r}"
        _, writable, _ = select.select([], [fd] if typed else [], [], 0)
        if writable:
            try:
                typed = typed[os.write(fd, typed) :]
            except BlockingIOError:
                pass
        if select.select([fd], [], [], 0.05)[0]:
            try:
                got = os.read(fd, 1 << 16)
            except OSError:
                break
            out += got
        if b"RELAY-RC=" in out and out.split(b"RELAY-RC=")[1].find(b"\r\n") >= 0:
            break
    os.waitpid(pid, 0)
    return out.split(b"RELAY-RC=")[1].split(b"\r")[0].decode()


def test_relay_detaches_on_ctrl_b_d_and_the_client_ends():
    assert relay_on_a_terminal(["cat"], [b"hello\r", b"\x02d"]) == "0"


def test_an_agent_that_reads_nothing_cannot_keep_the_user_from_detaching():
    # A megabyte typed ahead of a client that never reads, then Ctrl-b d: a blocking write
    # would hang here until the deadline.
    assert relay_on_a_terminal(["sleep", "60"], [b"x" * (1 << 20), b"\x02d"]) == "0"


def test_the_clients_own_exit_status_is_returned():
    assert relay_on_a_terminal(["sh", "-c", "exit 7"], []) == "7"
    assert relay_on_a_terminal(["no-such-program-am-test"], []) == "127"


def sigterm_once_the_relay_waits_taken_by_another_thread():
    """A thread of the relay's process that, once the relay sleeps in select, takes a
    SIGTERM itself: as a signal that comes just before the select begins, its Python
    handler is left to the relay's thread, which no key or output wakes."""
    import signal
    import threading

    wchan = f"/proc/self/task/{threading.get_native_id()}/wchan"

    def elsewhere():
        while not open(wchan).read().startswith(("poll_schedule_timeout", "do_select")):
            pass
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=elsewhere, daemon=True).start()


def test_a_sigterm_ends_the_relay_though_nothing_comes_through_it():
    # 'sleep' says nothing and nobody types: only the signal's own wakeup ends the wait
    rc = relay_on_a_terminal(
        ["sleep", "60"],
        [],
        deadline=20,
        before=sigterm_once_the_relay_waits_taken_by_another_thread,
    )
    assert rc == "exit 143"

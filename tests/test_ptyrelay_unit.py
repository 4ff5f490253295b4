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

"""The pure parts of ``am spawn --count``: the agents' names, and the one error for those
that are not running."""

import signal

import pytest

from am.commands.spawn import (
    ENDED_WHILE_STARTING,
    STOPPED_WHILE_STARTING,
    count_names,
    many_failed,
)
from am.errors import AmError


def test_names_are_numbered_only_for_several():
    assert count_names(None, 3) == [None, None, None]
    assert count_names("fix", 1) == ["fix"]
    assert count_names("fix", 3) == ["fix-1", "fix-2", "fix-3"]
    with pytest.raises(AmError, match="invalid agent name 'nnn.*-1'"):
        count_names("n" * 62, 2)  # valid alone, 64 characters with its number


def test_all_running_is_no_error():
    assert many_failed([0, 0, 0]) is None


def test_each_way_of_not_running_is_counted_and_named():
    codes = [0, 1, ENDED_WHILE_STARTING, 130, 128 + signal.SIGKILL, 0, 2, STOPPED_WHILE_STARTING]
    error = many_failed(codes)
    assert error.code == 1
    assert error.message == (
        "6 of 8 agents are not running; 2 did not start (errors above); 1 ended while "
        "starting (kept: 'am list' shows them); 1 stopped by 'am stop' while starting (kept, "
        "stopped); 1 interrupted (undone) or never begun; 1 killed by SIGKILL ('am doctor "
        "--fix' clears what it left); the ids of the 4 made are on standard output"
    )


def test_a_stop_says_by_what_and_exits_as_the_signal_does():
    error = many_failed([0, 130, 130], signal.SIGTERM)
    assert error.code == 128 + signal.SIGTERM
    assert error.message.startswith("stopped by SIGTERM: 2 of 3 agents are not running; 2 ")
    # stopped after every agent had started: still said, still the signal's exit status
    error = many_failed([0, 0], signal.SIGINT)
    assert error.code == 130 and error.message.startswith("stopped by SIGINT: 0 of 2 agents")


def test_a_lone_spawn_under_nohup_is_not_undone_by_a_hang_up():
    """SIGHUP ignored, as nohup leaves it: a hang-up during the spawn is still ignored, and
    so is one during an undo a SIGTERM began."""
    import os

    from am.commands.spawn import spawn_alone
    from am.fanout import STOPS

    handlers = {s: signal.getsignal(s) for s in STOPS}  # the undo sets them all: put back
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:

        def one():
            os.kill(os.getpid(), signal.SIGHUP)
            return 0

        assert spawn_alone(one) == 0
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN

        def stopped_then_hung_up():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            except KeyboardInterrupt:  # the undo: a hang-up now must not change its handler
                assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
                raise

        with pytest.raises(AmError, match="stopped by SIGTERM"):
            spawn_alone(stopped_then_hung_up)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)

"""am/clock.py: time stamps parsed without strptime where they are what am writes, and
exactly as strptime parses them everywhere else."""

import calendar
import random
import time

import pytest

from am import clock


def strptime_epoch(text):
    try:
        return float(calendar.timegm(time.strptime(text, clock.FORMAT)))
    except ValueError:
        return None


def test_what_am_writes_reads_back_as_strptime_reads_it():
    rng = random.Random(7)
    for ts in [
        0,
        951782400,
        4107542399,
        *(rng.randint(-(10**10), 2 * 10**10) for _ in range(20000)),
    ]:
        text = clock.iso(ts)
        assert clock.epoch(text) == strptime_epoch(text) == ts, text


@pytest.mark.parametrize(
    "text",
    [
        "2024-02-29T00:00:00Z",
        "2026-02-29T00:00:00Z",  # no such day
        "2026-02-30T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-11-29T24:00:00Z",
        "2026-11-29T23:59:60Z",  # a leap second: strptime takes it
        "2026-11-29T01:53:16z",
        "2026-11-29T01:5\uff13:16Z",  # a full-width digit
        "2026-1-29T01:53:16Z",
        "+026-11-29T01:53:16Z",
        "2026-11-29 01:53:16Z",
        "2026-11-29T-1:53:16Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2026-11-29T01:53:16",
        "",
    ],
)
def test_any_other_text_is_parsed_as_strptime_parses_it(text):
    assert clock.epoch(text) == strptime_epoch(text)


def test_a_day_past_the_month_is_refused_by_the_check_not_the_arithmetic():
    """Control: the day count alone takes 30 February as 2 March; writing the answer back
    is what refuses it."""
    assert clock.days(2026, 2, 30) == clock.days(2026, 3, 2)
    assert clock.epoch("2026-02-30T00:00:00Z") is None
    assert clock.days(1970, 1, 1) == 0 and clock.days(2000, 3, 1) == 11017

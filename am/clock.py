"""The one timestamp format of records, exit files and manifests: UTC ISO 8601 to the second
(``2026-11-28T07:41:49Z``)."""

import time

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def iso(ts: float | None = None) -> str:
    """TS (seconds since the epoch; now when None) in FORMAT."""
    return time.strftime(FORMAT, time.gmtime(ts))


def epoch(text: str | None) -> float | None:
    """Seconds since the epoch of TEXT in FORMAT; None when it is empty or not in FORMAT."""
    if not isinstance(text, str) or not text:
        return None
    import calendar  # only here: parsing is rarer than formatting

    try:
        return float(calendar.timegm(time.strptime(text, FORMAT)))
    except ValueError:
        return None

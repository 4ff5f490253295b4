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
    quick = _canonical(text)
    if quick is not None:
        return quick
    import calendar  # only here: what am writes takes the way above

    try:
        return float(calendar.timegm(time.strptime(text, FORMAT)))
    except ValueError:
        return None


def _canonical(text: str) -> float | None:
    """TEXT's seconds when it is exactly what ``iso`` writes, else None (``strptime`` then
    decides). ``am status`` reads two time stamps a record, and ``strptime`` with its imports
    cost 20 ms of it at 600 records; the answer is checked by writing it back."""
    if len(text) != 20 or not text[:4].isdigit():
        return None
    try:
        y, mo, d = int(text[:4]), int(text[5:7]), int(text[8:10])
        h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
    except ValueError:
        return None
    seconds = float(days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s)
    try:
        return seconds if iso(seconds) == text else None
    except (OverflowError, OSError, ValueError):
        return None


def days(y: int, mo: int, d: int) -> int:
    """Days from 1970-01-01 to the proleptic Gregorian date Y-MO-D (pure; a day past its
    month's end counts on into the next)."""
    yy = y - (mo <= 2)  # a year taken from March on: the leap day comes last
    era = yy // 400
    of_era = yy - era * 400
    of_year = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719468

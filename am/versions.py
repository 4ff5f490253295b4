"""Versions of the host tools am relies on, checked against known-bad releases."""

import re

from am import proc

MIN_GIT = (2, 39, 0)
MIN_RUNC = (1, 1, 12)  # earlier runc releases allow container escapes (CVE-2024-21626)


def parse(text: str) -> tuple[int, ...] | None:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(x or 0) for x in m.groups()) if m else None


def tool_version(argv: list[str]) -> tuple[int, ...] | None:
    try:
        res = proc.run(argv)
    except proc.NotFound:
        return None
    return parse(res.out) if res.ok else None


def show(v: tuple[int, ...] | None) -> str:
    return ".".join(map(str, v)) if v else "not found"


def runc_status() -> tuple[bool | None, str]:
    """Whether the host's runc is free of the known escapes: (ok, description); None if absent.

    Distributions backport the fixes without changing the upstream number, so a Debian build
    carrying the CVE-2024-21626 fix (1.1.5+ds1-1+deb12u1 and later) counts as fixed.
    """
    try:
        res = proc.run(["runc", "--version"])
    except proc.NotFound:
        return None, "not found"
    v = parse(res.out)
    if v is None:
        return None, "unknown version"
    commit = re.search(r"commit:\s*(\S+)", res.out)
    text = show(v) + (f" ({commit.group(1)})" if commit else "")
    if v >= MIN_RUNC:
        return True, text
    deb = re.search(r"\+deb(\d+)u(\d+)", commit.group(1) if commit else "")
    if v[:2] == (1, 1) and deb and int(deb.group(1)) >= 12 and int(deb.group(2)) >= 1:
        return True, text + ", Debian build with the escape fixes"
    return False, text + ": known container escapes (CVE-2024-21626), upgrade to 1.1.12+"

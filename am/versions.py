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


def git_verdict(text: str) -> tuple[bool | None, str]:
    """Judge ``git --version`` output: (ok, description); None when it cannot be read."""
    v = parse(text)
    if v is None:
        return None, "unknown version"
    if v >= MIN_GIT:
        return True, show(v)
    return False, (f"{show(v)} is older than 2.39, which lacks fixes that keep hostile "
                   "repositories from running code; upgrade git")


def git_status() -> tuple[bool | None, str]:
    try:
        res = proc.run(["git", "--version"])
    except proc.NotFound:
        return False, "not found"
    return git_verdict(res.out) if res.ok else (False, "does not run")


def runc_status() -> tuple[bool | None, str]:
    """Whether the host's runc is free of the known escapes: (ok, description); None if absent."""
    try:
        res = proc.run(["runc", "--version"])
    except proc.NotFound:
        return None, "not found"
    return runc_verdict(res.out)


def runc_verdict(text: str) -> tuple[bool | None, str]:
    """Judge ``runc --version`` output: (ok, description); None when it cannot be read.

    Distributions backport the fixes without changing the upstream number, so a Debian build
    carrying the CVE-2024-21626 fix (1.1.5+ds1-1+deb12u1 and later) counts as fixed.
    """
    v = parse(text)
    if v is None:
        return None, "unknown version"
    commit = re.search(r"commit:\s*(\S+)", text)
    text = show(v) + (f" ({commit.group(1)})" if commit else "")
    if v >= MIN_RUNC:
        return True, text
    deb = re.search(r"\+deb(\d+)u(\d+)", commit.group(1) if commit else "")
    if v[:2] == (1, 1) and deb and int(deb.group(1)) >= 12 and int(deb.group(2)) >= 1:
        return True, text + ", Debian build with the escape fixes"
    return False, text + ": known container escapes (CVE-2024-21626), upgrade to 1.1.12+"

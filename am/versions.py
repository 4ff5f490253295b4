"""Versions of the host tools am relies on, checked against known-bad releases."""

import re

from am import files, proc

MIN_GIT = (2, 39, 0)
MIN_RUNC = (1, 1, 12)  # earlier runc releases allow container escapes (CVE-2024-21626)


def parse(text: str) -> tuple[int, ...] | None:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(x or 0) for x in m.groups()) if m else None


def version_text(argv: list[str]) -> str | None:
    """What ARGV (a --version call) prints, remembered per binary path, size and mtime.

    Every container spawn checks git and runc; asking each binary once per install rather than
    once per spawn keeps two process starts off the spawn's path.
    """
    import json
    import os

    from am import paths

    path = proc.which(argv[0])
    if not path:
        return None
    st = os.stat(path)
    key = f"{' '.join(argv)}|{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}"
    state = paths.layout().state_dir
    cache = state / "tool-versions.json"

    def known() -> dict:
        return files.read_json_dict(cache) or {}

    def ask() -> str | None:
        try:
            res = proc.run(argv)
        except proc.NotFound:
            return None
        text = res.out if res.ok else ""
        files.write_cache(cache, json.dumps({**known(), key: text}))
        return text

    def lookup() -> str | None:
        text = known().get(key)
        return text if isinstance(text, str) else None

    # Agents spawned at once ask each binary once, and keep each other's answers.
    return files.fill_once(state / "tool-versions.lock", lookup, ask)


def tool_version(argv: list[str]) -> tuple[int, ...] | None:
    text = version_text(argv)
    return parse(text) if text else None


def show(v: tuple[int, ...] | None) -> str:
    return ".".join(map(str, v)) if v else "not found"


def git_verdict(text: str) -> tuple[bool | None, str]:
    """Judge ``git --version`` output: (ok, description); None when it cannot be read."""
    v = parse(text)
    if v is None:
        return None, "unknown version"
    if v >= MIN_GIT:
        return True, show(v)
    return False, (
        f"{show(v)} is older than 2.39, which lacks fixes that keep hostile "
        "repositories from running code; upgrade git"
    )


def git_status() -> tuple[bool | None, str]:
    out = version_text(["git", "--version"])
    if out is None:
        return False, "not found"
    return git_verdict(out) if out else (False, "does not run")


def runc_status() -> tuple[bool | None, str]:
    """Whether the host's runc is free of the known escapes: (ok, description); None if absent."""
    out = version_text(["runc", "--version"])
    if out is None:
        return None, "not found"
    return runc_verdict(out)


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

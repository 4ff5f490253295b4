"""Entries of a limited agent's allowlist: ``example.com``, ``*.example.com``, ``HOST:PORT``.

An entry names hosts, never addresses: IP literals, single-label names (``localhost``) and
wildcards over a public suffix (``*.com``, ``*.co.uk``, ``*.github.io``: hosts of many owners)
are refused, each with its own error. A bare entry allows port 80 (http) and 443 (https, by
``CONNECT``); ``HOST:PORT`` allows that one port, for both. Pure functions; the public suffix
list (the ``publicsuffixlist`` package) is loaded only for wildcards.
"""

import functools
import re

from am.errors import AmError

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_NAME_RE = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")
DEFAULT_PORTS = (80, 443)
EXAMPLE = "a host name such as example.com, *.example.com or example.com:8443"


def split(entry: str) -> tuple[str, int | None]:
    """A checked entry as (host pattern, port or None for the default ports)."""
    host, sep, port = entry.rpartition(":")
    return (host, int(port)) if sep else (entry, None)


def check(entry: str, label: str = "--allow-domain", suffixes: bool = True) -> str:
    """ENTRY normalised (lower case), or one clear error naming LABEL. SUFFIXES: also refuse
    wildcards over a public suffix (loads the list, about 50 ms)."""
    text = entry.strip().lower() if isinstance(entry, str) else ""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, ""

    def bad(why: str, hint: str = EXAMPLE) -> AmError:
        return AmError(f"invalid {label} {entry!r}: {why}", hint)

    ipv6 = text.startswith("[") or text.count(":") > 1 and re.fullmatch(r"[\da-f:.]+", text)
    if ipv6 or re.fullmatch(r"[\d.]+", host.removeprefix("*.")):
        raise bad(
            "an IP address",
            "name the host instead: the proxy forwards host names only, "
            "and refuses private addresses unless allowed by name",
        )
    if sep and not (port.isdigit() and 0 < int(port) < 65536):
        raise bad("the port must be a number from 1 to 65535")
    if ":" in host:
        raise bad("not a host name")
    if not _NAME_RE.fullmatch(host) or len(host) > 253:
        raise bad("not a host name")
    if host.rsplit(".", 1)[-1].isdigit():
        raise bad("ends in a number, like an IP address", "name the host instead")
    base = host.removeprefix("*.")
    if "." not in base:
        what = (
            "a wildcard over a top-level domain" if host.startswith("*.") else "a single-label name"
        )
        raise bad(what, "give a full host name such as example.com")
    if suffixes and host.startswith("*.") and is_public_suffix(base):
        raise bad(
            f"a wildcard over the public suffix {base!r}, whose hosts belong to many owners",
            f"name the hosts you need, such as example.{base} or *.example.{base}",
        )
    return f"{host}:{int(port)}" if sep else host


@functools.cache
def _suffix_list():
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def is_public_suffix(name: str) -> bool:
    return _suffix_list().is_public(name)


def regex(pattern: str) -> str:
    """An anchored extended regular expression for a host pattern: ``a.b`` is exactly that
    host, ``*.a.b`` any host under ``a.b`` (not ``a.b`` itself)."""
    # A checked pattern holds only letters, digits, '-' and dots: only the dots need escaping
    # (and POSIX leaves other escapes undefined).
    if pattern.startswith("*."):
        return r"^([a-z0-9_-]+\.)+" + pattern[2:].replace(".", r"\.") + "$"
    return "^" + pattern.replace(".", r"\.") + "$"

"""Sockets made by the C module itself (``_socket``): ``socket.py`` adds only what am's
clients of a unix socket do not use, and its import (its enums) costs a few ms of every
command that talks to the keeper or to an engine's API."""

from __future__ import annotations

import _socket

AF_UNIX = _socket.AF_UNIX
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_SEQPACKET = _socket.SOCK_SEQPACKET


class Socket(_socket.socket):
    """A socket that closes at the end of a ``with`` block."""

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(address: str, timeout: float | None = None, kind: int = SOCK_STREAM) -> Socket:
    """A unix socket of KIND connected to ADDRESS (OSError if nothing listens there)."""
    s = Socket(AF_UNIX, kind)
    try:
        s.settimeout(timeout)
        s.connect(address)
    except BaseException:
        s.close()
        raise
    return s

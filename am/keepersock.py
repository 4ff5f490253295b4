"""The keeper's socket, ``state/run/keeper.sock``, from the clients' side: its address, a
connection, and ``ask``, one quick question that never starts a keeper (``am status``).
Here, not in ``am.keeper``, whose imports a status does not need."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket


def address(path: str) -> tuple[str, int | None]:
    """An address for the unix socket PATH, whose full path may be too long for one: through a
    descriptor of its folder on Linux (returned too, for the caller to close once connected
    or bound); elsewhere a short name in a folder of the user's own under the temp folder."""
    if len(os.fsencode(path)) < 100:
        return path, None
    from am import hostos

    folder, _, name = path.rpartition("/")
    if hostos.linux():
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        return f"/proc/self/fd/{fd}/{name}", fd
    import hashlib
    import stat
    import tempfile
    from pathlib import Path

    short = Path(tempfile.gettempdir()) / f"am-{os.getuid()}"
    short.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(short)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError(f"{short} is not a private folder of this user")
    return str(short / (hashlib.sha256(path.encode()).hexdigest()[:16] + ".sock")), None


def connect(run: str, timeout: float) -> socket.socket:
    """A connection to the keeper of the run folder RUN (OSError if none listens)."""
    import socket

    addr, fd = address(f"{run}/keeper.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(addr)
    except BaseException:
        s.close()
        raise
    finally:
        if fd is not None:
            os.close(fd)
    return s


def ask(run: str, message: dict, timeout: float = 1.0) -> dict | None:
    """The keeper's answer to MESSAGE, or None: no keeper, no answer within TIMEOUT seconds,
    or not one JSON object."""
    import json

    try:
        with connect(run, timeout) as s:
            s.sendall(json.dumps(message).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n") and len(data) < 16 << 20:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None

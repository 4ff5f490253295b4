"""The keeper's socket, ``state/run/keeper.sock``, from the clients' side: its address, a
connection, ``ask``, one quick question that never starts a keeper (``am status``), and
``request``, which starts one when none answers (a spawn's watch of its container). Here,
not in ``am.keeper``, whose imports (its watches, cgroups and threads) no client needs."""

from __future__ import annotations

import os

from am import rawsock
from am.rawsock import Socket as Connection


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


def connect(run: str, timeout: float) -> Connection:
    """A connection to the keeper of the run folder RUN (OSError if none listens)."""
    addr, fd = address(f"{run}/keeper.sock")
    try:
        return rawsock.connect(addr, timeout)
    finally:
        if fd is not None:
            os.close(fd)


def exchange(s: Connection, message: dict) -> bytes:
    """MESSAGE as one JSON line on the connection S, and the keeper's line back (what came
    before the connection's end, if no whole line did)."""
    import json

    s.sendall(json.dumps(message).encode() + b"\n")
    data = b""
    while not data.endswith(b"\n") and len(data) < 16 << 20:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return data


def ask(run: str, message: dict, timeout: float = 1.0) -> dict | None:
    """The keeper's answer to MESSAGE, or None: no keeper, no answer within TIMEOUT seconds,
    or not one JSON object."""
    import json

    try:
        with connect(run, timeout) as s:
            data = exchange(s, message)
        answer = json.loads(data)
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def alive(layout) -> bool:
    """Whether a keeper holds this AM_HOME's lock (see ``runfiles.keeper_alive``)."""
    from am.runfiles import keeper_alive

    return keeper_alive(str(layout.run))


def start(layout):
    """Start a keeper for LAYOUT in the background (it leaves at once if one already runs);
    its Popen."""
    import subprocess
    import sys

    layout.run.mkdir(parents=True, exist_ok=True)
    keep = (
        "PATH",
        "HOME",
        "AM_HOME",
        "LANG",
        "LC_ALL",
        "TMPDIR",
        "USER",
        "LOGNAME",
        "AM_KEEPER_IDLE",
        "AM_PORTABLE",
    )
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("XDG_")}
    # -P: not the working directory first on sys.path (see am.supervise).
    with open(layout.run / "keeper.err", "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-P", "-m", "am.keeper"],
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )


def request(layout, message: dict, timeout: float = 60, start_keeper: bool = True) -> dict:
    """Send MESSAGE to the keeper (starting one if none answers) and return its answer."""
    import json
    import time

    from am.errors import AmError

    deadline = time.monotonic() + 15
    started = None
    while True:
        try:
            s = connect(layout.run_text, timeout)
        except OSError:
            if not start_keeper:
                raise AmError("am's keeper is not running") from None
            # One at a time: again only if the one started has left (it found another
            # keeper that was leaving itself).
            if (started is None or started.poll() is not None) and not alive(layout):
                started = start(layout)
            if time.monotonic() > deadline:
                raise AmError(
                    "am's keeper did not answer", f"see {layout.run / 'keeper.err'}"
                ) from None
            time.sleep(0.02)
            continue
        with s:
            data = b""
            try:
                data = exchange(s, message)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            except TimeoutError:
                raise AmError(
                    f"am's keeper did not answer within {timeout:.0f} s",
                    f"see {layout.run / 'keeper.err'}",
                ) from None
        if data or time.monotonic() > deadline:
            break
        # Reset unanswered: a keeper leaving as this connected never took the request (it
        # answers every request it accepts before it leaves). The next keeper will.
        time.sleep(0.02)
    try:
        answer = json.loads(data)
    except ValueError:
        raise AmError("am's keeper gave no answer", f"see {layout.run / 'keeper.err'}") from None
    if not answer.get("ok"):
        raise AmError(answer.get("error") or "am's keeper refused", answer.get("hint"))
    return answer


def ensure(layout) -> None:
    """Make sure a keeper looks after this AM_HOME's container agents (cheap when one does)."""
    if not alive(layout):
        start(layout)

"""``am logs``: the agent's terminal output, kept on the host after the agent is gone."""

import contextlib
import os
import stat
import sys
import time
from collections import deque
from pathlib import Path

from am import backends, paths, records, status
from am.errors import AmError
from am.record import Status
from am.store import open_store


def tail_bytes(data: bytes, n: int) -> bytes:
    return b"".join(deque(data.splitlines(keepends=True), maxlen=n))


def open_log(log: Path):
    """LOG opened for reading, never through a link; None if it is no regular file."""
    try:
        fd = os.open(log, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def inode(path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


@contextlib.contextmanager
def steady(f, wait: float = 2.0):
    """Hold a shared flock on the open log F for the block: a tmux agent's supervisor cuts
    its log in place under an exclusive one, so both parts read in the block are of one
    moment. Given up after WAIT seconds (the log is read anyway)."""
    import fcntl

    deadline = time.monotonic() + wait
    held = False
    while not held:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        except OSError:
            break
    try:
        yield
    finally:
        if held and not f.closed:  # closing it (for the keeper's new log) let go
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def older_part(log: Path, current: int | None) -> bytes:
    """The rotated ``.1`` file's bytes, unless it is the file of inode CURRENT (for an
    instant of a rotation both names name one file)."""
    rotated = open_log(Path(f"{log}.1"))
    if rotated is None:
        return b""
    with rotated:
        if os.fstat(rotated.fileno()).st_ino == current:
            return b""
        return rotated.read()


def whole(f, log: Path) -> bytes:
    """What the open log F and its older part hold, read together (``steady``)."""
    with steady(f):
        return older_part(log, os.fstat(f.fileno()).st_ino) + f.read()


def read_log(log: Path) -> bytes:
    """The whole log as the agent printed it: the rotated file first, if any."""
    f = open_log(log)
    if f is None:
        return older_part(log, None)
    with f:
        return whole(f, log)


def screen(view: dict, layout, lines: int = 50) -> bytes:
    """The last LINES lines of an agent's output (what a terminal would still show)."""
    log = Path(view["log"])
    return tail_bytes(read_log(log), lines)


def network_log(args, record: dict, layout) -> int:
    """The requests a limited agent's proxy refused, one line each; -f follows them."""
    from am.backends import network

    if not record.get("network_log"):
        raise AmError(
            f"agent {args.id} has no network log",
            f"its network policy is {record.get('network') or 'the host (tmux)'}; "
            "only --network limited agents have a proxy",
        )
    backend = backends.of_record(record)
    if (
        backend is not None
        and not backend.network_log_live
        and status.view(args.id, layout)["status"] == Status.RUNNING
    ):
        return proxy_network_log(args, record, backend)
    log = Path(record["network_log"])
    if not log.is_file() or log.is_symlink():
        raise AmError(f"no network log for agent {args.id} at {log}")
    with open(log, encoding="utf-8", errors="replace") as f:
        rotated = Path(f"{log}.1")
        older = []
        if rotated.is_file() and not rotated.is_symlink():
            older = rotated.read_text(encoding="utf-8", errors="replace").splitlines(True)
        lines = network.denied(older + f.readlines())
        if args.tail is not None:
            lines = lines[-args.tail :] if args.tail else []
        print("\n".join(lines), end="\n" if lines else "", flush=True)
        while args.follow:
            if os.fstat(f.fileno()).st_size < f.tell():
                f.seek(0)  # the keeper moved what we read to the .1 file (logs.max_size)
            more = f.readlines()
            if more:
                for line in network.denied(more):
                    print(line, flush=True)
            elif status.view(args.id, layout)["status"] != Status.RUNNING:
                return 0
            else:
                time.sleep(0.5)
    return 0


def proxy_network_log(args, record: dict, backend) -> int:
    """A running agent's refused requests from where its proxy runs (a Kubernetes proxy pod's
    output: the host's network log gets them when the agent ends)."""
    from am.backends import network

    out = backend.proxy_log(record)
    lines = network.denied(out.splitlines(keepends=True))
    if args.tail is not None:
        lines = lines[-args.tail :] if args.tail else []
    print("\n".join(lines), end="\n" if lines else "", flush=True)
    if args.follow:
        print(
            "am: note: --follow is not available for a Kubernetes agent's network log; "
            "run it again, or 'kubectl logs -f' its proxy pod",
            file=sys.stderr,
        )
    return 0


def follow(f, log: Path, cut: int | None, out, running) -> object:
    """Print what is written to the open log F from here on, across its cuts, until the
    agent is no longer RUNNING (asked only when output has paused); CUT: the inode of the
    log's .1 file at the last read. Returns the file last read (the caller closes it)."""
    quiet_since = time.monotonic()
    while True:
        with steady(f):
            chunk = f.read(65536)
            mine, current = os.fstat(f.fileno()).st_ino, inode(log)
            if current is not None and current != mine:
                # The keeper made a new log: what is left of this one, then that one.
                chunk += f.read()
                f.close()
                f = open_log(log) or open(os.devnull, "rb")
                cut = inode(f"{log}.1")
            elif inode(f"{log}.1") not in (cut, mine):
                # A tmux agent's supervisor moved this one's end to a new .1 file and
                # emptied it: it starts again.
                cut = inode(f"{log}.1")
                f.seek(0)
        if chunk:
            out.write(chunk)
            out.flush()
            quiet_since = time.monotonic()
            continue
        # Poll the status only when output has paused, and stop once the agent is gone.
        if time.monotonic() - quiet_since > 1.0:
            if not running():
                out.write(f.read())
                out.flush()
                return f
            quiet_since = time.monotonic()
        time.sleep(0.2)


def run(args) -> int:
    layout = paths.layout()
    record = records.check(open_store(layout).get(args.id), layout, args.id)
    log = Path(record["log"])
    if args.tail is not None and args.tail < 0:
        raise AmError("--tail must be 0 or more")
    if args.network:
        return network_log(args, record, layout)
    f = open_log(log)
    if f is None:
        raise AmError(f"no log for agent {args.id} at {log}")
    out = sys.stdout.buffer
    try:
        if args.tail is not None:
            out.write(tail_bytes(read_log(log), args.tail) if args.tail else b"")
            f.seek(0, os.SEEK_END)
            cut = inode(f"{log}.1")
        else:
            with steady(f):
                out.write(older_part(log, os.fstat(f.fileno()).st_ino))
                out.write(f.read())
                cut = inode(f"{log}.1")
        out.flush()
        if not args.follow:
            return 0
        f = follow(
            f, log, cut, out, lambda: status.view(args.id, layout)["status"] == Status.RUNNING
        )
        return 0
    finally:
        f.close()

"""``am logs``: the agent's terminal output, kept on the host after the agent is gone."""

import io
import os
import sys
import time
from collections import deque
from pathlib import Path

from am import backends, paths, records, status
from am.errors import AmError
from am.logread import follow, ident_of, older_part, open_log, read_log, whole
from am.record import Status
from am.store import open_store


def tail_bytes(data: bytes, n: int) -> bytes:
    return b"".join(deque(data.splitlines(keepends=True), maxlen=n))


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
    raw = open_log(log)  # one open, never through a link: no check-then-use
    if raw is None:
        raise AmError(f"no network log for agent {args.id} at {log}")
    with io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as f:
        older = older_part(log, ident_of(raw)).decode("utf-8", "replace").splitlines(True)
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
        data, cut = whole(f, log)  # written out once the lock is let go: a pager may pause
        if args.tail is not None:
            data = tail_bytes(data, args.tail) if args.tail else b""
        out.write(data)
        out.flush()
        if not args.follow:
            return 0

        def running() -> bool:
            return status.view(args.id, layout)["status"] == Status.RUNNING

        f = follow(f, log, cut, out, running)
        return 0
    finally:
        f.close()

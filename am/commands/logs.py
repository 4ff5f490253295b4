"""``am logs``: the agent's terminal output, kept on the host after the agent is gone."""

import os
import sys
import time
from collections import deque
from pathlib import Path

from am import paths, records, status
from am.errors import AmError
from am.store import open_store


def tail_bytes(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return b"".join(deque(f, maxlen=n))


def network_log(args, record: dict, layout) -> int:
    """The requests a limited agent's proxy refused, one line each; -f follows them."""
    from am import network

    if not record.get("network_log"):
        raise AmError(f"agent {args.id} has no network log",
                      f"its network policy is {record.get('network') or 'the host (tmux)'}; "
                      "only --network limited agents have a proxy")
    log = Path(record["network_log"])
    if not log.is_file() or log.is_symlink():
        raise AmError(f"no network log for agent {args.id} at {log}")
    with open(log, encoding="utf-8", errors="replace") as f:
        lines = network.denied(f.readlines())
        if args.tail is not None:
            lines = lines[-args.tail:] if args.tail else []
        print("\n".join(lines), end="\n" if lines else "", flush=True)
        while args.follow:
            more = f.readlines()
            if more:
                for line in network.denied(more):
                    print(line, flush=True)
            elif status.view(args.id, layout)["status"] != "running":
                return 0
            else:
                time.sleep(0.5)
    return 0


def run(args) -> int:
    layout = paths.layout()
    record = records.check(open_store(layout).get(args.id), layout, args.id)
    log = Path(record["log"])
    if args.tail is not None and args.tail < 0:
        raise AmError("--tail must be 0 or more")
    if args.network:
        return network_log(args, record, layout)
    if not log.is_file() or log.is_symlink():
        raise AmError(f"no log for agent {args.id} at {log}")
    out = sys.stdout.buffer
    with open(log, "rb") as f:
        if args.tail is not None:
            out.write(tail_bytes(log, args.tail) if args.tail else b"")
            f.seek(0, os.SEEK_END)
        else:
            out.write(f.read())
        out.flush()
        if not args.follow:
            return 0
        quiet_since = time.monotonic()
        while True:
            chunk = f.read(65536)
            if chunk:
                out.write(chunk)
                out.flush()
                quiet_since = time.monotonic()
                continue
            # Poll the status only when output has paused, and stop once the agent is gone.
            if time.monotonic() - quiet_since > 1.0:
                if status.view(args.id, layout)["status"] != "running":
                    out.write(f.read())
                    return 0
                quiet_since = time.monotonic()
            time.sleep(0.2)

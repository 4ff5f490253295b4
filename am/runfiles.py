"""What the supervisor and the keeper write beside a running agent, for ``am list`` and
``am status`` to read: its exit file, its health events, a gVisor sandbox's task count, and the
note where its log was rotated."""

import json

from am import clock, files


def write_exit(path: str, result: dict) -> None:
    files.write_atomic(path, json.dumps(result), sync=True)


def write_health(path: str | None):
    """A callback that records what the cgroup watch saw, while the agent still runs."""

    def write(watch) -> None:
        if path:
            write_exit(path, {"oom": watch.killed, "pids_limit": watch.pids_hit, "at": clock.iso()})

    return write


def write_guest(path: str | None):
    """A callback that keeps a gVisor sandbox's task count where ``am status`` reads it: a
    figure replaced every few seconds, so not synced to disk like the files above."""

    def write(count: int) -> None:
        if path:
            files.write_atomic(path, json.dumps({"pids": count}))

    return write


def rotation_note(limit: int) -> bytes:
    return (
        f"\r\n[am: the log reached logs.max_size ({limit} bytes) here; the output before "
        "this line is in the .log.1 file beside it, older output was dropped]\r\n"
    ).encode()

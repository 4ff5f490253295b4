"""Runs inside a ``--network limited`` agent container: the agent's only way to its proxy.

``python3 netfwd.py SOCKET PORT [--publish=PATH:APORT]... -- COMMAND...`` listens on
127.0.0.1:PORT, forks a relay that copies every connection to the proxy's unix socket SOCKET,
and executes COMMAND in its own place (so the agent keeps this process's id, terminal and exit
code). The container itself has no network but loopback: when the proxy is gone, connections
simply fail. Each ``--publish`` makes the relay also listen on the unix socket PATH, which the
proxy connects the host's clients to, and copy each connection to the agent's 127.0.0.1:APORT.

Standard library only, and no import of ``am``: the file is mounted alone into the container.
"""

import asyncio
import os
import signal
import socket
import sys


async def _pipe(reader, writer) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass


async def _relay(connect, client_r, client_w) -> None:
    """Copy a client's connection both ways to the one CONNECT opens."""
    try:
        up_r, up_w = await connect()
    except OSError:
        client_w.close()
        return
    await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))
    for w in (client_w, up_w):
        w.close()


async def _serve(listener: socket.socket, path: str, agent: int, published) -> None:
    server = await asyncio.start_server(
        lambda r, w: _relay(lambda: asyncio.open_unix_connection(path), r, w), sock=listener
    )
    for sock_path, port in published:
        try:
            await asyncio.start_unix_server(
                lambda r, w, port=port: _relay(
                    lambda: asyncio.open_connection("127.0.0.1", port), r, w
                ),
                path=sock_path,
            )
        except OSError:
            pass  # that port stays unreachable; the way out to the proxy must not go with it
    async with server:
        # The relay serves the agent alone: once the agent has exited (this process is handed
        # to another parent), it ends too, wherever it runs.
        while os.getppid() == agent:
            await asyncio.sleep(0.5)


def main(argv: list[str]) -> int:
    end = argv.index("--") if "--" in argv else -1
    options = argv[2:end] if end >= 2 else []
    if end < 2 or end == len(argv) - 1 or not all(o.startswith("--publish=") for o in options):
        print(
            "usage: netfwd.py SOCKET PORT [--publish=PATH:PORT]... -- COMMAND...", file=sys.stderr
        )
        return 2
    path, port, command = argv[0], int(argv[1]), argv[end + 1 :]
    published = []
    for option in options:
        sock_path, _, aport = option.removeprefix("--publish=").rpartition(":")
        published.append((sock_path, int(aport)))
    try:
        listener = socket.create_server(("127.0.0.1", port), backlog=128)
    except OSError as e:
        print(
            f"am: error: cannot listen on 127.0.0.1:{port} for the proxy: {e.strerror}",
            file=sys.stderr,
        )
        return 1
    agent = os.getpid()  # the command keeps this process id
    if os.fork() == 0:
        # The relay: its own session, so the terminal's signals are the agent's alone.
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        asyncio.run(_serve(listener, path, agent, published))
        os._exit(0)
    listener.close()
    try:
        os.execvp(command[0], command)
    except OSError as e:
        print(f"am: error: cannot run {command[0]}: {e.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

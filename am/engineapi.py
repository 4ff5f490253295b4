"""A container's terminal stream, straight from its engine, without an engine client process.

am's keeper holds one stream per running container agent (``am.keeper``): the agent's output
for the host log, and its input for ``am send``. Two ways to reach it:

- the engine's HTTP API (docker, or a podman service): ``POST /containers/NAME/attach`` upgraded
  to a raw socket, over the endpoint the CLI itself would use (``DOCKER_HOST``, a docker
  context, ``CONTAINER_HOST``): a unix socket, or tcp with the CLI's TLS files;
- local podman, which has no API daemon: the container's conmon attach socket (one packet
  per read, its first byte naming the stream), and its ``winsz``/``ctl`` FIFOs for the
  terminal size and for reopening the log after a rotation.

Standard library only; every call here is a socket or a file, never a process.
"""

import _socket
import json
import os
import urllib.parse
from pathlib import Path

from am import rawsock
from am.errors import AmError

# What connect() returns: rawsock's on a unix socket, socket.py's (or ssl's) over tcp.
Sock = _socket.socket

DEFAULT_DOCKER = "unix:///var/run/docker.sock"
LINUX = os.uname().sysname == "Linux" if hasattr(os, "uname") else False


class Endpoint:
    """Where an engine's API listens: ``unix:///path`` or ``tcp://host:port`` (TLS with the
    docker CLI's certificate folder when asked)."""

    def __init__(self, url: str, tls: dict | None = None):
        self.url = url
        self.tls = tls or None
        parsed = urllib.parse.urlsplit(url)
        self.scheme = parsed.scheme
        if self.scheme == "unix":
            self.path = parsed.path
        elif self.scheme in ("tcp", "http", "https"):
            self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 2375
        else:
            raise AmError(
                f"engine endpoint {url!r}: only unix:// and tcp:// are supported",
                "reach the engine through a unix socket or tcp (an ssh tunnel "
                "with 'ssh -L' gives one)",
            )

    def to_json(self) -> dict:
        return {"url": self.url, "tls": self.tls}

    @classmethod
    def from_json(cls, data: dict) -> "Endpoint":
        return cls(data["url"], data.get("tls"))

    def connect(self, timeout: float | None = 30) -> Sock:
        if self.scheme == "unix":
            return rawsock.connect(self.path, timeout)
        import socket  # its enums cost every spawn a few ms: only where tcp needs it

        s = socket.create_connection((self.host, self.port), timeout=timeout)
        if self.tls:
            import ssl

            ctx = ssl.create_default_context(cafile=self.tls.get("ca"))
            if self.tls.get("cert"):
                ctx.load_cert_chain(self.tls["cert"], self.tls.get("key"))
            if not self.tls.get("verify", True):
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname=self.host)
        return s

    @property
    def local(self) -> bool:
        """Whether the engine runs on this machine, as far as its address tells: a unix socket.
        (A tcp listener on loopback counts as remote: it may well be forwarded.)"""
        return self.scheme == "unix"


def docker_endpoint(env: dict, context_host=None) -> Endpoint:
    """The docker API endpoint the docker CLI would use with ENV. CONTEXT_HOST, when given, is
    a function returning the current context's host (a CLI call, made only when a context
    other than the default is selected)."""
    host = env.get("DOCKER_HOST")
    if not host:
        context = env.get("DOCKER_CONTEXT") or current_context(env)
        if context and context != "default" and context_host:
            host = context_host(context)
    host = host or DEFAULT_DOCKER
    tls = None
    if host.startswith("tcp://") and any(
        env.get(k) for k in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS")
    ):
        # As the CLI: DOCKER_TLS alone is TLS without checking the daemon; the folder's files
        # are used where they exist.
        certs = Path(env.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
        verify = bool(env.get("DOCKER_TLS_VERIFY"))
        found = {k: certs / f"{k}.pem" for k in ("ca", "cert", "key")}
        tls = {k: str(p) for k, p in found.items() if verify or p.is_file()}
        tls["verify"] = verify
    return Endpoint(host, tls)


def current_context(env: dict) -> str | None:
    config = Path(env.get("DOCKER_CONFIG") or Path(env.get("HOME") or Path.home()) / ".docker")
    try:
        data = json.loads((config / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = data.get("currentContext") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def podman_endpoint(env: dict) -> Endpoint | None:
    """The podman service a remote podman CLI talks to (``CONTAINER_HOST``), or None for a
    local podman (no API daemon: conmon's sockets instead)."""
    host = env.get("CONTAINER_HOST")
    return Endpoint(host) if host else None


# -- the HTTP API ------------------------------------------------------------------------------


def _request_head(method: str, path: str, upgrade: bool, body: bytes = b"") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: engine", "User-Agent: am"]
    if upgrade:
        head += ["Connection: Upgrade", "Upgrade: tcp"]
    else:
        head += ["Connection: close"]
    if body:
        head += ["Content-Type: application/json"]
    head += [f"Content-Length: {len(body)}"] if method == "POST" else []
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _read_head(sock: Sock) -> tuple[int, bytes, bytes]:
    """Status, head and the bytes read past the head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("the engine closed the connection")
        data += chunk
        if len(data) > 1 << 20:
            raise OSError("the engine's answer has no end of head")
    head, _, rest = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise OSError(f"not an HTTP answer: {head[:60]!r}") from None
    return status, head, rest


def attach(ep: Endpoint, name: str, stdin: bool = True, timeout: float = 30) -> tuple[Sock, bytes]:
    """A raw stream of container NAME's terminal (a tty container: no multiplexing) and the
    first bytes already read; raises OSError if the engine refuses."""
    q = urllib.parse.quote(name)
    path = f"/containers/{q}/attach?stream=1&stdout=1&stderr=1&stdin={int(stdin)}"
    sock = ep.connect(timeout)
    try:
        sock.sendall(_request_head("POST", path, upgrade=True))
        status, head, rest = _read_head(sock)
        if status not in (101, 200):
            raise OSError(f"attach refused ({status}): {rest[:200].decode(errors='replace')}")
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return sock, rest


def call(
    ep: Endpoint, method: str, path: str, body: dict | None = None, timeout: float = 30
) -> tuple[int, bytes]:
    """One plain request: status and body (the whole answer up to the close)."""
    data = json.dumps(body).encode() if body is not None else b""
    with ep.connect(timeout) as sock:
        sock.sendall(_request_head(method, path, upgrade=False, body=data))
        status, head, rest = _read_head(sock)
        chunks = [rest]
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    body_bytes = b"".join(chunks)
    if b"transfer-encoding: chunked" in head.lower():
        body_bytes = _unchunk(body_bytes)
    return status, body_bytes


def _unchunk(data: bytes) -> bytes:
    out, pos = [], 0
    while pos < len(data):
        end = data.find(b"\r\n", pos)
        if end < 0:
            break
        size = int(data[pos:end].split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(data[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2
    return b"".join(out)


def resize(ep: Endpoint, name: str, rows: int, cols: int) -> bool:
    try:
        status, _ = call(
            ep,
            "POST",
            f"/containers/{urllib.parse.quote(name)}/resize?h={rows}&w={cols}",
            timeout=10,
        )
    except OSError:
        return False
    return status < 300


def inspect(ep: Endpoint, name: str) -> dict | None:
    """The engine's inspect document of container NAME; None if there is none."""
    status, body = call(ep, "GET", f"/containers/{urllib.parse.quote(name)}/json")
    if status == 404:
        return None
    if status >= 300:
        raise OSError(f"inspect {name}: {status} {body[:200]!r}")
    return json.loads(body)


# -- local podman: conmon's sockets ------------------------------------------------------------


class Conmon:
    """The attach socket and control FIFOs conmon keeps in a container's folder (STATIC)."""

    def __init__(self, static: str):
        self.static = static

    def attach(self, wait: float = 10) -> Sock:
        """Connect to the attach socket, waiting up to WAIT seconds for it: conmon makes it
        only after it has told podman the container's pid, so ``podman init`` can return
        before it exists (seen under load as ENOENT)."""
        import time

        deadline = time.monotonic() + wait
        while True:
            try:
                return self._attach()
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _attach(self) -> Sock:
        # The folder's path is too long for a socket address: reach it through a descriptor.
        fd = os.open(self.static, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return rawsock.connect(f"/proc/self/fd/{fd}/attach", kind=rawsock.SOCK_SEQPACKET)
        finally:
            os.close(fd)

    def _fifo(self, name: str, line: str) -> bool:
        try:
            fd = os.open(os.path.join(self.static, name), os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            os.write(fd, line.encode())
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def resize(self, rows: int, cols: int) -> bool:
        return self._fifo("winsz", f"{rows} {cols}\n")

    def reopen_log(self) -> bool:
        """Make conmon open its log file again (after it was moved aside)."""
        return self._fifo("ctl", "2 0 0\n")

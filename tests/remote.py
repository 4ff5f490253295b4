"""A remote engine on this machine: engines that cannot see am's files, reached over tcp.

am and everything it starts run in a private mount namespace (``unshare -m``) in which a tmpfs
covers the folder holding AM_HOME; the engines live in the root namespace and see an empty
folder there, as an engine on another machine would. dockerd is reached through a tcp relay
on loopback to its socket (started here: dockerd's own listeners stay as they are), podman
through ``podman system service`` on a loopback tcp port, started in the root namespace.
"""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

DOCKER_SOCKET = "/var/run/docker.sock"


class Relay:
    """tcp 127.0.0.1:PORT -> a unix socket, one thread pair per connection."""

    def __init__(self, target: str):
        self.target = target
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.closed = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self):
        self.closed = True
        self.server.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Namespace:
    """A mount namespace whose FOLDER is a tmpfs only its own processes see."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.holder = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                f'mount -t tmpfs -o mode=0755 am-remote "{folder}" && echo ready && '
                "exec sleep 100000",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.holder.stdout.readline().strip() != "ready":
            pytest.fail("cannot make a private mount namespace with a tmpfs (unshare -m)")
        self.ns = f"/proc/{self.holder.pid}/ns/mnt"
        # sleep has replaced sh: its pid holds the namespace
        self.prefix = ["nsenter", f"--mount={self.ns}", "--"]

    def run(self, *argv, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run([*self.prefix, *map(str, argv)], **kw)

    def close(self):
        self.holder.kill()
        self.holder.wait()


class RemoteEngine:
    """ENGINE, reached as a remote engine; ``env`` holds what points am at it."""

    def __init__(self, engine: str):
        self.engine = engine
        self.relay = self.service = None
        if engine == "docker":
            self.relay = Relay(DOCKER_SOCKET)
            self.url = f"tcp://127.0.0.1:{self.relay.port}"
            self.env = {"DOCKER_HOST": self.url}
        else:
            port = free_port()
            self.url = f"tcp://127.0.0.1:{port}"
            self.service = subprocess.Popen(
                ["podman", "system", "service", "--time=0", self.url],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.env = {"CONTAINER_HOST": self.url}
        deadline = time.monotonic() + 60
        while (
            subprocess.run(
                [engine, "version"], env={**os.environ, **self.env}, capture_output=True
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline:
                pytest.fail(f"{engine} does not answer at {self.url}")
            time.sleep(0.2)

    def cli(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.engine, *map(str, args)],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
        )

    def close(self):
        if self.relay:
            self.relay.close()
        if self.service:
            self.service.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.service.wait(10)
            if self.service.poll() is None:
                self.service.kill()


class RemoteAm:
    """The am CLI run inside the namespace, against the remote engine, with the engine-side
    fallbacks forced (AM_PORTABLE=1: what a macOS host would use)."""

    def __init__(self, ns: Namespace, remote: RemoteEngine, home: Path, env: dict):
        self.ns, self.remote, self.home = ns, remote, home
        self.env = {**env, **remote.env, "AM_HOME": str(home), "AM_PORTABLE": "1"}
        self.argv = [*ns.prefix, sys.executable, "-m", "am"]

    def __call__(self, *args, check=True, timeout=300, env=None):
        res = subprocess.run(
            [*self.argv, *map(str, args)],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            errors="replace",
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"am {' '.join(map(str, args))} failed ({res.returncode}):\n"
                f"{res.stdout}\n{res.stderr}"
            )
        return res

    def spawn(self, *args) -> str:
        return self("spawn", *args).stdout.strip().splitlines()[-1]

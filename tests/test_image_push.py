"""``am image build --push REGISTRY``: the image a Kubernetes cluster pulls, pushed for real to
a registry on loopback (Debian's docker-registry, started by the test), then read back from
the registry's own API."""

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from containers import engine_ready
from helpers import assert_am_error

pytestmark = pytest.mark.container
TAG = "am-agent:kube-push-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tags(port: int) -> list[str]:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/v2/am-agent/tags/list", timeout=5
        ) as r:
            return json.load(r).get("tags") or []
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return []
        raise


@pytest.fixture
def registry(tmp_path):
    if not shutil.which("docker-registry"):
        pytest.fail(
            "docker-registry is not installed: 'sudo make setup' (Debian's docker-registry package)"
        )
    port = free_port()
    conf = tmp_path / "registry.yml"
    conf.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}/reg\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the registry did not start"
            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(10)


def registries_conf(tmp_path, port: int) -> str:
    """podman's registries.conf marking the loopback registry as plain HTTP (docker takes
    127.0.0.0/8 without TLS by its own default)."""
    path = tmp_path / "registries.conf"
    path.write_text(f'[[registry]]\nlocation = "127.0.0.1:{port}"\ninsecure = true\n')
    return str(path)


def test_build_push_puts_the_image_in_the_registry(am, engine, registry, tmp_path):
    remote = f"127.0.0.1:{registry}/{TAG}"
    if engine == "podman":
        am.env["CONTAINERS_REGISTRIES_CONF"] = registries_conf(tmp_path, registry)
    assert "kube-push-test" not in tags(registry)  # control: nothing there before
    try:
        res = am(
            "image",
            "build",
            "--runtime",
            engine,
            "--agents",
            "",
            "--tag",
            TAG,
            "--push",
            f"127.0.0.1:{registry}",
            timeout=900,
        )
        assert res.stdout.strip().splitlines()[-1] == remote
        assert f"Pushed {remote}" in res.stderr
        assert "kube-push-test" in tags(registry)
    finally:
        subprocess.run([engine, "rmi", TAG, remote], capture_output=True)


def test_a_plain_http_registry_is_named_as_the_cause(am, registry):
    """podman, told nothing about the loopback registry, refuses plain HTTP: the error says
    so and how to allow it, rather than asking for a login."""
    engine_ready("podman")
    remote = f"127.0.0.1:{registry}/{TAG}"
    try:
        res = am(
            "image",
            "build",
            "--runtime",
            "podman",
            "--agents",
            "",
            "--tag",
            TAG,
            "--push",
            f"127.0.0.1:{registry}",
            check=False,
            timeout=900,
        )
        line = assert_am_error(res)
        assert "speaks plain HTTP" in line and "insecure = true in registries.conf" in line
        assert "kube-push-test" not in tags(registry)
    finally:
        subprocess.run(["podman", "rmi", TAG, remote], capture_output=True)


def test_a_bad_registry_is_refused_before_building(am):
    res = am("image", "build", "--runtime", "docker", "--push", "not a registry", check=False)
    assert "invalid --push" in assert_am_error(res)

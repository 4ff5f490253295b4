"""A Kubernetes spawn that cannot reach a usable cluster fails with one ``am: error:`` line
naming the cause and the fix, and leaves nothing made. The real ``kubectl`` runs here, against
kubeconfigs of the test's own: none, an unknown context, a closed loopback port, and a loopback
server answering as an API server does when it refuses the credentials (401) or the rights
(403). No cluster is involved: what these show is kubectl's own failure text and am's reading
of it (docs/scale.md)."""

import http.server
import json
import os
import shutil
import socket
import threading

import pytest
from helpers import assert_am_error, assert_nothing_made


def kubectl_ready() -> None:
    if not shutil.which("kubectl"):
        pytest.fail("kubectl is not installed: 'sudo make setup' (Debian's kubernetes-client)")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Refusing(http.server.BaseHTTPRequestHandler):
    """Answers every request with the Status object an API server sends for CODE."""

    code = 401

    def do_GET(self):
        reason = {401: "Unauthorized", 403: "Forbidden"}[self.code]
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": reason,
                "reason": reason,
                "code": self.code,
            }
        ).encode()
        self.send_response(self.code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    """A loopback server refusing as an API server would; yields a function CODE -> URL."""
    servers = []

    def start(code: int) -> str:
        handler = type("Handler", (Refusing,), {"code": code})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def kubeconfig(path, server: str) -> str:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "ctx",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "ns1"}}
                ],
            }
        )
    )
    return str(path)


@pytest.mark.parametrize(
    "case, cause, fix",
    [
        ("no-kubeconfig", "kubectl has no usable context", "set up a kubeconfig"),
        ("unknown-context", "kubectl has no context of that name", "kubectl config get-contexts"),
        ("closed-port", "cannot reach namespace ns1 of context ctx", "kubectl cluster-info"),
        ("401", "the cluster refused kubectl's credentials", "log in again"),
        ("403", "Kubernetes refused", "ask your cluster's admin for the rights"),
    ],
)
def test_no_usable_cluster_is_one_clear_error(am, repo, tmp_path, api, case, cause, fix):
    kubectl_ready()
    env = {}
    if case == "no-kubeconfig":
        env["KUBECONFIG"] = str(tmp_path / "no-such-kubeconfig")
    elif case == "unknown-context":
        env["KUBECONFIG"] = kubeconfig(tmp_path / "kc", "http://127.0.0.1:1")
        env["AM_KUBE_CONTEXT"] = "no-such-context"
    elif case == "closed-port":
        env["KUBECONFIG"] = kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{closed_port()}")
    else:
        env["KUBECONFIG"] = kubeconfig(tmp_path / "kc", api(int(case)))
    am.env.update(env)
    res = am("spawn", repo, "--container", "--runtime", "kubernetes", "--cmd", "x", check=False)
    line = assert_am_error(res)
    said, _, hint = line.partition(" (hint: ")
    assert cause in said and fix in hint, line
    assert_nothing_made(am.home)
    assert not list(am.home.glob("state/run/*.bundle"))


def test_control_the_kubeconfig_is_one_kubectl_reads(tmp_path, api):
    """Positive control: the kubeconfig above is a working one, so the failures are the
    server's answers, not a kubeconfig kubectl cannot read."""
    import subprocess

    kubectl_ready()
    env = {**os.environ, "KUBECONFIG": kubeconfig(tmp_path / "kc", api(401))}
    res = subprocess.run(
        ["kubectl", "config", "view", "--minify", "--output", "jsonpath={..namespace}"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 0 and res.stdout == "ns1"

"""The pure parts of --network limited: allowlist rules, proxy configuration, command lines,
the plan, the denied-request view, and the relay run on the host over loopback."""

import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from am import ids, network
from am import plan as planning
from am.backends.docker import Docker
from am.backends.podman import Podman
from am.cli import build_parser
from am.errors import AmError
from am.paths import Layout


def matches(domain: str, host: str) -> bool:
    """tinyproxy matches case-insensitively with POSIX ERE; these rules mean the same in re."""
    return re.search(network.domain_rule(domain), host, re.IGNORECASE) is not None


def test_exact_domain_is_that_host_only():
    assert matches("allowed.test", "allowed.test")
    assert matches("allowed.test", "ALLOWED.test")
    for host in ("xallowed.test", "allowed.test.evil", "a.allowed.test", "allowedxtest",
                 "allowed.test."):
        assert not matches("allowed.test", host), host


def test_wildcard_is_subdomains_not_the_domain_itself():
    for host in ("a.example.com", "a.b.example.com", "x-1.example.com"):
        assert matches("*.example.com", host), host
    for host in ("example.com", "evilexample.com", "a.example.com.evil", "a.example.comx",
                 ".example.com", "a/b.example.com"):
        assert not matches("*.example.com", host), host


def test_stat_host_can_never_be_allowed():
    with pytest.raises(AmError):
        planning.check_domain(network.STAT_HOST)
    assert not matches("*.stats", network.STAT_HOST)


def test_domain_rule_refuses_what_check_domain_refuses():
    for bad in ("a b", "a;b", "*", "*.", "a..b", "-a.b", "a.b\n^.*$", "(x)"):
        with pytest.raises(AmError):
            network.domain_rule(bad)


def test_filter_text_has_one_anchored_rule_per_domain():
    text = network.filter_text(["allowed.test", "*.example.com"])
    rules = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert rules == [r"^allowed\.test$", r"^([a-z0-9_-]+\.)+example\.com$"]
    assert network.filter_text([]).strip().startswith("#")  # empty: tinyproxy denies all


def test_config_denies_by_default_and_hides_the_proxy():
    conf = network.config_text("abc")
    lines = {ln.split()[0]: ln.split(None, 1)[1] for ln in conf.splitlines()
             if ln and not ln.startswith("#")}
    assert lines["FilterDefaultDeny"] == "Yes"
    assert lines["Listen"] == "127.0.0.1"  # only socat in its own container reaches it
    assert lines["StatHost"] == f'"{network.STAT_HOST}"'
    assert lines["ConnectPort"] == "443"
    assert lines["Filter"] == f'"{network.CONF_DIR}/filter"'
    for risky in ("Upstream", "ReversePath", "ReverseOnly", "Allow", "BasicAuth"):
        assert risky not in lines


def test_allowed_domains_are_profile_then_extra_without_duplicates():
    assert network.allowed_domains("claude", ["x.test", "api.anthropic.com"]) == [
        "api.anthropic.com", "statsig.anthropic.com", "sentry.io", "x.test"]
    assert network.allowed_domains("custom", ["x.test"]) == ["x.test"]


def test_proxy_names_never_collide_with_agent_containers():
    for agent_id in ("proxy-x", "x", "am_proxy-x", "a.b_c-d"):
        assert not ids.session_name(agent_id).startswith(network.PROXY_PREFIX)
    assert network.proxy_name("x") == "am_proxy-x"


FILES = network.Files(Path("/h/run/x.net/conf"), Path("/h/run/x.net/sock"),
                      Path("/h/logs/x.network.log"))


def test_proxy_run_argv_is_locked_down():
    argv = network.proxy_run_argv("docker", "x", "/h", "am-egress-1", FILES,
                                  ["--user", "1000:1000"])
    assert argv[:2] == ["docker", "run"]
    joined = " ".join(argv)
    for flag in ("--read-only", "--cap-drop ALL", "--security-opt no-new-privileges",
                 "--pull never", "--network am-egress-1", "--label am.proxy=x",
                 "--label am.home=/h", "--name am_proxy-x", "--user 1000:1000"):
        assert flag in joined, flag
    assert f"source=/h/run/x.net/conf,target={network.CONF_DIR},readonly" in joined
    assert f"source=/h/run/x.net/sock,target={network.SOCKET_DIR}" in joined
    assert "--privileged" not in argv and "--cap-add" not in argv
    assert argv[argv.index("--") + 1] == network.PROXY_IMAGE


def test_network_create_argv():
    assert network.network_create_argv("podman", "am-egress-1", "/h") == [
        "podman", "network", "create", "--label", "am.home=/h", "--label", "am.egress=1",
        "am-egress-1"]


def plan_for(*extra, environ=None, tmp=Path("/tmp/amhome")):
    args = build_parser().parse_args(["spawn", "/src", "--container", "--name", "x", *extra])
    layout = Layout(tmp, tmp / "state", tmp / "agents", tmp / "data", tmp)
    return planning.build(args, layout, "/src", environ or {})


def test_plan_of_a_limited_agent():
    p = plan_for("--cmd", "true", "--network", "limited", "--allow-domain", "A.test",
                 "--allow-domain", "*.b.test")
    assert p.network == "limited" and p.network_name == "none"
    assert p.allow_domains == ["a.test", "*.b.test"]
    assert p.proxy == "am_proxy-x"
    assert p.egress == p.managed_egress == network.default_egress("/tmp/amhome")
    rec = p.record("/tmp/amhome")
    assert rec["proxy"] == "am_proxy-x" and rec["managed_egress"] is True
    assert rec["network_log"] == "/tmp/amhome/state/logs/x.network.log"


def test_plan_takes_the_egress_network_from_the_environment():
    p = plan_for("--cmd", "true", "--network", "limited", environ={"AM_EGRESS_NETWORK": "mine"})
    assert p.egress == "mine" and p.record("/h")["managed_egress"] is False
    with pytest.raises(AmError, match="AM_EGRESS_NETWORK"):
        plan_for("--cmd", "true", "--network", "limited",
                 environ={"AM_EGRESS_NETWORK": "--privileged"})


def test_plan_refusals():
    with pytest.raises(AmError, match="--allow-domain needs --network limited"):
        plan_for("--cmd", "true", "--allow-domain", "a.test")
    with pytest.raises(AmError, match="invalid --allow-domain"):
        plan_for("--cmd", "true", "--network", "limited", "--allow-domain", "a;b")
    assert plan_for("--cmd", "true", "--network", "none").record("/h").get("proxy") is None


@pytest.mark.parametrize("engine", [Docker(), Podman()])
def test_agent_run_argv_of_a_limited_agent(engine, tmp_path):
    p = plan_for("--cmd", "echo hi", "--network", "limited", tmp=tmp_path)
    argv = engine.run_argv(p, str(tmp_path), 0, 0)
    assert argv[argv.index("--network") + 1] == "none"
    joined = " ".join(argv)
    sock = p.network_files.sock
    assert f"source={sock},target={network.SOCKET_DIR},readonly" in joined
    assert f"target={network.RELAY_PATH},readonly" in joined
    assert "conf" not in joined.split("--mount")[-1]  # the proxy's configuration is not there
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        assert f"{var}={network.PROXY_URL}" in argv
    assert f"NO_PROXY={network.NO_PROXY}" in argv
    tail = argv[argv.index("--") + 2:]
    assert tail == ["python3", network.RELAY_PATH, network.SOCKET, str(network.PROXY_PORT),
                    "--", "sh", "-c", "echo hi"]


LOG = """\
NOTICE    Nov 27 13:42:47.892 [10]: Proxying refused on filtered domain "am-readiness-probe.invalid"
CONNECT   Nov 27 13:42:48.950 [10]: Request (file descriptor 2): GET http://allowed.test/ HTTP/1.1
CONNECT   Nov 27 13:42:49.072 [10]: Request (file descriptor 2): GET http://denied.test/ HTTP/1.1
NOTICE    Nov 27 13:42:49.072 [10]: Proxying refused on filtered domain "denied.test"
CONNECT   Nov 27 13:42:49.118 [10]: Request (file descriptor 2): CONNECT allowed.test:80 HTTP/1.1
INFO      Nov 27 13:42:49.118 [10]: Refused CONNECT method on port 80
garbage
"""


def test_denied_lines():
    assert network.denied(LOG.splitlines(keepends=True)) == [
        "Nov 27 13:42:49 denied denied.test",
        "Nov 27 13:42:49 denied CONNECT allowed.test:80 (only port 443 is allowed)",
    ]


def test_relay_forwards_loopback_to_the_socket_and_runs_the_command(tmp_path):
    """netfwd.py on the host: a unix-socket echo server stands in for the proxy."""
    path = tmp_path / "proxy.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()

    def echo():
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"echo:" + conn.recv(100))

    threading.Thread(target=echo, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = (f"import socket; s = socket.create_connection(('127.0.0.1', {port})); "
              "s.sendall(b'hi'); print(s.recv(100).decode()); raise SystemExit(5)")
    res = subprocess.run([sys.executable, str(network.relay_source()), str(path), str(port),
                          "--", sys.executable, "-c", client], capture_output=True, text=True,
                         timeout=30)
    assert res.stdout.strip() == "echo:hi" and res.returncode == 5
    server.close()


def test_relay_reports_a_port_it_cannot_take(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = subprocess.run([sys.executable, str(network.relay_source()), "/nowhere",
                              str(port), "--", "true"], capture_output=True, text=True)
    assert res.returncode == 1 and res.stderr.startswith("am: error: cannot listen")


def test_a_profile_that_needs_its_api_is_warned_about_the_default_network():
    warned = plan_for("--agent", "claude").warnings
    text = " ".join(warned)
    assert "api.anthropic.com" in text and "--network limited" in text, warned
    # chosen on purpose (flag, variable or file), or an agent of one's own: no warning
    for quiet in (plan_for("--agent", "claude", "--network", "none"),
                  plan_for("--agent", "claude", environ={"AM_NETWORK": "none"}),
                  plan_for("--agent", "claude", "--network", "limited"),
                  plan_for("--cmd", "true")):
        assert not any("--network limited" in w for w in quiet.warnings), quiet.warnings

"""The pure parts of --network limited: allowlist rules, proxy configuration, command lines,
the plan, the denied-request view, and the relay run on the host over loopback."""

import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from am import domains, gate, ids
from am import plan as planning
from am.backends import network
from am.backends.docker import Docker
from am.backends.podman import Podman
from am.cli import build_parser
from am.errors import AmError
from am.paths import Layout
from am.request import Request


def matches(domain: str, host: str) -> bool:
    """squid matches (-i) with POSIX ERE; these rules mean the same in re."""
    return re.search(domains.regex(domain), host, re.IGNORECASE) is not None


def test_exact_domain_is_that_host_only():
    assert matches("allowed.test", "allowed.test")
    assert matches("allowed.test", "ALLOWED.test")
    for host in (
        "xallowed.test",
        "allowed.test.evil",
        "a.allowed.test",
        "allowedxtest",
        "allowed.test.",
    ):
        assert not matches("allowed.test", host), host


def test_wildcard_is_subdomains_not_the_domain_itself():
    for host in ("a.example.com", "a.b.example.com", "x-1.example.com"):
        assert matches("*.example.com", host), host
    for host in (
        "example.com",
        "evilexample.com",
        "a.example.com.evil",
        "a.example.comx",
        ".example.com",
        "a/b.example.com",
    ):
        assert not matches("*.example.com", host), host


def test_split_entries():
    assert domains.split("a.test") == ("a.test", None)
    assert domains.split("*.a.test:8443") == ("*.a.test", 8443)


def conf_lines(*args) -> list[str]:
    return [
        ln for ln in network.config_text("abc", *args).splitlines() if ln and not ln.startswith("#")
    ]


def test_config_denies_by_default_and_checks_names_before_addresses():
    lines = conf_lines(["allowed.test", "*.b.test", "c.test:8443"], [], [])
    access = [ln for ln in lines if ln.startswith("http_access")]
    assert access[:3] == [
        "http_access deny manager",
        "http_access deny !am_names",
        "http_access deny am_local !am_private_ok",
    ]
    assert access[-1] == "http_access deny all"
    # bare: http on 80 and CONNECT to 443; with a port: that port alone, for both
    assert "http_access allow am_d0 !am_connect am_port80" in access
    assert "http_access allow am_d0 am_connect am_port443" in access
    assert "http_access allow am_d2 am_p2" in access and "acl am_p2 port 8443" in lines
    assert not any(
        ln.startswith("http_access allow") and "am_d2" in ln and "am_port" in ln for ln in access
    )
    names = next(ln for ln in lines if ln.startswith("acl am_names "))
    assert names == (
        "acl am_names dstdom_regex -n -i ^allowed\\.test$ ^([a-z0-9_-]+\\.)+b\\.test$ ^c\\.test$"
    )
    assert "acl am_private_ok dstdom_regex -n -i ^am_none$" in lines  # nothing may be local
    for must in (
        "http_port 127.0.0.1:3128",
        "hosts_file none",
        "via off",
        f"access_log stdio:{network.LOG_PATH} am",
        "cache deny all",
    ):
        assert must in lines, must
    for risky in (
        "cache_peer",
        "icp_port",
        "htcp_port",
        "snmp_port",
        "https_port",
        "url_rewrite_program",
        "ssl_bump",
    ):
        assert not any(ln.startswith(risky) for ln in lines), risky


def test_config_refuses_local_addresses_unless_the_name_is_allowed():
    lines = conf_lines(
        ["pub.test"],
        ["reg.lan:5000"],
        ["172.18.0.1", "203.0.113.7", "junk", "fe80::1", "2001:db8::5"],
    )
    assert "acl am_private_ok dstdom_regex -n -i ^reg\\.lan$" in lines
    local = next(ln for ln in lines if ln.startswith("acl am_local dst ")).split()[3:]
    for net in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    ):
        assert net in local, net
    assert "203.0.113.7" in local and "2001:db8::5" in local  # the host's or the gateway's own
    assert "172.18.0.1" not in local and "fe80::1" not in local  # already covered
    assert "junk" not in local
    assert "http_access allow am_d1 am_p1" in lines  # the private entry is allowed too
    assert "acl am_names dstdom_regex -n -i ^pub\\.test$ ^reg\\.lan$" in lines


def test_gateways_of_both_engines():
    docker = [
        {"Name": "n", "IPAM": {"Config": [{"Subnet": "172.22.0.0/16", "Gateway": "172.22.0.1"}]}}
    ]
    podman = [
        {
            "name": "n",
            "subnets": [
                {"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"},
                {"subnet": "fd00::/64", "gateway": "fd00::1"},
            ],
        }
    ]
    assert network.gateways(docker) == ["172.22.0.1"]
    assert network.gateways(podman) == ["10.89.0.1", "fd00::1"]
    assert network.gateways([{"IPAM": {"Config": [{"Subnet": "172.17.0.0/16"}]}}]) == []
    assert network.gateways([{"subnets": [{"gateway": "1.2.3.4 acl x"}]}, "x"]) == []


def test_allowed_domains_are_profile_then_extra_without_duplicates():
    assert network.allowed_domains("claude", ["x.test", "api.anthropic.com"]) == [
        "api.anthropic.com",
        "statsig.anthropic.com",
        "sentry.io",
        "x.test",
    ]
    assert network.allowed_domains("custom", ["x.test"]) == ["x.test"]


def test_proxy_names_never_collide_with_agent_containers():
    for agent_id in ("proxy-x", "x", "am_proxy-x", "a.b_c-d"):
        assert not ids.session_name(agent_id).startswith(network.PROXY_PREFIX)
    assert network.proxy_name("x") == "am_proxy-x"


FILES = network.Files(
    Path("/h/run/x.net/conf"), Path("/h/run/x.net/sock"), Path("/h/logs/x.network.log")
)


def test_proxy_run_argv_is_locked_down():
    argv = network.proxy_run_argv(
        "docker", "x", "/h", "am-egress-1", FILES, ["--user", "1000:1000"]
    )
    assert argv[:2] == ["docker", "run"]
    joined = " ".join(argv)
    for flag in (
        "--read-only",
        "--cap-drop ALL",
        "--security-opt no-new-privileges",
        "--pull never",
        "--network am-egress-1",
        "--label am.proxy=x",
        "--label am.home=/h",
        "--name am_proxy-x",
        "--user 1000:1000",
        f"--cpus {network.PROXY_LIMITS['cpus']}",
        "--memory 128m",
    ):
        assert flag in joined, flag
    assert f"source=/h/run/x.net/conf,target={network.CONF_DIR},readonly" in joined
    assert f"source=/h/run/x.net/sock,target={network.SOCKET_DIR}" in joined
    assert "--privileged" not in argv and "--cap-add" not in argv
    assert argv[argv.index("--") + 1 :] == [network.PROXY_IMAGE]  # its entry point: the relay


def test_network_create_argv():
    assert network.network_create_argv("podman", "am-egress-1", "/h") == [
        "podman",
        "network",
        "create",
        "--label",
        "am.home=/h",
        "--label",
        "am.egress=1",
        "am-egress-1",
    ]


def plan_for(*extra, environ=None, tmp=Path("/tmp/amhome")):
    args = build_parser().parse_args(["spawn", "/src", "--container", "--name", "x", *extra])
    layout = Layout(tmp, tmp / "state", tmp / "agents", tmp / "data", tmp)
    return planning.build(Request.from_args(args), layout, "/src", environ or {})


def test_plan_of_a_limited_agent():
    p = plan_for(
        "--cmd",
        "true",
        "--network",
        "limited",
        "--allow-domain",
        "A.test",
        "--allow-domain",
        "*.b.test",
    )
    assert p.network == "limited" and p.network_name == "none"
    assert p.allow_domains == ["a.test", "*.b.test"] and p.allow_private_domains == []
    assert p.proxy == "am_proxy-x"
    assert p.egress == p.managed_egress == network.default_egress("/tmp/amhome")
    rec = p.record("/tmp/amhome")
    assert rec["proxy"] == "am_proxy-x" and rec["managed_egress"] is True
    assert rec["network_log"] == "/tmp/amhome/state/logs/x.network.log"


def test_plan_takes_the_egress_network_from_the_environment():
    p = plan_for("--cmd", "true", "--network", "limited", environ={"AM_EGRESS_NETWORK": "mine"})
    assert p.egress == "mine" and p.record("/h")["managed_egress"] is False
    with pytest.raises(AmError, match="AM_EGRESS_NETWORK"):
        plan_for(
            "--cmd", "true", "--network", "limited", environ={"AM_EGRESS_NETWORK": "--privileged"}
        )


def test_plan_refusals():
    with pytest.raises(AmError, match="--allow-domain needs --network limited") as e:
        plan_for("--cmd", "true", "--allow-domain", "a.test")
    assert e.value.hint == "add --network limited"
    with pytest.raises(AmError, match="NOPE is not set in this environment") as e:
        plan_for("--cmd", "true", "--env", "NOPE", environ={"OTHER": "1"})
    assert e.value.hint == "export NOPE first, or give its value: --env NOPE=VALUE"
    with pytest.raises(AmError, match="invalid --allow-domain"):
        plan_for("--cmd", "true", "--network", "limited", "--allow-domain", "a;b")
    with pytest.raises(AmError, match="--allow-private-domain needs --network limited"):
        plan_for("--cmd", "true", "--allow-private-domain", "a.test")
    with pytest.raises(AmError, match="invalid --allow-private-domain '127.0.0.1'"):
        plan_for("--cmd", "true", "--network", "limited", "--allow-private-domain", "127.0.0.1")
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
    tail = argv[argv.index("--") + 2 :]
    if engine.runtime == "podman":  # a local one: its start gate outside the relay (am/gate.py)
        assert engine.gated(p) and tail[:4] == gate.command([])
        tail = tail[4:]
    assert tail == [
        "python3",
        network.RELAY_PATH,
        network.SOCKET,
        str(network.PROXY_PORT),
        "--",
        "sh",
        "-c",
        "echo hi",
    ]


LOG = """\
NOTICE    Nov 27 13:42:47.892 [10]: Proxying refused on filtered domain "am-readiness-probe.invalid"
CONNECT   Nov 27 13:42:48.950 [10]: Request (file descriptor 2): GET http://allowed.test/ HTTP/1.1
CONNECT   Nov 27 13:42:49.072 [10]: Request (file descriptor 2): GET http://denied.test/ HTTP/1.1
NOTICE    Nov 27 13:42:49.072 [10]: Proxying refused on filtered domain "denied.test"
CONNECT   Nov 27 13:42:49.118 [10]: Request (file descriptor 2): CONNECT allowed.test:80 HTTP/1.1
INFO      Nov 27 13:42:49.118 [10]: Refused CONNECT method on port 80
garbage
"""


SQUID_LOG = """\
1795839936.870 TCP_DENIED 403 ERR_AM_DOMAIN GET am-readiness-probe.invalid 80 http://am-readiness-probe.invalid/
1795839936.871 TCP_MISS 200 - GET allowed.test 80 http://allowed.test/
1795839936.872 TCP_DENIED 403 ERR_AM_DOMAIN GET denied.test 80 http://denied.test/
1795839936.873 TCP_DENIED 403 ERR_AM_PRIVATE CONNECT allowed.test 443 allowed.test:443
1795839936.874 TCP_DENIED 403 ERR_AM_PORT CONNECT allowed.test 80 allowed.test:80
1795839936.875 NONE_NONE 400 - GET - - error:invalid-request
1795839936.876 TCP_TUNNEL 200 - CONNECT allowed.test 443 allowed.test:443
garbage
"""


def test_denied_lines_of_squid():
    import time

    when = time.strftime("%b %d %H:%M:%S", time.localtime(1795839936))
    assert network.denied(SQUID_LOG.splitlines(keepends=True)) == [
        f"{when} denied GET denied.test:80: not on the allowlist",
        f"{when} denied CONNECT allowed.test:443: {network.REFUSALS['ERR_AM_PRIVATE']}",
        f"{when} denied CONNECT allowed.test:80: {network.REFUSALS['ERR_AM_PORT']}",
        f"{when} denied error:invalid-request: invalid request",
    ]


def test_denied_lines_of_an_older_tinyproxy():
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
    client = (
        f"import socket; s = socket.create_connection(('127.0.0.1', {port})); "
        "s.sendall(b'hi'); print(s.recv(100).decode()); raise SystemExit(5)"
    )
    res = subprocess.run(
        [
            sys.executable,
            str(network.relay_source()),
            str(path),
            str(port),
            "--",
            sys.executable,
            "-c",
            client,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.stdout.strip() == "echo:hi" and res.returncode == 5
    server.close()


def test_relay_reports_a_port_it_cannot_take(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = subprocess.run(
            [sys.executable, str(network.relay_source()), "/nowhere", str(port), "--", "true"],
            capture_output=True,
            text=True,
        )
    assert res.returncode == 1 and res.stderr.startswith("am: error: cannot listen")


def test_a_profile_that_needs_its_api_is_warned_about_the_default_network():
    warned = plan_for("--agent", "claude").warnings
    text = " ".join(warned)
    assert "api.anthropic.com" in text and "--network limited" in text, warned
    # chosen on purpose (flag, variable or file), or an agent of one's own: no warning
    for quiet in (
        plan_for("--agent", "claude", "--network", "none"),
        plan_for("--agent", "claude", environ={"AM_NETWORK": "none"}),
        plan_for("--agent", "claude", "--network", "limited"),
        plan_for("--cmd", "true"),
    ):
        assert not any("--network limited" in w for w in quiet.warnings), quiet.warnings


def test_local_ranges_hold_no_public_address():
    """squid keeps IPv4 addresses as IPv4-mapped IPv6: '::ffff:0:0/96' or '::/128' would be
    read as every IPv4 address (it warns and drops such an entry)."""
    import ipaddress

    for text in network.LOCAL_NETS:
        net = ipaddress.ip_network(text)
        for public in ("8.8.8.8", "::ffff:8.8.8.8", "2606:4700::1111"):
            assert ipaddress.ip_address(public) not in net, (text, public)

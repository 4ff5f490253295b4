"""Network policies end to end on docker and podman: none, limited (the egress proxy), full.

Every request goes to loopback or to the two test servers, containers this module starts on a
network it creates (``allowed.test`` and ``denied.test``); am's proxies join that network
through AM_EGRESS_NETWORK. Nothing reaches any other address.
"""

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from containers import ENGINES, container_names, cspawn, engine_ready, remove_containers
from helpers import assert_am_error

pytestmark = pytest.mark.container

DEFAULT_BRIDGE = {"docker": "bridge", "podman": "podman"}
SERVER = (
    "cd /tmp && echo {name} > index.html && (python3 -m http.server 443 &) && "
    "(python3 -m http.server 8080 &) && exec python3 -m http.server 80"
)


def sh(*argv, check=True) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {res.stderr}")
    return res


def ip_on(engine: str, container: str, net: str) -> str:
    fmt = '{{(index .NetworkSettings.Networks "' + net + '").IPAddress}}'
    return sh(engine, "inspect", "--format", fmt, container).stdout.strip()


def wait_http(engine: str, container: str) -> None:
    """Until the server answers on both ports, asked from inside its own container."""
    check = (
        "import urllib.request as u; [u.urlopen(f'http://127.0.0.1:{p}/', timeout=1) "
        "for p in (80, 443, 8080)]"
    )
    for _ in range(100):
        if sh(engine, "exec", container, "python3", "-c", check, check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"test server {container} did not answer")


@pytest.fixture(scope="module", params=ENGINES)
def servers(request):
    """Two HTTP servers (ports 80, 443 and 8080, plain http) on a network of their own, also
    joined to the engine's default bridge so that a `full` agent can reach them. Their
    addresses are private, so a proxy reaches them only for names allowed with
    --allow-private-domain."""
    engine = request.param
    engine_ready(engine)
    tag = uuid.uuid4().hex[:8]
    net = f"amtest-out-{tag}"
    sh(engine, "network", "create", net)
    names = {}
    try:
        for host in ("allowed", "denied"):
            name = f"amtest-{host}-{tag}"
            sh(
                engine,
                "run",
                "--detach",
                "--init",
                "--pull",
                "never",
                "--name",
                name,
                "--network",
                net,
                "--network-alias",
                f"{host}.test",
                "am-base:bookworm",
                "sh",
                "-c",
                SERVER.format(name=host),
            )
            sh(engine, "network", "connect", DEFAULT_BRIDGE[engine], name)
            wait_http(engine, name)
            names[host] = name
        yield {
            "engine": engine,
            "net": net,
            "ip": {h: ip_on(engine, n, net) for h, n in names.items()},
            "bridge_ip": {h: ip_on(engine, n, DEFAULT_BRIDGE[engine]) for h, n in names.items()},
        }
    finally:
        for name in names.values():
            sh(engine, "rm", "--force", name, check=False)
        sh(engine, "network", "rm", net, check=False)


@pytest.fixture
def engine(servers, am, repo):
    am.repo = repo
    am.env["AM_EGRESS_NETWORK"] = servers["net"]
    yield servers["engine"]
    remove_containers(servers["engine"], str(am.home))


def fill(script: str, ips: dict[str, str]) -> str:
    return (
        script.replace("@allowed@", ips["allowed"])
        .replace("@denied@", ips["denied"])
        .replace("@code@", CODE)
    )


def values(log: str) -> dict[str, str]:
    out = {}
    for line in log.replace("\r", "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isupper() and key.replace("_", "").isalpha():
            out.setdefault(key, value.strip())
    return out


def am_networks(engine: str, home) -> list[str]:
    res = sh(engine, "network", "ls", "--filter", f"label=am.home={home}", "--format", "{{.Name}}")
    return res.stdout.split()


def proxies(engine: str, home) -> list[str]:
    return [n for n in container_names(engine, str(home)) if n.startswith("am_proxy-")]


CODE = "curl -sS -m 5 -o /dev/null -w '%{http_code}'"
LIMITED_PROBE = """
echo "IFACES=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')"
echo "ALLOWED_HTTP=$(curl -sS -m 5 http://allowed.test/)"
echo "ALLOWED_CONNECT=$(curl -sS -m 5 --proxytunnel http://allowed.test:443/)"
echo "DENIED_HTTP=$(@code@ http://denied.test/)"
curl -sS -m 5 --proxytunnel http://denied.test:443/ >/dev/null 2>&1; echo "DENIED_CONNECT=$?"
curl -sS -m 5 --proxytunnel http://allowed.test:80/ >/dev/null 2>&1; echo "OTHER_PORT_CONNECT=$?"
echo "OTHER_PORT_HTTP=$(@code@ http://allowed.test:8080/)"
echo "HTTP_TO_TLS_PORT=$(@code@ http://allowed.test:443/)"
echo "IP_LITERAL=$(@code@ http://@allowed@/)"
echo "STATS=$(@code@ http://tinyproxy.stats/)"
echo "MANAGER=$(@code@ http://allowed.test/squid-internal-mgr/info)"
curl -sS -m 5 --noproxy '*' http://@allowed@/ >/dev/null 2>&1; echo "DIRECT_ALLOWED=$?"
curl -sS -m 5 --noproxy '*' http://@denied@/ >/dev/null 2>&1; echo "DIRECT_DENIED=$?"
getent hosts denied.test >/dev/null; echo "DNS_DENIED=$?"
getent hosts allowed.test >/dev/null; echo "DNS_ALLOWED=$?"
ls /etc/am-proxy >/dev/null 2>&1; echo "CONF_VISIBLE=$?"
touch /run/am-proxy/planted 2>/dev/null; echo "SOCKET_DIR_WRITE=$?"
echo PROBE-DONE
sleep 300
"""


def test_limited_allows_only_the_allowlist(am, engine, servers, isolation):
    ip = servers["ip"]
    agent = cspawn(
        am,
        engine,
        fill(LIMITED_PROBE, ip),
        "--network",
        "limited",
        "--allow-private-domain",
        "allowed.test",
        isolation=isolation,
    )
    v = values(am.wait_log(agent, "PROBE-DONE", timeout=90))
    assert v["IFACES"] == "lo"
    assert v["ALLOWED_HTTP"] == "allowed"  # forwarded http
    assert v["ALLOWED_CONNECT"] == "allowed"  # a CONNECT tunnel to port 443
    assert v["DENIED_HTTP"] == "403"  # refused by the proxy
    assert v["DENIED_CONNECT"] != "0" and v["OTHER_PORT_CONNECT"] != "0"
    # plain http goes to port 80 only; an address is no name
    assert v["OTHER_PORT_HTTP"] == v["HTTP_TO_TLS_PORT"] == v["IP_LITERAL"] == "403"
    assert v["STATS"] == v["MANAGER"] == "403"  # no statistics or manager page
    assert v["DIRECT_ALLOWED"] != "0" and v["DIRECT_DENIED"] != "0"
    assert v["DNS_DENIED"] != "0" and v["DNS_ALLOWED"] != "0"  # no resolver at all
    assert v["CONF_VISIBLE"] != "0" and v["SOCKET_DIR_WRITE"] != "0"

    info = am.info(agent)
    assert info["network"] == "limited" and info["allow_domains"] == []
    assert info["allow_private_domains"] == ["allowed.test"]
    assert info["proxy"] == f"am_proxy-{agent}" and info["egress_network"] == servers["net"]
    denied = am("logs", agent, "--network").stdout
    assert "denied GET denied.test:80: not on the allowlist" in denied
    assert "denied GET tinyproxy.stats:80" in denied
    assert "denied GET allowed.test:80: not" not in denied and "readiness" not in denied
    assert "denied GET allowed.test:80: refused" in denied  # the manager's pages
    assert "denied CONNECT allowed.test:80: port not allowed" in denied
    assert "denied GET allowed.test:8080: port not allowed" in denied
    assert f"denied GET {ip['allowed']}:80: not on the allowlist" in denied

    am("stop", agent)
    assert container_names(engine, str(am.home)) == []  # agent and proxy both gone
    assert am_networks(engine, am.home) == []
    assert "denied GET denied.test:80" in am("logs", agent, "--network").stdout  # kept


PRIVATE_PROBE = """
echo "PUBLIC_NAME_HTTP=$(@code@ http://allowed.test/)"
curl -sS -m 5 --proxytunnel http://allowed.test:443/ >/dev/null 2>&1; echo "PUBLIC_NAME_CONNECT=$?"
echo "PRIVATE_NAME_HTTP=$(curl -sS -m 5 http://denied.test/)"
echo PROBE-DONE
sleep 300
"""


def test_private_addresses_only_for_names_allowed_so(am, engine, servers):
    """The test servers have private addresses: a name allowed with --allow-domain is refused
    there (an allowed name an attacker points at the host, the LAN or loopback), a name
    allowed with --allow-private-domain reaches its server (the control)."""
    agent = cspawn(
        am,
        engine,
        fill(PRIVATE_PROBE, servers["ip"]),
        "--network",
        "limited",
        "--allow-domain",
        "allowed.test",
        "--allow-private-domain",
        "denied.test",
    )
    v = values(am.wait_log(agent, "PROBE-DONE", timeout=90))
    assert v["PRIVATE_NAME_HTTP"] == "denied"  # the control: reachable when allowed so
    assert v["PUBLIC_NAME_HTTP"] == "403" and v["PUBLIC_NAME_CONNECT"] != "0"
    denied = am("logs", agent, "--network").stdout
    assert "denied GET allowed.test:80: a private, loopback, link-local or host address" in denied
    assert "denied CONNECT allowed.test:443: a private" in denied
    # The configuration names the egress network's gateway and this host's addresses too.
    conf = (am.home / "state" / "run" / f"{agent}.net" / "conf" / "squid.conf").read_text()
    local = next(ln for ln in conf.splitlines() if ln.startswith("acl am_local dst ")).split()
    fmt = (
        "{{range .IPAM.Config}}{{.Gateway}} {{end}}"
        if engine == "docker"
        else "{{range .Subnets}}{{.Gateway}} {{end}}"
    )
    gateway = sh(engine, "network", "inspect", "--format", fmt, servers["net"]).stdout.split()
    assert gateway and all(g in local or g.startswith(("10.", "172.", "192.168.")) for g in gateway)
    # squid took every range as given (it drops, with a warning, one it reads otherwise)
    started = sh(engine, "logs", f"am_proxy-{agent}")
    assert "am_local" not in started.stdout + started.stderr, started.stderr
    am("stop", agent)


PORT_PROBE = """
echo "NAMED_PORT_HTTP=$(curl -sS -m 5 http://allowed.test:8080/)"
echo "NAMED_PORT_CONNECT=$(curl -sS -m 5 --proxytunnel http://allowed.test:8080/)"
echo "DEFAULT_HTTP=$(@code@ http://allowed.test/)"
curl -sS -m 5 --proxytunnel http://allowed.test:443/ >/dev/null 2>&1; echo "DEFAULT_CONNECT=$?"
echo PROBE-DONE
sleep 300
"""


def test_an_allowed_port_is_the_only_port(am, engine, servers):
    agent = cspawn(
        am,
        engine,
        fill(PORT_PROBE, servers["ip"]),
        "--network",
        "limited",
        "--allow-private-domain",
        "allowed.test:8080",
    )
    v = values(am.wait_log(agent, "PROBE-DONE", timeout=90))
    assert v["NAMED_PORT_HTTP"] == v["NAMED_PORT_CONNECT"] == "allowed"
    assert v["DEFAULT_HTTP"] == "403" and v["DEFAULT_CONNECT"] != "0"
    assert am.info(agent)["allow_private_domains"] == ["allowed.test:8080"]
    am("stop", agent)


def test_proxy_container_holds_only_the_proxy(am, engine):
    """No shell, socat or other tool an intruder in the proxy could use to reach the host;
    a CPU limit. The control: the same look at the base image finds a shell."""
    agent = cspawn(am, engine, "sleep 300", "--network", "limited")
    proxy = f"am_proxy-{agent}"
    assert (
        sh(engine, "inspect", "--format", "{{.HostConfig.NanoCpus}}", proxy).stdout.strip()
        == "500000000"
    )
    res = sh(engine, "exec", proxy, "sh", "-c", "true", check=False)
    assert res.returncode != 0

    am("stop", agent)

    def members(image: str) -> list:
        """The files of IMAGE, from a container made and not run (not the engine's own)."""
        import io
        import tarfile

        name = f"amtest-files-{uuid.uuid4().hex[:6]}"
        sh(engine, "create", "--name", name, image, "true")
        try:
            data = subprocess.run([engine, "export", name], capture_output=True, timeout=120).stdout
        finally:
            sh(engine, "rm", "--force", name, check=False)
        engine_files = {
            ".dockerenv",
            "etc/hosts",
            "etc/hostname",
            "etc/resolv.conf",
            "run/.containerenv",
        }
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return [
                m
                for m in tar.getmembers()
                if (n := m.name.removeprefix("./").rstrip("/")) not in engine_files
                and not n.startswith(("dev/", "proc/", "sys/"))
                and n not in ("dev", "")
            ]

    def programs(files: list) -> set[str]:
        return {
            n
            for m in files
            if m.isfile() and m.mode & 0o111 and ".so" not in (n := m.name.removeprefix("./"))
        }

    from am.backends.network import PROXY_IMAGE

    files = members(PROXY_IMAGE)
    assert programs(files) == {"usr/sbin/squid", "usr/local/bin/am-proxy-relay"}
    assert {"usr/bin/dash", "usr/bin/bash"} <= programs(members("am-base:bookworm"))  # control
    # Any uid may use it: the proxy runs as the agent's, whoever built the image (an am with
    # umask 077 once made /usr/sbin unreadable to it).
    closed = [
        m.name
        for m in files
        if (m.isdir() and m.mode & 0o005 != 0o005) or (m.isfile() and not m.mode & 0o004)
    ]
    assert closed == [], closed


ESCAPE_PROBE = r"""
python3 - <<'PY'
import socket
for line in (b"GET http://\x1b]2;PWNED\x07\x1b[2Jx/ HTTP/1.1",
             b"GET http://denied.test/\x1b]2;PWNED\x07\x1b[2J HTTP/1.1",
             b"GET http://den\xc2\x9bied.test/ HTTP/1.1"):
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(line + b"\r\nHost: x\r\n\r\n")
    print("STATUS=" + s.recv(100).split(b"\r\n")[0].decode("latin-1"))
PY
echo PROBE-DONE
sleep 300
"""
# What tinyproxy, the proxy before squid, logged for the first request above (issue 18).
TINYPROXY_LOG = (
    "NOTICE    Nov 27 13:42:49.072 [10]: Proxying refused on filtered domain "
    '"\x1b]2;PWNED\x07\x1b[2Jx"\n'
)


def test_network_log_never_reaches_the_terminal_raw(am, engine, servers, term):
    """Host names and paths with escape sequences: what am logs --network prints about them
    changes nothing on a real terminal. The control: the same bytes printed raw do."""
    from terminal import am_cmd, assert_obeyed, assert_shown

    agent = cspawn(am, engine, ESCAPE_PROBE, "--network", "limited")
    out = am.wait_log(agent, "PROBE-DONE", timeout=90)
    assert out.count("STATUS=HTTP/1.1 4") == 3, out  # all refused
    assert_obeyed(term, b"GET http://\x1b]2;PWNED\x07\x1b[2Jx/ HTTP/1.1\n")
    screen = term.run(am_cmd(am, "logs", agent, "--network"))
    assert term.title() != "PWNED" and "BEFORE-" in screen, screen
    assert "invalid request" in screen and "\x1b" not in screen
    # The log of a proxy an older am started (tinyproxy) still reaches the terminal escaped.
    am("stop", agent)
    log = Path(am.info(agent)["network_log"])
    log.write_text(TINYPROXY_LOG)
    assert_obeyed(term, TINYPROXY_LOG)
    screen = term.run(am_cmd(am, "logs", agent, "--network"))
    assert_shown(term, screen)
    assert "denied \\x1b]2;PWNED\\x07\\x1b[2Jx" in screen


KILL_PROBE = """
echo "BEFORE=$(curl -sS -m 5 http://allowed.test/)"
echo WAITING
while [ ! -e /workspace/.go ]; do sleep 0.2; done
curl -sS -m 5 http://allowed.test/ >/dev/null 2>&1; echo "AFTER=$?"
curl -sS -m 5 --noproxy '*' http://@allowed@/ >/dev/null 2>&1; echo "AFTER_DIRECT=$?"
echo "IFACES=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')"
echo PROBE-DONE
sleep 300
"""


def test_killing_the_proxy_leaves_no_network(am, engine, servers, isolation):
    agent = cspawn(
        am,
        engine,
        fill(KILL_PROBE, servers["ip"]),
        "--network",
        "limited",
        "--allow-private-domain",
        "allowed.test",
        isolation=isolation,
    )
    am.wait_log(agent, "WAITING", timeout=60)
    sh(engine, "kill", f"am_proxy-{agent}")
    (am.home / "agents" / agent / ".go").touch()
    v = values(am.wait_log(agent, "PROBE-DONE", timeout=60))
    assert v["BEFORE"] == "allowed"
    assert v["AFTER"] != "0" and v["AFTER_DIRECT"] != "0"
    assert v["IFACES"] == "lo"
    drift = json.loads(am("doctor", "--json", check=False).stdout)["drift"]
    assert [d["kind"] for d in drift] == [], drift  # a stopped proxy of a running agent: not drift
    am("stop", agent)
    assert container_names(engine, str(am.home)) == []


REACH_PROBE = """
echo "IFACES=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')"
echo "ROUTES=$(tail -n +2 /proc/net/route | wc -l)"
echo "ALLOWED=$(curl -sS -m 5 --noproxy '*' http://@allowed@/ 2>&1)"
echo "DENIED=$(curl -sS -m 5 --noproxy '*' http://@denied@/ 2>&1)"
echo PROBE-DONE
sleep 300
"""


def test_none_has_only_loopback(am, engine, servers, isolation):
    agent = cspawn(am, engine, fill(REACH_PROBE, servers["bridge_ip"]), isolation=isolation)
    v = values(am.wait_log(agent, "PROBE-DONE"))
    assert v["IFACES"] == "lo" and v["ROUTES"] == "0"
    assert v["ALLOWED"] != "allowed" and v["DENIED"] != "denied"
    assert am.info(agent)["network"] == "none"
    am("stop", agent)


def test_full_reaches_both(am, engine, servers, isolation):
    """`full` is the engine's default bridge: the servers, joined to it too, both answer."""
    res = am(
        "spawn",
        str(am.repo),
        "--container",
        "--runtime",
        engine,
        "--network",
        "full",
        "--isolation",
        isolation,
        "--cmd",
        fill(REACH_PROBE, servers["bridge_ip"]),
    )
    assert "am: warning: --network full" in res.stderr
    agent = res.stdout.strip().splitlines()[-1]
    v = values(am.wait_log(agent, "PROBE-DONE"))
    assert v["IFACES"] != "lo" and int(v["ROUTES"]) >= 1
    assert v["ALLOWED"] == "allowed" and v["DENIED"] == "denied"
    am("stop", agent)


def test_default_egress_network_comes_and_goes_with_its_proxies(am, engine):
    del am.env["AM_EGRESS_NETWORK"]
    one = cspawn(am, engine, "sleep 300", "--network", "limited")
    two = cspawn(am, engine, "sleep 300", "--network", "limited")
    nets = am_networks(engine, am.home)
    assert len(nets) == 1 and nets[0].startswith("am-egress-")
    assert am.info(one)["allow_domains"] == []  # --cmd: no profile, so nothing but its own
    assert sorted(proxies(engine, am.home)) == sorted([f"am_proxy-{one}", f"am_proxy-{two}"])
    am("stop", one)
    assert am_networks(engine, am.home) == nets  # still used by the other proxy
    am("stop", two)
    assert am_networks(engine, am.home) == [] and proxies(engine, am.home) == []


def test_profile_domains_are_allowed(am, engine):
    agent = cspawn(
        am,
        engine,
        "sleep 300",
        "--agent",
        "claude",
        "--network",
        "limited",
        "--allow-domain",
        "*.example.test",
    )
    assert am.info(agent)["allow_domains"] == [
        "api.anthropic.com",
        "statsig.anthropic.com",
        "sentry.io",
        "*.example.test",
    ]
    am("stop", agent)


def test_agent_exit_removes_its_proxy(am, engine, isolation):
    agent = cspawn(
        am,
        engine,
        "until [ -e .go ]; do sleep 0.1; done; exit 3",
        "--network",
        "limited",
        isolation=isolation,
    )
    (am.home / "agents" / agent / ".go").touch()  # its go, once the spawn has returned
    info = am.wait_status(agent, "exited")
    assert info["exit_code"] == 3  # the relay hands the agent its own exit code
    deadline = time.monotonic() + 30
    while container_names(engine, str(am.home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert container_names(engine, str(am.home)) == []


def test_doctor_finds_and_fixes_an_orphaned_proxy(am, engine):
    del am.env["AM_EGRESS_NETWORK"]
    agent = cspawn(am, engine, "sleep 300", "--network", "limited")
    state = am.home / "state" / "state.json"
    data = json.loads(state.read_text())
    del data["agents"][agent]
    state.write_text(json.dumps(data))
    drift = json.loads(am("doctor", "--json", check=False).stdout)["drift"]
    kinds = {d["kind"]: d["subject"] for d in drift}
    assert kinds.get("orphan-proxy") == f"am_proxy-{agent}", drift
    assert kinds.get("orphan-container") == f"am-{agent}", drift
    am("doctor", "--fix")
    deadline = time.monotonic() + 30
    while container_names(engine, str(am.home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert container_names(engine, str(am.home)) == []
    assert am_networks(engine, am.home) == []


def test_proxy_that_cannot_start_fails_the_spawn_closed(am, engine):
    """A container already holding the proxy's name: the spawn fails and leaves nothing."""
    sh(
        engine,
        "create",
        "--name",
        "am_proxy-blocked",
        "--label",
        f"am.home={am.home}",
        "am-base:bookworm",
        "true",
    )
    res = am(
        "spawn",
        str(am.repo),
        "--container",
        "--runtime",
        engine,
        "--name",
        "blocked",
        "--network",
        "limited",
        "--cmd",
        "sleep 300",
        check=False,
    )
    assert "network proxy did not start" in assert_am_error(res)
    assert container_names(engine, str(am.home)) == []
    assert am.list() == [] and not (am.home / "agents" / "blocked").exists()
    assert not (am.home / "state" / "run" / "blocked.net").exists()


def test_unwritable_proxy_config_fails_the_spawn_closed(am, engine):
    run = am.home / "state" / "run"
    run.mkdir(parents=True)
    (run / "stuck.net").write_text("not a folder")
    res = am(
        "spawn",
        str(am.repo),
        "--container",
        "--runtime",
        engine,
        "--name",
        "stuck",
        "--network",
        "limited",
        "--cmd",
        "sleep 300",
        check=False,
    )
    assert "cannot write the network proxy's configuration" in assert_am_error(res)
    assert container_names(engine, str(am.home)) == [] and am.list() == []


def test_missing_egress_network_is_refused_before_anything(am, engine):
    am.env["AM_EGRESS_NETWORK"] = f"amtest-missing-{uuid.uuid4().hex[:6]}"
    res = am(
        "spawn",
        str(am.repo),
        "--container",
        "--runtime",
        engine,
        "--network",
        "limited",
        "--cmd",
        "true",
        check=False,
    )
    assert "no such" in assert_am_error(res)
    assert am.list() == [] and container_names(engine, str(am.home)) == []


def test_clean_containers_removes_proxies_and_networks(am, engine):
    del am.env["AM_EGRESS_NETWORK"]
    agent = cspawn(am, engine, "sleep 300", "--network", "limited")
    assert proxies(engine, am.home) == [f"am_proxy-{agent}"]
    # it stops a running agent: not without a word, and not without --yes off a terminal
    line = assert_am_error(am("clean", "--containers", check=False))
    assert f"stops 1 running container agent(s) ({agent})" in line and "--yes" in line
    assert proxies(engine, am.home) == [f"am_proxy-{agent}"]
    assert am.info(agent)["status"] == "running"
    am("clean", "--containers", "--yes")
    assert container_names(engine, str(am.home)) == [] and am_networks(engine, am.home) == []


@pytest.mark.parametrize("runtime", ENGINES)
def test_limited_agents_spawned_at_once_share_one_managed_network(am, repo, runtime):
    """The spawns look for am's outside network and make it one at a time: docker made three
    of one name at once, answered for none, and every later limited spawn failed."""
    engine_ready(runtime)
    try:
        res = am(
            "spawn", repo, "--count", "3", "--container", "--runtime", runtime,
            "--network", "limited", "--cmd", "sleep 300",
        )  # fmt: skip
        assert len(res.stdout.split()) == 3, res.stderr
        assert [a["status"] for a in am.list()] == ["running"] * 3
        assert len(am_networks(runtime, am.home)) == 1
    finally:
        am("clean", "--containers", "--all", "--yes", check=False)
        ids = sh(runtime, "network", "ls", "-q", "--filter", f"label=am.home={am.home}")
        for net in ids.stdout.split():  # by id: a name taken twice removes neither
            sh(runtime, "network", "rm", net, check=False)


def test_networks_an_older_am_made_twice_are_removed(am, repo):
    """Docker made several outside networks of one name when an older am's spawns made it at
    once, and refuses that name: they go by id."""
    engine_ready("docker")
    argv = ["docker", "network", "create", "--label", f"am.home={am.home}"]
    argv += ["--label", "am.egress=1", "am-egress-twice"]
    try:
        for _ in range(20):  # docker makes one each only when the makes meet: until they do
            makers = [
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(4)
            ]
            for p in makers:
                p.wait()
            made = len(
                sh(
                    "docker", "network", "ls", "-q", "--filter", f"label=am.home={am.home}"
                ).stdout.split()
            )
            if made >= 2:
                break
        assert made >= 2, "docker made no second network of the name"
        assert am_networks("docker", am.home) == ["am-egress-twice"] * made
        spawn = am(
            "spawn", repo, "--container", "--runtime", "docker", "--network", "limited",
            "--cmd", "true", env={"AM_EGRESS_NETWORK": "am-egress-twice"}, check=False,
        )  # fmt: skip
        assert "several networks named am-egress-twice" in assert_am_error(spawn)
        report = json.loads(am("doctor", "--json", check=False).stdout)["drift"]
        assert [d["subject"] for d in report if d["kind"] == "orphan-network"] == [
            "am-egress-twice"
        ]
        am("clean", "--containers", "--all", "--yes")
        assert am_networks("docker", am.home) == [], f"{made} made"
    finally:
        ids = sh("docker", "network", "ls", "-q", "--filter", f"label=am.home={am.home}")
        for net in ids.stdout.split():
            sh("docker", "network", "rm", net, check=False)

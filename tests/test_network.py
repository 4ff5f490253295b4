"""Network policies end to end on docker and podman: none, limited (the egress proxy), full.

Every request goes to loopback or to the two test servers, containers this module starts on a
network it creates (``allowed.test`` and ``denied.test``); am's proxies join that network
through AM_EGRESS_NETWORK. Nothing reaches any other address.
"""

import json
import subprocess
import time
import uuid

import pytest
from conftest import assert_am_error
from containers import ENGINES, container_names, engine_ready, remove_containers

pytestmark = pytest.mark.container

DEFAULT_BRIDGE = {"docker": "bridge", "podman": "podman"}
SERVER = ("cd /tmp && echo {name} > index.html && (python3 -m http.server 443 &) && "
          "exec python3 -m http.server 80")


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
    check = ("import urllib.request as u; [u.urlopen(f'http://127.0.0.1:{p}/', timeout=1) "
             "for p in (80, 443)]")
    for _ in range(100):
        if sh(engine, "exec", container, "python3", "-c", check, check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"test server {container} did not answer")


@pytest.fixture(scope="module", params=ENGINES)
def servers(request):
    """Two HTTP servers (ports 80 and 443, plain http) on a network of their own, also joined
    to the engine's default bridge so that a `full` agent can reach them."""
    engine = request.param
    engine_ready(engine)
    tag = uuid.uuid4().hex[:8]
    net = f"amtest-out-{tag}"
    sh(engine, "network", "create", net)
    names = {}
    try:
        for host in ("allowed", "denied"):
            name = f"amtest-{host}-{tag}"
            sh(engine, "run", "--detach", "--init", "--pull", "never", "--name", name,
               "--network", net, "--network-alias", f"{host}.test", "am-base:bookworm", "sh", "-c",
               SERVER.format(name=host))
            sh(engine, "network", "connect", DEFAULT_BRIDGE[engine], name)
            wait_http(engine, name)
            names[host] = name
        yield {
            "engine": engine, "net": net,
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


def spawn(am, engine, script, *extra, isolation="runc"):
    return am.spawn(str(am.repo), "--container", "--runtime", engine, "--isolation", isolation,
                    "--cmd", script, *extra)


def fill(script: str, ips: dict[str, str]) -> str:
    return script.replace("@allowed@", ips["allowed"]).replace("@denied@", ips["denied"])


def values(log: str) -> dict[str, str]:
    out = {}
    for line in log.replace("\r", "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isupper() and key.replace("_", "").isalpha():
            out.setdefault(key, value.strip())
    return out


def am_networks(engine: str, home) -> list[str]:
    res = sh(engine, "network", "ls", "--filter", f"label=am.home={home}", "--format",
             "{{.Name}}")
    return res.stdout.split()


def proxies(engine: str, home) -> list[str]:
    return [n for n in container_names(engine, str(home)) if n.startswith("am_proxy-")]


LIMITED_PROBE = """
echo "IFACES=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')"
echo "ALLOWED_HTTP=$(curl -sS -m 5 http://allowed.test/)"
echo "ALLOWED_CONNECT=$(curl -sS -m 5 --proxytunnel http://allowed.test:443/)"
echo "DENIED_HTTP=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' http://denied.test/)"
curl -sS -m 5 --proxytunnel http://denied.test:443/ >/dev/null 2>&1; echo "DENIED_CONNECT=$?"
curl -sS -m 5 --proxytunnel http://allowed.test:80/ >/dev/null 2>&1; echo "OTHER_PORT_CONNECT=$?"
echo "STATS=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' http://tinyproxy.stats/)"
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
    agent = spawn(am, engine, fill(LIMITED_PROBE, ip), "--network", "limited",
                  "--allow-domain", "allowed.test", isolation=isolation)
    v = values(am.wait_log(agent, "PROBE-DONE", timeout=90))
    assert v["IFACES"] == "lo"
    assert v["ALLOWED_HTTP"] == "allowed"  # forwarded http
    assert v["ALLOWED_CONNECT"] == "allowed"  # a CONNECT tunnel to port 443
    assert v["DENIED_HTTP"] == "403"  # refused by the proxy
    assert v["DENIED_CONNECT"] != "0" and v["OTHER_PORT_CONNECT"] != "0"
    assert v["STATS"] == "403"  # no statistics page
    assert v["DIRECT_ALLOWED"] != "0" and v["DIRECT_DENIED"] != "0"
    assert v["DNS_DENIED"] != "0" and v["DNS_ALLOWED"] != "0"  # no resolver at all
    assert v["CONF_VISIBLE"] != "0" and v["SOCKET_DIR_WRITE"] != "0"

    info = am.info(agent)
    assert info["network"] == "limited" and info["allow_domains"] == ["allowed.test"]
    assert info["proxy"] == f"am_proxy-{agent}" and info["egress_network"] == servers["net"]
    denied = am("logs", agent, "--network").stdout
    assert "denied denied.test" in denied and "tinyproxy.stats" in denied
    assert "denied allowed.test" not in denied
    assert "denied CONNECT allowed.test:80" in denied

    am("stop", agent)
    assert container_names(engine, str(am.home)) == []  # agent and proxy both gone
    assert am_networks(engine, am.home) == []
    assert "denied denied.test" in am("logs", agent, "--network").stdout  # kept after stop


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
    agent = spawn(am, engine, fill(KILL_PROBE, servers["ip"]), "--network", "limited",
                  "--allow-domain", "allowed.test", isolation=isolation)
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
    agent = spawn(am, engine, fill(REACH_PROBE, servers["bridge_ip"]), isolation=isolation)
    v = values(am.wait_log(agent, "PROBE-DONE"))
    assert v["IFACES"] == "lo" and v["ROUTES"] == "0"
    assert v["ALLOWED"] != "allowed" and v["DENIED"] != "denied"
    assert am.info(agent)["network"] == "none"
    am("stop", agent)


def test_full_reaches_both(am, engine, servers, isolation):
    """`full` is the engine's default bridge: the servers, joined to it too, both answer."""
    res = am("spawn", str(am.repo), "--container", "--runtime", engine, "--network", "full",
             "--isolation", isolation, "--cmd", fill(REACH_PROBE, servers["bridge_ip"]))
    assert "am: warning: --network full" in res.stderr
    agent = res.stdout.strip().splitlines()[-1]
    v = values(am.wait_log(agent, "PROBE-DONE"))
    assert v["IFACES"] != "lo" and int(v["ROUTES"]) >= 1
    assert v["ALLOWED"] == "allowed" and v["DENIED"] == "denied"
    am("stop", agent)


def test_default_egress_network_comes_and_goes_with_its_proxies(am, engine):
    del am.env["AM_EGRESS_NETWORK"]
    one = spawn(am, engine, "sleep 300", "--network", "limited")
    two = spawn(am, engine, "sleep 300", "--network", "limited")
    nets = am_networks(engine, am.home)
    assert len(nets) == 1 and nets[0].startswith("am-egress-")
    assert am.info(one)["allow_domains"] == []  # --cmd: no profile, so nothing but its own
    assert sorted(proxies(engine, am.home)) == sorted([f"am_proxy-{one}", f"am_proxy-{two}"])
    am("stop", one)
    assert am_networks(engine, am.home) == nets  # still used by the other proxy
    am("stop", two)
    assert am_networks(engine, am.home) == [] and proxies(engine, am.home) == []


def test_profile_domains_are_allowed(am, engine):
    agent = spawn(am, engine, "sleep 300", "--agent", "claude", "--network", "limited",
                  "--allow-domain", "*.example.test")
    assert am.info(agent)["allow_domains"] == ["api.anthropic.com", "statsig.anthropic.com",
                                               "sentry.io", "*.example.test"]
    am("stop", agent)


def test_agent_exit_removes_its_proxy(am, engine, isolation):
    agent = spawn(am, engine, "until [ -e .go ]; do sleep 0.1; done; exit 3", "--network",
                  "limited", isolation=isolation)
    (am.home / "agents" / agent / ".go").touch()  # its go, once the spawn has returned
    info = am.wait_status(agent, "exited")
    assert info["exit_code"] == 3  # the relay hands the agent its own exit code
    deadline = time.monotonic() + 30
    while container_names(engine, str(am.home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert container_names(engine, str(am.home)) == []


def test_doctor_finds_and_fixes_an_orphaned_proxy(am, engine):
    del am.env["AM_EGRESS_NETWORK"]
    agent = spawn(am, engine, "sleep 300", "--network", "limited")
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
    sh(engine, "create", "--name", "am_proxy-blocked", "--label", f"am.home={am.home}",
       "am-base:bookworm", "true")
    res = am("spawn", str(am.repo), "--container", "--runtime", engine, "--name", "blocked",
             "--network", "limited", "--cmd", "sleep 300", check=False)
    assert "network proxy did not start" in assert_am_error(res)
    assert container_names(engine, str(am.home)) == []
    assert am.list() == [] and not (am.home / "agents" / "blocked").exists()
    assert not (am.home / "state" / "run" / "blocked.net").exists()


def test_unwritable_proxy_config_fails_the_spawn_closed(am, engine):
    run = am.home / "state" / "run"
    run.mkdir(parents=True)
    (run / "stuck.net").write_text("not a folder")
    res = am("spawn", str(am.repo), "--container", "--runtime", engine, "--name", "stuck",
             "--network", "limited", "--cmd", "sleep 300", check=False)
    assert "cannot write the network proxy's configuration" in assert_am_error(res)
    assert container_names(engine, str(am.home)) == [] and am.list() == []


def test_missing_egress_network_is_refused_before_anything(am, engine):
    am.env["AM_EGRESS_NETWORK"] = f"amtest-missing-{uuid.uuid4().hex[:6]}"
    res = am("spawn", str(am.repo), "--container", "--runtime", engine, "--network", "limited",
             "--cmd", "true", check=False)
    assert "no such" in assert_am_error(res)
    assert am.list() == [] and container_names(engine, str(am.home)) == []


def test_clean_containers_removes_proxies_and_networks(am, engine):
    del am.env["AM_EGRESS_NETWORK"]
    agent = spawn(am, engine, "sleep 300", "--network", "limited")
    assert proxies(engine, am.home) == [f"am_proxy-{agent}"]
    # it stops a running agent: not without a word, and not without --yes off a terminal
    line = assert_am_error(am("clean", "--containers", check=False))
    assert f"stops 1 running container agent(s) ({agent})" in line and "--yes" in line
    assert proxies(engine, am.home) == [f"am_proxy-{agent}"]
    assert am.info(agent)["status"] == "running"
    am("clean", "--containers", "--yes")
    assert container_names(engine, str(am.home)) == [] and am_networks(engine, am.home) == []

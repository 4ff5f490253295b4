"""``--network limited``: an agent whose only way out is its own filtering proxy.

The agent container has no network but loopback (``--network none``). Its proxy, a container
``am_proxy-<id>`` running Debian's tinyproxy (image ``am-proxy:latest``, built offline by
``scripts/build-proxy-image.sh``), sits on an outside network and serves on a unix socket in a
host folder that both containers mount. Inside the agent, ``am/netfwd.py`` relays
127.0.0.1:3128 to that socket and the usual proxy variables point there. tinyproxy forwards
only host names on the allowlist (CONNECT to port 443 for https, plain http), refuses and logs
everything else, and resolves names itself, so the agent needs no DNS at all. docs/network.md
says why it is built this way (and not with an engine ``--internal`` network).

Composition (pure, unit-tested) comes first; the few engine calls follow.
"""

import contextlib
import hashlib
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from am import profiles
from am.errors import AmError

PROXY_IMAGE = "am-proxy:latest"
PROXY_PREFIX = "am_proxy-"  # agent containers are "am-<id>": no agent id can make this name
PROXY_PORT = 3128  # tinyproxy's port in the proxy; the relay's on the agent's loopback
PROXY_URL = f"http://127.0.0.1:{PROXY_PORT}"
NO_PROXY = "localhost,127.0.0.1,::1"
SOCKET_DIR = "/run/am-proxy"  # the same path in both containers
SOCKET = f"{SOCKET_DIR}/proxy.sock"
CONF_DIR = "/etc/am-proxy"
LOG_PATH = "/var/log/am-proxy/proxy.log"
RELAY_PATH = "/run/am-netfwd.py"
STAT_HOST = "am_no_stats"  # '_' is not allowed in domains, so no allowlist rule can match it
PROBE_HOST = "am-readiness-probe.invalid"  # what the readiness check asks for (and is refused)
EGRESS_ENV = "AM_EGRESS_NETWORK"
EGRESS_LABEL = "am.egress"
PROXY_LIMITS = {"memory": "128m", "pids": "200"}
# tinyproxy runs as a daemon; socat serves it on the unix socket. A constant: no user input.
PROXY_COMMAND = ["sh", "-c", f"tinyproxy -c {CONF_DIR}/tinyproxy.conf && exec socat "
                 f"UNIX-LISTEN:{SOCKET},fork,unlink-early TCP:127.0.0.1:{PROXY_PORT}"]
# --publish: the proxy listens on PUBLISH_BASE + i (published by the engine) and connects each
# client to the socket PUBLISH_DIR/<i>.sock, where the agent's relay connects it to the port.
PUBLISH_DIR = "/run/am-publish"
PUBLISH_BASE = 20000
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_RE = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")


# -- composition (pure) -------------------------------------------------------------------------


def proxy_name(agent_id: str) -> str:
    return PROXY_PREFIX + agent_id


def default_egress(home: str) -> str:
    """The am-managed outside network of one AM_HOME, shared by its proxies."""
    return "am-egress-" + hashlib.sha256(home.encode()).hexdigest()[:8]


def allowed_domains(agent: str, extra: list[str]) -> list[str]:
    """The profile's API domains, then each --allow-domain; no duplicates, order kept."""
    base = list(profiles.BUILTIN[agent].api_domains) if agent in profiles.BUILTIN else []
    return list(dict.fromkeys(base + list(extra)))


def domain_rule(domain: str) -> str:
    """One anchored extended regular expression: ``a.b`` is exactly that host, ``*.a.b`` any
    host under ``a.b`` (not ``a.b`` itself)."""
    if not _DOMAIN_RE.fullmatch(domain):
        raise AmError(f"invalid domain {domain!r} for the network proxy")
    if domain.startswith("*."):
        return r"^([a-z0-9_-]+\.)+" + re.escape(domain[2:]) + "$"
    return "^" + re.escape(domain) + "$"


def filter_text(domains: list[str]) -> str:
    lines = ["# am: hosts this agent's proxy forwards to; everything else is refused"]
    lines += [f"# {d}\n{domain_rule(d)}" for d in domains]
    return "\n".join(lines) + "\n"


def config_text(agent_id: str) -> str:
    """tinyproxy's configuration: deny by default, allow by host name, log refusals."""
    return f"""# am: network proxy of agent {agent_id} (generated; mounted read-only)
Port {PROXY_PORT}
Listen 127.0.0.1
Timeout 600
MaxClients 100
LogFile "{LOG_PATH}"
LogLevel Info
FilterType ere
Filter "{CONF_DIR}/filter"
FilterURLs Off
FilterDefaultDeny Yes
StatHost "{STAT_HOST}"
ConnectPort 443
DisableViaHeader Yes
"""


@dataclass(frozen=True)
class Files:
    """Where one agent's proxy keeps things on the host."""

    conf: Path  # tinyproxy.conf and filter; read-only in the proxy, absent from the agent
    sock: Path  # the unix socket's folder: read-write in the proxy, read-only in the agent
    log: Path  # tinyproxy's log; kept after the agent stops

    @property
    def pub(self) -> Path:
        """--publish: the agent's relay sockets; read-write in the agent, read-only in the proxy."""
        return self.conf.parent / "pub"

    @property
    def top(self) -> Path:
        return self.conf.parent

    @property
    def socket(self) -> Path:
        return self.sock / Path(SOCKET).name


def files(run: Path, logs: Path, agent_id: str) -> Files:
    """An agent's proxy files, under am's run and log folders."""
    top = run / f"{agent_id}.net"
    return Files(top / "conf", top / "sock", logs / f"{agent_id}.network.log")


def publish_command(count: int) -> list[str]:
    """The proxy's command: PROXY_COMMAND, with one socat per published port before it (their
    text holds only numbers am chose)."""
    if not count:
        return PROXY_COMMAND
    relays = "".join(f"{{ socat TCP-LISTEN:{PUBLISH_BASE + i},fork,reuseaddr "
                     f"UNIX-CONNECT:{PUBLISH_DIR}/{i}.sock & }} && " for i in range(count))
    first, _, rest = PROXY_COMMAND[2].partition(" && ")
    return ["sh", "-c", f"{first} && {relays}{rest}"]


def proxy_run_argv(runtime: str, agent_id: str, home: str, egress: str, f: Files,
                   user_args: list[str], publish: list[str] | None = None,
                   isolation: str = "runc", host_cpus: int = 1) -> list[str]:
    """The ``run`` command line of an agent's proxy container; it also publishes the agent's
    ports (the agent itself has no network to publish them on). A gVisor agent's proxy runs
    under gVisor too (it parses what the agent sends)."""
    from am import isolation as isolations
    from am.backends.engine import mount_arg
    from am.plan import publish_parts

    ports = []
    for i, spec in enumerate(publish or []):
        addr, host, _ = publish_parts(spec)
        ports += ["--publish", f"{addr}:{host}:{PUBLISH_BASE + i}"]
    if publish:
        ports += ["--mount", mount_arg(f.pub, PUBLISH_DIR, readonly=True)]
    return [
        *isolations.run_head(runtime, isolation, "proxy"), "--detach", "--pull", "never",
        "--name", proxy_name(agent_id), "--hostname", "am-proxy",
        "--label", f"am.proxy={agent_id}", "--label", f"am.home={home}",
        "--network", egress,
        "--memory", PROXY_LIMITS["memory"], "--memory-swap", PROXY_LIMITS["memory"],
        *isolations.pids_args(isolation, int(PROXY_LIMITS["pids"]), host_cpus),
        "--init", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--read-only",
        *user_args,
        "--mount", mount_arg(f.conf, CONF_DIR, readonly=True),
        "--mount", mount_arg(f.sock, SOCKET_DIR),
        "--mount", mount_arg(f.log, LOG_PATH),
        *ports,
        "--", PROXY_IMAGE, *publish_command(len(publish or [])),
    ]


def network_create_argv(runtime: str, name: str, home: str) -> list[str]:
    return [runtime, "network", "create", "--label", f"am.home={home}",
            "--label", f"{EGRESS_LABEL}=1", name]


def relay_source() -> Path:
    return Path(__file__).with_name("netfwd.py")


def agent_run_args(f: Files, publish: list[str] | None = None) -> list[str]:
    """What a limited agent's ``run`` adds: the socket (read-only), the relay, proxy settings,
    and with --publish the folder of the relay's sockets for published ports."""
    from am.backends.engine import mount_arg

    env = [f"{k}={PROXY_URL}" for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                                        "https_proxy")]
    env += [f"NO_PROXY={NO_PROXY}", f"no_proxy={NO_PROXY}"]
    return [
        "--mount", mount_arg(f.sock, SOCKET_DIR, readonly=True),
        "--mount", mount_arg(relay_source(), RELAY_PATH, readonly=True),
        *(["--mount", mount_arg(f.pub, PUBLISH_DIR)] if publish else []),
        *[a for e in env for a in ("--env", e)],
    ]


def wrap_command(command: list[str], publish: list[str] | None = None) -> list[str]:
    """The agent's command behind the relay, which then runs it in its own place; with
    --publish, the relay also serves each published port on a socket for the proxy."""
    from am.plan import publish_parts

    served = [f"--publish={PUBLISH_DIR}/{i}.sock:{publish_parts(spec)[2]}"
              for i, spec in enumerate(publish or [])]
    return ["python3", RELAY_PATH, SOCKET, str(PROXY_PORT), *served, "--", *command]


def denied(lines: list[str]) -> list[str]:
    """tinyproxy's log lines about refused requests, as ``<time> denied <what>``."""
    out, connect_to = [], {}  # port -> host of the latest CONNECT request to it
    for line in lines:
        m = re.match(r"\S+\s+(\w{3} +\d+ [\d:]+)\.\d+ \[\d+\]: (.*)", line)
        if not m:
            continue
        when, text = m.groups()
        if req := re.match(r"Request \(file descriptor \d+\): CONNECT (\S+):(\d+) ", text):
            connect_to[req.group(2)] = req.group(1)
        elif host := re.fullmatch(r'Proxying refused on filtered (?:domain|url) "(.*)"', text):
            if host.group(1) != PROBE_HOST:
                out.append(f"{when} denied {host.group(1)}")
        elif port := re.fullmatch(r"Refused CONNECT method on port (\d+)", text):
            target = connect_to.get(port.group(1), "")
            out.append(f"{when} denied CONNECT {target}:{port.group(1)} (only port 443 is "
                       "allowed)")
    return out


# -- calls ----------------------------------------------------------------------------------


def ensure_image(engine) -> None:
    """Build the proxy image on first use, as the agent image is."""
    if not engine.image_exists(PROXY_IMAGE):
        engine.run_build_script("build-proxy-image.sh", PROXY_IMAGE, "network proxy image")


def prepare(engine, plan) -> None:
    """Before anything is created: the proxy image, the outside network, the relay's path."""
    from am.backends.engine import check_mount_path

    ensure_image(engine)
    if plan.egress != plan.managed_egress:
        res = engine.call("network", "inspect", "--format", "{{.Name}}", plan.egress)
        if not res.ok:
            raise AmError(f"{EGRESS_ENV}={plan.egress}: no such {engine.title} network",
                          "create it, or unset the variable to use am's own")
    check_mount_path(relay_source())


def write_files(f: Files, agent_id: str, domains: list[str], uid: int,
                publish: bool = False) -> None:
    """The proxy's configuration, socket folder and log (and with PUBLISH the folder of the
    relay's sockets); as root, the agents' user owns all but the configuration. Fails closed:
    any error stops the spawn."""
    from am.backends.engine import IMAGE_UID

    try:
        shutil.rmtree(f.top, ignore_errors=True)
        f.conf.mkdir(parents=True, mode=0o755)
        f.sock.mkdir(mode=0o700)
        (f.conf / "tinyproxy.conf").write_text(config_text(agent_id))
        (f.conf / "filter").write_text(filter_text(domains))
        for p in (f.conf, f.conf / "tinyproxy.conf", f.conf / "filter"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        f.log.parent.mkdir(parents=True, exist_ok=True)
        f.log.touch()
        if publish:
            f.pub.mkdir(mode=0o700)
        if uid == 0:
            for p in (f.sock, f.log, *([f.pub] if publish else [])):
                os.chown(p, IMAGE_UID, IMAGE_UID)
    except OSError as e:
        raise AmError(f"cannot write the network proxy's configuration: {e}") from None


def discard_files(f: Files) -> None:
    """Remove an agent's proxy files, its log included (a failed spawn, or ``am rm``)."""
    shutil.rmtree(f.top, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        f.log.unlink()


def ensure_network(engine, name: str, home: str) -> None:
    if engine.call("network", "inspect", "--format", "{{.Name}}", name).ok:
        return
    res = engine.call(*network_create_argv(engine.runtime, name, home)[1:], timeout=60)
    if not res.ok and not engine.call("network", "inspect", name).ok:
        raise engine.failure(f"cannot create the network {name}", res.err or res.out)


def start(engine, plan, home: str, timeout: float = 30) -> None:
    """Start the agent's proxy and return once it refuses what it must; raise otherwise."""
    f = plan.network_files
    write_files(f, plan.id, plan.allow_domains, os.getuid(), bool(plan.publish))
    argv = proxy_run_argv(engine.runtime, plan.id, home, plan.egress, f,
                          engine.user_args(os.getuid(), os.getgid()), plan.publish,
                          plan.isolation or "runc", os.cpu_count() or 1)
    for attempt in (1, 2):  # once more if a concurrent stop removed the shared network
        if plan.egress == plan.managed_egress:
            ensure_network(engine, plan.egress, home)
        res = engine.call(*argv[1:], timeout=120)
        if res.ok:
            break
        engine.call("rm", "--force", proxy_name(plan.id))
        if attempt == 2 or "network" not in res.err.lower():
            raise engine.failure("the network proxy did not start", res.err or res.out)
    wait_ready(engine, proxy_name(plan.id), f.socket, timeout)


def probe(sock: Path, timeout: float = 2.0) -> str:
    """Ask the proxy for a host no allowlist holds; its status line ('' if no answer)."""
    try:
        # A socket's path may not exceed 107 bytes, and AM_HOME can be deep: connect through
        # a descriptor of its folder instead.
        folder = os.open(sock.parent, os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return ""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(f"/proc/self/fd/{folder}/{sock.name}")
            s.sendall(f"GET http://{PROBE_HOST}/ HTTP/1.0\r\nHost: {PROBE_HOST}\r\n\r\n"
                      .encode())
            data = b""
            while b"\r\n" not in data and len(data) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return ""
    finally:
        os.close(folder)
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def wait_ready(engine, name: str, sock: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = probe(sock)
        if line:
            if line.split()[1:2] == ["403"]:
                return
            raise AmError(f"the network proxy {name} answered {line!r} for a host it must "
                          "refuse; not starting the agent")
        state = engine.call("inspect", "--format", "{{.State.Running}}", name)
        if state.ok and state.out.strip() == "false":
            logs = engine.call("logs", "--tail", "3", name)
            tail = (logs.err or logs.out).strip().splitlines()
            raise AmError(f"the network proxy {name} exited"
                          + (f": {tail[-1]}" if tail else ""))
        time.sleep(0.1)
    raise AmError(f"the network proxy {name} did not answer within {timeout:.0f}s")


def remove(engine, agent_id: str, egress: str | None) -> None:
    """Remove an agent's proxy, then the am-managed outside network if no proxy uses it."""
    engine.remove(proxy_name(agent_id))
    if egress:
        remove_network(engine, egress)


def remove_network(engine, name: str) -> None:
    """Remove an outside network am made; the engine refuses while a container uses it."""
    with contextlib.suppress(AmError):
        engine.call("network", "rm", name, timeout=60)


def proxies(engine, home: str) -> list[str]:
    """Names of the proxy containers, running or not, of this AM_HOME."""
    res = engine.call("ps", "--all", "--filter", f"label=am.home={home}", "--format",
                      "{{.Names}}")
    return [n for n in res.out.split() if n.startswith(PROXY_PREFIX)] if res.ok else []


def networks(engine, home: str) -> list[str]:
    """The outside networks am made for this AM_HOME."""
    res = engine.call("network", "ls", "--filter", f"label=am.home={home}", "--format",
                      "{{.Name}}")
    return res.out.split() if res.ok else []

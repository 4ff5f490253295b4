"""``--network limited``: an agent whose only way out is its own filtering proxy.

The agent container has no network but loopback (``--network none``). Its proxy, a container
``am_proxy-<id>`` running Debian's squid (image ``am-proxy:2``, built offline by
``scripts/build-proxy-image.sh``; nothing else in it but a relay that serves squid's loopback
port on a unix socket), sits on an outside network; the socket is in a host folder both
containers mount. Inside the agent, ``am/netfwd.py`` relays 127.0.0.1:3128 to that socket and
the usual proxy variables point there. squid forwards only host names on the allowlist (port 80
for http, 443 for https unless an entry names its port), refuses names that resolve to private,
loopback, link-local or host addresses unless allowed by name, resolves names itself (so the
agent needs no DNS at all) and logs every request. docs/network.md says why it is built this way
(and not with an engine ``--internal`` network).

Composition (pure, unit-tested) comes first; the few engine calls follow.
"""

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import time
from pathlib import Path

from am import domains, profiles
from am.errors import AmError
from am.valueclass import value_class

PROXY_IMAGE = "am-proxy:2"
PROXY_PREFIX = "am_proxy-"  # agent containers are "am-<id>": no agent id can make this name
PROXY_PORT = 3128  # squid's port in the proxy; the relay's on the agent's loopback
PROXY_URL = f"http://127.0.0.1:{PROXY_PORT}"
NO_PROXY = "localhost,127.0.0.1,::1"
SOCKET_DIR = "/run/am-proxy"  # the same path in both containers
SOCKET = f"{SOCKET_DIR}/proxy.sock"  # also compiled into the image's relay
CONF_DIR = "/etc/am-proxy"
CONF_NAME = "squid.conf"  # the relay starts squid with CONF_DIR/CONF_NAME
LOG_PATH = "/var/log/am-proxy/proxy.log"
RELAY_PATH = "/run/am-netfwd.py"
PROBE_HOST = "am-readiness-probe.invalid"  # what the readiness check asks for (and is refused)
EGRESS_ENV = "AM_EGRESS_NETWORK"
EGRESS_LABEL = "am.egress"
PROXY_LIMITS = {"memory": "128m", "pids": "200", "cpus": "0.5"}
# Destinations refused unless the name is allowed with --allow-private-domain: "this" network,
# RFC 1918, shared (CGNAT), loopback, link-local, IETF protocol assignments, benchmarking,
# multicast and reserved; IPv6 loopback, NAT64, unique local, link-local and multicast. Not
# "::/128" nor IPv4-mapped "::ffff:0:0/96": squid keeps IPv4 addresses as mapped ones, so it
# reads both as every IPv4 address (it checks a mapped answer against the IPv4 ranges). The
# egress network's gateway and this host's own addresses are added when a proxy starts.
LOCAL_NETS = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::1/128",
    "64:ff9b::/96",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
)
# The error pages (and log codes) of the three refusals, in the image's template folder.
REFUSALS = {
    "ERR_AM_DOMAIN": "not on the allowlist",
    "ERR_AM_PRIVATE": "a private, loopback, link-local or host address (allow the name with "
    "--allow-private-domain)",
    "ERR_AM_PORT": "port not allowed (http: 80, https: 443, others with --allow-domain HOST:PORT)",
}
# --publish: the proxy listens on PUBLISH_BASE + i (published by the engine) and connects each
# client to the socket PUBLISH_DIR/<i>.sock, where the agent's relay connects it to the port.
# Both are compiled into the image's relay too.
PUBLISH_DIR = "/run/am-publish"
PUBLISH_BASE = 20000


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


def addresses(values) -> list[str]:
    """The valid IP addresses among VALUES, each once (engine or host output: never trusted
    to be well-formed before it goes into squid's configuration)."""
    out = []
    for v in values:
        try:
            out.append(str(ipaddress.ip_address(str(v).split("%")[0])))
        except ValueError:
            continue
    return list(dict.fromkeys(out))


def gateways(inspect: list | dict) -> list[str]:
    """The gateway addresses in ``network inspect`` output of docker (IPAM.Config) or podman
    (subnets)."""
    nets = inspect if isinstance(inspect, list) else [inspect]
    found = []
    for net in nets:
        if not isinstance(net, dict):
            continue
        found += [
            c.get("Gateway")
            for c in (net.get("IPAM") or {}).get("Config") or []
            if isinstance(c, dict)
        ]
        found += [s.get("gateway") for s in net.get("subnets") or [] if isinstance(s, dict)]
    return addresses(filter(None, found))


def config_text(agent_id: str, allow: list[str], private: list[str], local: list[str]) -> str:
    """squid's configuration: deny by default; forward the allowed names on their ports, and
    to private, loopback, link-local or host addresses (LOCAL) only names in PRIVATE; log
    every request. ALLOW and PRIVATE are checked allowlist entries (``domains.check``)."""
    rules = [domains.split(e) for e in dict.fromkeys(allow + private)]
    nets = [ipaddress.ip_network(n) for n in LOCAL_NETS]
    # Only what the fixed ranges miss (squid warns about, and ignores, a covered address).
    local = [a for a in addresses(local) if not any(ipaddress.ip_address(a) in n for n in nets)]
    names = list(dict.fromkeys(domains.regex(p) for p, _ in rules))
    private_names = list(dict.fromkeys(domains.regex(domains.split(e)[0]) for e in private))
    lines = [
        f"# am: network proxy of agent {agent_id} (generated; mounted read-only)",
        f"http_port 127.0.0.1:{PROXY_PORT}",
        # squid sizes its tables by the descriptor limit, which engines set high (podman: a
        # million): 90 MB more under gVisor, over the proxy's 128m. 4096 is 2000 connections.
        "max_filedescriptors 4096",
        "visible_hostname am-proxy",
        "httpd_suppress_version_string on",
        "via off",
        "forwarded_for delete",
        # No disk cache, pid file, core dumps, ICMP pinger or helpers: a read-only root.
        "cache deny all",
        "cache_mem 0 MB",
        "memory_pools off",
        "pid_filename none",
        "coredump_dir none",
        "pinger_enable off",
        "unlinkd_program /dev/null",
        "mime_table /dev/null",
        "icon_directory /usr/share/squid/icons",
        "error_directory /usr/share/squid/errors/templates",
        # Names come from DNS alone, not from the engine's /etc/hosts (host.containers.internal
        # and the like). negative_dns_ttl is also the shortest time squid keeps an answer, so
        # the address the rules saw is the one it connects to (no rebinding within a request).
        "hosts_file none",
        "negative_dns_ttl 1 minute",
        "shutdown_lifetime 1 seconds",
        "cache_log stdio:/dev/stderr",
        "logfile_rotate 0",
        # A URL of at most 256 characters: one request writes a line of a few hundred bytes at
        # most, so the keeper's cap on the log (logs.max_size, looked at each second) holds.
        "logformat am %ts.%03tu %Ss %>Hs %err_code %rm %>rd %>rP %.256ru",
        f"access_log stdio:{LOG_PATH} am",
        # -n: never a reverse lookup, so an IP literal cannot match a name by its PTR record.
        "acl am_names dstdom_regex -n -i " + " ".join(names),
        "acl am_private_ok dstdom_regex -n -i " + (" ".join(private_names) or "^am_none$"),
        "acl am_local dst " + " ".join([*LOCAL_NETS, *local]),
        "acl am_connect method CONNECT",
    ]
    allows = []
    for i, (pattern, port) in enumerate(rules):
        lines.append(f"acl am_d{i} dstdom_regex -n -i {domains.regex(pattern)}")
        if port is None:
            allows += [
                f"http_access allow am_d{i} !am_connect am_port80",
                f"http_access allow am_d{i} am_connect am_port443",
            ]
        else:
            lines.append(f"acl am_p{i} port {port}")
            allows.append(f"http_access allow am_d{i} am_p{i}")
    lines += [
        "acl am_port80 port 80",
        "acl am_port443 port 443",
        # deny_info names the refusal after the last ACL its rule checked.
        "deny_info ERR_AM_DOMAIN am_names",
        "deny_info ERR_AM_PRIVATE am_private_ok",
        "deny_info ERR_AM_PORT all",
        "http_access deny manager",
        # Names first: a refused name is never looked up, so DNS carries nothing out.
        "http_access deny !am_names",
        "http_access deny am_local !am_private_ok",
        *allows,
        "http_access deny all",
    ]
    return "\n".join(lines) + "\n"


@value_class
class Files:
    """Where one agent's proxy keeps things on the host."""

    conf: Path  # squid.conf; read-only in the proxy, absent from the agent
    sock: Path  # the unix socket's folder: read-write in the proxy, read-only in the agent
    log: Path  # squid's access log; kept after the agent stops

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


def proxy_run_argv(
    runtime: str,
    agent_id: str,
    home: str,
    egress: str,
    f: Files,
    user_args: list[str],
    publish: list[str] | None = None,
    isolation: str = "runc",
    host_cpus: int = 1,
) -> list[str]:
    """The ``run`` command line of an agent's proxy container; it also publishes the agent's
    ports (the agent itself has no network to publish them on). A gVisor agent's proxy runs
    under gVisor too (it parses what the agent sends)."""
    from am import isolation as isolations
    from am.backends.hostside import mount_arg
    from am.validate import publish_parts

    ports = []
    for i, spec in enumerate(publish or []):
        addr, host, _ = publish_parts(spec)
        ports += ["--publish", f"{addr}:{host}:{PUBLISH_BASE + i}"]
    if publish:
        ports += ["--mount", mount_arg(f.pub, PUBLISH_DIR, readonly=True)]
    return [
        *isolations.run_head(runtime, isolation, "proxy"),
        "--detach",
        "--pull",
        "never",
        "--name",
        proxy_name(agent_id),
        "--hostname",
        "am-proxy",
        "--label",
        f"am.proxy={agent_id}",
        "--label",
        f"am.home={home}",
        "--network",
        egress,
        "--memory",
        PROXY_LIMITS["memory"],
        "--memory-swap",
        PROXY_LIMITS["memory"],
        "--cpus",
        PROXY_LIMITS["cpus"],
        *isolations.pids_args(isolation, int(PROXY_LIMITS["pids"]), host_cpus),
        "--init",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--read-only",
        *user_args,
        "--mount",
        mount_arg(f.conf, CONF_DIR, readonly=True),
        "--mount",
        mount_arg(f.sock, SOCKET_DIR),
        "--mount",
        mount_arg(f.log, LOG_PATH),
        *ports,
        "--",
        PROXY_IMAGE,
        *([str(len(publish))] if publish else []),
    ]


def network_create_argv(runtime: str, name: str, home: str) -> list[str]:
    return [
        runtime,
        "network",
        "create",
        "--label",
        f"am.home={home}",
        "--label",
        f"{EGRESS_LABEL}=1",
        name,
    ]


def relay_source() -> Path:
    return Path(__file__).parents[1] / "netfwd.py"  # am/netfwd.py


def agent_run_args(f: Files, publish: list[str] | None = None) -> list[str]:
    """What a limited agent's ``run`` adds: the socket (read-only), the relay, proxy settings,
    and with --publish the folder of the relay's sockets for published ports."""
    from am.backends.hostside import mount_arg

    env = [f"{k}={PROXY_URL}" for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")]
    env += [f"NO_PROXY={NO_PROXY}", f"no_proxy={NO_PROXY}"]
    return [
        "--mount",
        mount_arg(f.sock, SOCKET_DIR, readonly=True),
        "--mount",
        mount_arg(relay_source(), RELAY_PATH, readonly=True),
        *(["--mount", mount_arg(f.pub, PUBLISH_DIR)] if publish else []),
        *[a for e in env for a in ("--env", e)],
    ]


def wrap_command(command: list[str], publish: list[str] | None = None) -> list[str]:
    """The agent's command behind the relay, which then runs it in its own place; with
    --publish, the relay also serves each published port on a socket for the proxy."""
    from am.validate import publish_parts

    served = [
        f"--publish={PUBLISH_DIR}/{i}.sock:{publish_parts(spec)[2]}"
        for i, spec in enumerate(publish or [])
    ]
    return ["python3", RELAY_PATH, SOCKET, str(PROXY_PORT), *served, "--", *command]


def denied(lines: list[str]) -> list[str]:
    """The proxy's log lines about refused requests, as ``<time> denied <what>: <why>``.

    The text comes from the agent's requests: the caller's output escapes control characters
    (am.output), so none reaches a terminal as such."""
    if lines and not lines[0][:1].isdigit():
        return _denied_tinyproxy(lines)  # the log of a proxy an am before squid started
    out = []
    for line in lines:
        parts = line.rstrip("\n").split(" ", 7)
        if len(parts) < 8 or not parts[0].replace(".", "", 1).isdigit():
            continue
        stamp, status, code, err, method, host, port, url = parts
        if host == PROBE_HOST:
            continue
        when = time.strftime("%b %d %H:%M:%S", time.localtime(float(stamp)))
        if err in REFUSALS:
            out.append(f"{when} denied {method} {host}:{port}: {REFUSALS[err]}")
        elif status == "TCP_DENIED" or code.startswith("4") and status.startswith("NONE"):
            what = url if host == "-" else f"{method} {host}:{port}"
            out.append(
                f"{when} denied {what}: "
                + ("invalid request" if status.startswith("NONE") else "refused")
            )
    return out


def _denied_tinyproxy(lines: list[str]) -> list[str]:
    import re

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
            out.append(f"{when} denied CONNECT {target}:{port.group(1)} (only port 443 is allowed)")
    return out


# -- calls ----------------------------------------------------------------------------------


def ensure_image(engine) -> None:
    """Build the proxy image on first use, as the agent image is."""
    if not engine.image_exists(PROXY_IMAGE):
        engine.run_build_script("build-proxy-image.sh", PROXY_IMAGE, "network proxy image")


def prepare(engine, plan) -> None:
    """Before anything is created: the proxy image, the outside network, the relay's path."""
    from am.backends.hostside import check_mount_path

    ensure_image(engine)
    if plan.egress != plan.managed_egress and network_info(engine, plan.egress) is None:
        raise AmError(
            f"{EGRESS_ENV}={plan.egress}: no such {engine.title} network",
            "create it, or unset the variable to use am's own",
        )
    check_mount_path(relay_source())


def host_addresses() -> list[str]:
    """Every address of this host's interfaces (a proxy's refused destinations: the host)."""
    import psutil

    return addresses(
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family in (socket.AF_INET, socket.AF_INET6)
    )


def write_files(f: Files, conf: str, uid: int, publish: bool = False, capped: bool = False) -> None:
    """The proxy's configuration, socket folder and log (and with PUBLISH the folder of the
    agent's relay sockets); as root, the proxy's user (the agents' uid) owns all but the
    configuration. CAPPED (--disk): the relay sockets' folder is a tiny tmpfs, so the agent
    cannot write its way past the cap there. Fails closed: any error stops the spawn."""
    from am import paths
    from am.backends.hostside import agent_uid

    try:
        _remove_top(f)
        paths.private_dir(f.top.parent)
        f.top.mkdir(mode=0o700)  # the user's alone; the proxy mounts what is inside
        f.conf.mkdir()
        f.sock.mkdir(mode=0o700)
        (f.conf / CONF_NAME).write_text(conf)
        # Readable by the proxy's user, which is not the owner when am runs as root.
        f.conf.chmod(0o755)
        (f.conf / CONF_NAME).chmod(0o644)
        paths.private_dir(f.log.parent)
        f.log.touch()
        if publish:
            f.pub.mkdir(mode=0o700)
        if uid == 0:
            for p in (f.sock, f.log, *([f.pub] if publish else [])):
                os.chown(p, agent_uid(), agent_uid())
        if publish and capped:
            from am import disk

            owner = agent_uid() if uid == 0 else uid
            disk.cap_folder(f.pub, owner, owner if uid == 0 else os.getgid())
    except OSError as e:
        raise AmError(f"cannot write the network proxy's configuration: {e}") from None


def _remove_top(f: Files) -> None:
    """The proxy's folder gone, the relay sockets' tmpfs (--disk) unmounted first."""
    if f.pub.is_dir():
        from am import disk

        disk.unmount_below(f.pub)
    shutil.rmtree(f.top, ignore_errors=True)


def discard_files(f: Files) -> None:
    """Remove an agent's proxy files, its log included (a failed spawn, or ``am rm``)."""
    _remove_top(f)
    for log in (f.log, Path(f"{f.log}.1")):
        with contextlib.suppress(FileNotFoundError):
            log.unlink()


def network_info(engine, name: str) -> list | None:
    """``network inspect`` of NAME, parsed; None if there is no such network."""
    res = engine.call("network", "inspect", name)
    if not res.ok:
        if "matches found" in res.err:  # docker: several of that name, answered for none
            raise AmError(
                f"{engine.title} has several networks named {name}, and uses none of them",
                f"'am clean --containers' removes am's while no limited agent runs; or 'docker "
                f"network ls --filter name={name}' and 'docker network rm ID'",
            )
        return None
    try:
        return json.loads(res.out)
    except ValueError:
        return []


def ensure_network(engine, name: str, home: str) -> list:
    """The am-managed outside network NAME, made if missing; its ``network inspect``. One
    spawn at a time looks and makes: docker makes a second network of a name already taken,
    and then answers for neither (a --count of limited agents made three)."""
    from am import files, paths

    paths.private_dir(engine.layout.run)
    with files.locked(engine.layout.run / f"network-{name}.lock"):
        info = network_info(engine, name)
        if info is not None:
            return info
        res = engine.call(*network_create_argv(engine.runtime, name, home)[1:], timeout=60)
        info = network_info(engine, name)
    if info is None:
        raise engine.failure(f"cannot create the network {name}", res.err or res.out)
    return info


def start(engine, plan, home: str, timeout: float = 30) -> None:
    """Start the agent's proxy and return once it refuses what it must; raise otherwise."""
    f = plan.network_files
    argv = proxy_run_argv(
        engine.runtime,
        plan.id,
        home,
        plan.egress,
        f,
        engine.user_args(os.getuid(), os.getgid()),
        plan.publish,
        plan.isolation or "runc",
        os.cpu_count() or 1,
    )
    for attempt in (1, 2):  # once more if a concurrent stop removed the shared network
        if plan.egress == plan.managed_egress:
            info = ensure_network(engine, plan.egress, home)
        else:
            info = network_info(engine, plan.egress) or []
        local = gateways(info) + host_addresses()
        write_files(
            f,
            config_text(plan.id, plan.allow_domains, plan.allow_private_domains, local),
            os.getuid(),
            bool(plan.publish),
            bool(plan.disk),
        )
        res = engine.call(*argv[1:], timeout=120)
        if res.ok:
            break
        engine.call("rm", "--force", proxy_name(plan.id))
        if attempt == 2 or "network" not in res.err.lower():
            raise engine.failure("the network proxy did not start", res.err or res.out)
    wait_ready(engine, proxy_name(plan.id), f.socket, timeout)


def probe(sock: Path, timeout: float = 2.0) -> str:
    """Ask the proxy for a host no allowlist holds; its status line ('' if no answer)."""
    from am import hostos

    folder = None
    try:
        # A socket's path may not exceed 107 bytes, and AM_HOME can be deep: connect through
        # a descriptor of its folder instead (Linux; elsewhere the path as it is).
        if hostos.linux():
            folder = os.open(sock.parent, os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return ""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(f"/proc/self/fd/{folder}/{sock.name}" if folder is not None else str(sock))
            s.sendall(f"GET http://{PROBE_HOST}/ HTTP/1.0\r\nHost: {PROBE_HOST}\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data and len(data) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return ""
    finally:
        if folder is not None:
            os.close(folder)
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def wait_ready(engine, name: str, sock: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = probe(sock)
        if line:
            if line.split()[1:2] == ["403"]:
                return
            raise AmError(
                f"the network proxy {name} answered {line!r} for a host it must "
                "refuse; not starting the agent"
            )
        state = engine.call("inspect", "--format", "{{.State.Running}}", name)
        if not state.ok and "no such" in state.err.lower():  # removed ('am stop' came)
            raise AmError(f"the network proxy {name} is gone")
        if state.ok and state.out.strip() == "false":
            logs = engine.call("logs", "--tail", "3", name)
            tail = (logs.err or logs.out).strip().splitlines()
            raise AmError(f"the network proxy {name} exited" + (f": {tail[-1]}" if tail else ""))
        time.sleep(0.1)
    raise AmError(f"the network proxy {name} did not answer within {timeout:.0f}s")


def remove_network(engine, name: str) -> None:
    """Remove an outside network am made; the engine refuses while a container uses it. A
    name that names several (an older am's spawns made one each, at once), which docker
    refuses, goes by the id of each of am's networks of that name."""
    with contextlib.suppress(AmError):
        res = engine.call("network", "rm", name, timeout=60)
        if res.ok or "matches found" not in res.err:
            return
        res = engine.call(
            "network", "ls", "--filter", f"label={EGRESS_LABEL}=1", "--format", "{{.ID}}\t{{.Name}}"
        )
        rows = (line.partition("\t") for line in res.out.splitlines()) if res.ok else ()
        ids = [i for i, _, n in rows if n == name]
        if ids:
            engine.call("network", "rm", *ids, timeout=60)


def proxies(engine, home: str) -> list[str]:
    """Names of the proxy containers, running or not, of this AM_HOME."""
    res = engine.call("ps", "--all", "--filter", f"label=am.home={home}", "--format", "{{.Names}}")
    return [n for n in res.out.split() if n.startswith(PROXY_PREFIX)] if res.ok else []


def networks(engine, home: str) -> list[str]:
    """The outside networks am made for this AM_HOME."""
    res = engine.call("network", "ls", "--filter", f"label=am.home={home}", "--format", "{{.Name}}")
    return list(dict.fromkeys(res.out.split())) if res.ok else []  # a name made twice: once

#!/usr/bin/env bash
# engines-up.sh - make the docker and podman engines usable on this machine.
#
# Run as root (CI does). Idempotent: safe to run again and again.
# Works on a fresh Debian 12 after
#     apt-get install docker.io podman runc mmdebstrap uidmap
#
# What it does:
#   1. podman: writes /etc/containers/containers.conf (only if missing or if
#      it is ours and out of date) so that podman
#        - uses runc: crun fails on hosts with hybrid cgroups (v1 controllers
#          + a cgroup2 "unified" mount, no systemd as PID 1), and
#        - sets nofile/nproc ulimits that fit under the host hard limits
#          (podman as root otherwise asks for nofile=1048576, which runc
#          cannot set when the engine's hard limit is lower), and
#        - has an init binary for `podman run --init`: Debian 12 does not
#          ship podman's default /usr/libexec/podman/catatonit unless the
#          catatonit package is installed, so we point it at an existing
#          static init (catatonit, tini-static or docker-init, itself tini).
#   2. docker: starts dockerd in the background (log: /var/log/dockerd.log)
#      if `docker info` fails, then waits (bounded) until `docker info` works.
#      No storage-driver flag is passed: dockerd probes overlay2 first and
#      falls back to the next driver that works (vfs at worst) on its own,
#      e.g. when /var/lib/docker sits on an overlayfs or another fs where
#      overlay mounts fail. On the ext4 root of these machines overlay2 works
#      (checked: "Storage Driver: overlay2, Backing Filesystem: extfs").
#      Without systemd as PID 1 dockerd uses the cgroupfs cgroup driver with
#      cgroup v1, which is what we want on the hybrid layout here.
#      Extra dockerd flags can be given in AM_DOCKERD_FLAGS, e.g.
#      AM_DOCKERD_FLAGS="--storage-driver=vfs".
#   3. gVisor (`am spawn --isolation gvisor`), when runsc is installed:
#      registers it in /etc/docker/daemon.json once per network policy
#      and for proxies (am-runsc-none, -limited, -full, -proxy: docker takes a
#      runtime's flags only from there; am/isolation.py says which and why),
#      adding to a daemon.json of someone else's without changing their keys.
#      A running dockerd takes the new runtime on SIGHUP (it reloads
#      "runtimes" without restarting, so no container stops); only if that
#      does not show the runtime, a dockerd this script started itself is
#      restarted. Podman needs no configuration: it knows runsc by name.
#   4. checks that `podman info` works.
#
# Environment:
#   AM_DOCKERD_FLAGS     extra flags for dockerd (default: none)
#   AM_DOCKERD_LOG       dockerd log file (default: /var/log/dockerd.log)
#   AM_ENGINE_WAIT       seconds to wait for dockerd (default: 60)
#   AM_ENGINES           which engines to bring up: "docker podman" (default)
#   AM_ULIMIT            nofile/nproc value for podman (default: 20000)
#   AM_DOCKER_DAEMON_JSON  dockerd's configuration file (default: /etc/docker/daemon.json)
set -euo pipefail

log() { printf 'engines-up: %s\n' "$*" >&2; }
die() { printf 'engines-up: ERROR: %s\n' "$*" >&2; exit 1; }

ENGINES="${AM_ENGINES:-docker podman}"
WAIT="${AM_ENGINE_WAIT:-60}"
DOCKERD_LOG="${AM_DOCKERD_LOG:-/var/log/dockerd.log}"
ULIMIT="${AM_ULIMIT:-20000}"
CONF=/etc/containers/containers.conf
DAEMON_JSON="${AM_DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}"
AM_SRC=$(cd "$(dirname "$0")/.." && pwd)  # am's source: am/isolation.py names the runtimes
# The pid of a dockerd this script started: only that one may be restarted.
STARTED_PID=/run/am-engines-up.dockerd.pid
MARKER="# managed by am scripts/engines-up.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root (it writes $CONF and starts dockerd)"

want() { case " $ENGINES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# The hard limits of this shell bound what an engine may give a container.
hard_nofile=$(ulimit -Hn)
hard_nproc=$(ulimit -Hu)
for h in "$hard_nofile" "$hard_nproc"; do
    if [ "$h" != unlimited ] && [ "$ULIMIT" -gt "$h" ]; then
        log "lowering container ulimit $ULIMIT to host hard limit $h"
        ULIMIT=$h
    fi
done

find_init() {
    local c
    for c in /usr/libexec/podman/catatonit /usr/bin/catatonit \
             /usr/bin/tini-static /usr/bin/docker-init; do
        if [ -x "$c" ]; then readlink -f "$c"; return 0; fi
    done
    return 1
}

podman_conf() {
    local init_line="" init
    if init=$(find_init); then
        init_line="init_path = \"$init\""
    else
        log "warning: no catatonit/tini found: 'podman run --init' will fail (apt-get install catatonit)"
    fi
    cat <<EOF
$MARKER
# runc, not crun: crun fails on these hosts' hybrid cgroups (v1 + unified).
# ulimits: podman's root default (nofile=1048576) exceeds the hosts' hard
# limits, which makes runc fail with "setrlimit: operation not permitted".
[containers]
default_ulimits = [
  "nofile=$ULIMIT:$ULIMIT",
  "nproc=$ULIMIT:$ULIMIT",
]
$init_line

[engine]
runtime = "runc"

# netavark with aardvark-dns: names (--network-alias) resolve on user networks. With the CNI
# backend and no DNS plugin (a fresh apt-get install --no-install-recommends podman) they do not.
[network]
network_backend = "netavark"
EOF
}

setup_podman() {
    command -v podman >/dev/null || die "podman not installed (apt-get install podman runc uidmap)"
    command -v runc >/dev/null || die "runc not installed (apt-get install runc)"
    mkdir -p /etc/containers
    local new
    new=$(podman_conf)
    if [ ! -e "$CONF" ]; then
        log "writing $CONF"
        printf '%s\n' "$new" >"$CONF"
    elif head -n1 "$CONF" | grep -qxF "$MARKER"; then
        if [ "$(cat "$CONF")" != "$new" ]; then
            log "updating $CONF"
            printf '%s\n' "$new" >"$CONF"
        fi
    else
        log "$CONF exists and is not ours: leaving it alone"
        grep -q 'runtime *= *"runc"' "$CONF" ||
            log "warning: $CONF does not set runtime = \"runc\""
        grep -q 'default_ulimits' "$CONF" ||
            log "warning: $CONF does not set default_ulimits (nofile/nproc <= $ULIMIT)"
        grep -q 'network_backend *= *"netavark"' "$CONF" ||
            log "warning: $CONF does not set network_backend = \"netavark\" under [network]"
    fi
    [ -x /usr/lib/podman/netavark ] || command -v netavark >/dev/null ||
        die "netavark not installed (apt-get install netavark aardvark-dns)"
    [ -x /usr/lib/podman/aardvark-dns ] || command -v aardvark-dns >/dev/null ||
        die "aardvark-dns not installed (apt-get install aardvark-dns)"
    local cni
    cni=$(find /etc/cni/net.d -name '*.conflist' ! -name '87-podman-bridge.conflist' 2>/dev/null || true)
    [ -z "$cni" ] ||
        log "note: networks made with the CNI backend are not seen by netavark: $(echo "$cni" | tr '\n' ' ')"
    local out
    if ! out=$(podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}} cgroup{{.Host.CgroupsVersion}}' 2>&1); then
        printf '%s\n' "$out" >&2
        die "'podman info' failed"
    fi
    log "podman ok: runtime/storage/cgroups = $out"
    check_podman_dns
}

# Names must resolve on a user network (a limited agent's proxy is found by name). Checked on a
# scratch network: its DNS must be on; when am's base image is there, a name is resolved too.
check_podman_dns() {
    local net="am-dnscheck-$$" backend dns out
    backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || true)
    [ "$backend" = netavark ] ||
        die "podman uses the '${backend:-?}' network backend, where names do not resolve on user networks: set network_backend = \"netavark\" under [network] in $CONF (with netavark and aardvark-dns installed)"
    podman network rm -f "$net" >/dev/null 2>&1 || true
    podman network create "$net" >/dev/null || die "'podman network create' failed"
    dns=$(podman network inspect --format '{{.DNSEnabled}}' "$net" 2>/dev/null || true)
    if [ "$dns" = true ] && podman image exists am-base:bookworm 2>/dev/null; then
        podman run -d --rm --name "$net-a" --network "$net" --network-alias am-dnscheck \
            am-base:bookworm sleep 30 >/dev/null 2>&1 || true
        out=$(podman run --rm --network "$net" am-base:bookworm getent hosts am-dnscheck 2>&1) ||
            dns="no: ${out:-the name did not resolve}"
        podman rm -f "$net-a" >/dev/null 2>&1 || true
    fi
    podman network rm -f "$net" >/dev/null 2>&1 || true
    [ "$dns" = true ] ||
        die "names do not resolve on podman networks (DNS: ${dns:-off}): install aardvark-dns and use the netavark backend"
    log "podman ok: names resolve on user networks (netavark + aardvark-dns)"
}

setup_docker() {
    command -v docker >/dev/null || die "docker CLI not installed (apt-get install docker.io)"
    if docker info >/dev/null 2>&1; then
        log "docker ok (dockerd already running)"
        return 0
    fi
    command -v dockerd >/dev/null || die "dockerd not installed (apt-get install docker.io)"
    if pgrep -x dockerd >/dev/null 2>&1; then
        log "dockerd is running but not answering yet; waiting"
    else
        # A stale pid file from a killed dockerd makes the new one refuse to start.
        if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
            rm -f /var/run/docker.pid
        fi
        log "starting dockerd ${AM_DOCKERD_FLAGS:-} (log: $DOCKERD_LOG)"
        mkdir -p "$(dirname "$DOCKERD_LOG")"
        # setsid + nohup: dockerd outlives this script and its session.
        # shellcheck disable=SC2086
        setsid nohup dockerd ${AM_DOCKERD_FLAGS:-} >>"$DOCKERD_LOG" 2>&1 </dev/null &
        echo $! >"$STARTED_PID"
    fi
    local i=0
    until docker info >/dev/null 2>&1; do
        i=$((i + 1))
        if [ "$i" -gt "$WAIT" ]; then
            tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
            die "dockerd did not answer 'docker info' within ${WAIT}s (see $DOCKERD_LOG)"
        fi
        sleep 1
    done
    log "docker ok after ${i}s: $(docker info --format 'storage={{.Driver}} cgroup={{.CgroupDriver}}/v{{.CgroupVersion}}' 2>/dev/null)"
}

# Adds am's gVisor runtimes (am/isolation.py: one per network policy, runsc with its flags) to
# dockerd's configuration; prints "changed" when it wrote the file. Other keys are kept as they
# are; am's own entries (am-runsc-*) are set to what am needs.
register_runsc() {
    python3 - "$DAEMON_JSON" "$1" "$AM_SRC" <<'PY'
import json, os, sys
path, runsc, repo = sys.argv[1:4]
sys.path.insert(0, repo)
from am.isolation import docker_runtimes
try:
    with open(path) as f:
        conf = json.load(f)
except FileNotFoundError:
    conf = {}
if not isinstance(conf, dict) or not isinstance(conf.get("runtimes", {}), dict):
    sys.exit(f"{path} does not hold a JSON object with a 'runtimes' object")
runtimes = conf.setdefault("runtimes", {})
want = docker_runtimes(runsc)
if all(runtimes.get(k) == v for k, v in want.items()):
    sys.exit(0)
runtimes.update(want)
os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
tmp = path + ".am-tmp"
with open(tmp, "w") as f:
    json.dump(conf, f, indent=2)
    f.write("\n")
os.replace(tmp, path)
print("changed")
PY
}

# Whether dockerd offers am's gVisor runtimes as daemon.json has them now.
docker_has_runsc() {
    local have
    have=$(docker info --format '{{json .Runtimes}}' 2>/dev/null) || return 1
    python3 - "$DAEMON_JSON" "$have" <<'PY'
import json, sys
want = {k: v for k, v in json.load(open(sys.argv[1])).get("runtimes", {}).items()
        if k.startswith("am-runsc-")}
have = json.loads(sys.argv[2])
sys.exit(0 if want and all(have.get(k, {}).get("runtimeArgs", []) == v.get("runtimeArgs", [])
                           for k, v in want.items()) else 1)
PY
}

# Writes runsc into dockerd's configuration before dockerd starts, so a fresh one has it.
register_docker_runsc() {
    local runsc out
    if ! runsc=$(command -v runsc); then
        log "note: runsc (gVisor) not installed: --isolation gvisor is unavailable (apt-get install runsc)"
        return 0
    fi
    out=$(register_runsc "$runsc") || { log "ERROR: cannot register runsc in $DAEMON_JSON"; return 1; }
    [ "$out" != changed ] || log "registered runsc ($runsc) in $DAEMON_JSON as am-runsc-none, -limited, -full and -proxy"
}

# Makes a running dockerd offer runsc: SIGHUP first, a restart only of our own dockerd.
load_docker_runsc() {
    local pid i
    command -v runsc >/dev/null || return 0
    docker_has_runsc && { log "docker ok: gVisor runtimes am-runsc-* available"; return 0; }
    pid=$(cat /var/run/docker.pid 2>/dev/null || pgrep -xo dockerd || true)
    [ -n "$pid" ] || { log "ERROR: dockerd's pid not found: restart dockerd to load $DAEMON_JSON"; return 1; }
    # dockerd reloads its runtimes on SIGHUP: running containers are not touched.
    log "reloading dockerd ($pid) for the runsc runtime (SIGHUP)"
    kill -HUP "$pid"
    for i in $(seq 1 20); do
        docker_has_runsc && { log "docker ok: gVisor runtimes am-runsc-* available"; return 0; }
        sleep 0.5
    done
    if [ "$(cat "$STARTED_PID" 2>/dev/null)" = "$pid" ]; then
        log "dockerd did not load runsc on SIGHUP; restarting the dockerd this script started"
        kill "$pid"
        for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        setup_docker
        docker_has_runsc && { log "docker ok: gVisor runtimes am-runsc-* available"; return 0; }
    fi
    log "ERROR: dockerd does not offer the runsc runtime: restart dockerd to load $DAEMON_JSON (see $DOCKERD_LOG)"
    return 1
}

rc=0
if want docker; then
    register_docker_runsc || rc=1
    setup_docker && load_docker_runsc || rc=1
fi
if want podman; then setup_podman || rc=1; fi
exit "$rc"

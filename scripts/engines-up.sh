#!/usr/bin/env bash
# engines-up.sh - make the docker and podman engines usable on this machine.
#
# Run as root (CI does). Idempotent: safe to run again and again.
# Works on a fresh Debian 12 after
#     apt-get install docker.io podman runc mmdebstrap uidmap netavark aardvark-dns catatonit
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
#   4. checks that `podman info` works; moves networks a CNI-backed podman made to netavark
#      (unused cni-podman* bridges removed, each network made again with its subnets, labels
#      and internal flag; a bridge still in use stops the script); and checks that a name
#      resolves on a scratch network, with two containers whose root file system is the
#      host's own getent and sleep (no image needed). Each failure names its cause and fix.
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
    local out
    if ! out=$(podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}} cgroup{{.Host.CgroupsVersion}}' 2>&1); then
        printf '%s\n' "$out" >&2
        die "'podman info' failed"
    fi
    log "podman ok: runtime/storage/cgroups = $out"
    migrate_cni_networks
    check_podman_dns
}

# A machine where podman ran with the CNI backend has networks netavark does not see (in
# /etc/cni/net.d: the user's own, am's outside networks) and may still have CNI's bridges up,
# holding the same subnets netavark hands out (cni-podman0 is 10.88.0.0/16, as is netavark's
# default podman0): traffic would go to the wrong bridge. Unused CNI bridges are removed; each
# CNI network is made again under netavark with its name, subnets, labels and internal flag,
# so containers and scripts that name it keep working. Bridges still in use stop the script.
migrate_cni_networks() {
    local dev name rest args out
    command -v ip >/dev/null || return 0
    for dev in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
                 grep '^cni-podman' || true); do
        if [ -n "$(ip -o link show master "$dev" 2>/dev/null)" ]; then
            die "the CNI bridge $dev still has containers attached, started before podman used netavark: stop them ('podman ps', 'podman stop ...'), then run this again"
        fi
        ip link delete "$dev"
        log "removed the unused CNI bridge $dev (netavark makes its own)"
    done
    [ -d /etc/cni/net.d ] || return 0
    while IFS=$'\t' read -r name rest; do
        [ -n "$name" ] || continue
        if podman network exists "$name" 2>/dev/null; then
            continue
        fi
        read -r -a args <<<"$rest"
        if out=$(podman network create "${args[@]}" "$name" 2>&1); then
            log "made the CNI network $name again under netavark (${rest:-default subnet})"
        else
            log "warning: could not make the CNI network $name under netavark: $out"
        fi
    done < <(cni_networks /etc/cni/net.d)
}

# One line per CNI network (not podman's default): its name, a tab, and the options of
# 'podman network create' that keep its subnets, gateways, labels and internal flag.
cni_networks() {
    python3 - "$1" <<'PY'
import json, pathlib, shlex, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.conflist")):
    try:
        conf = json.loads(f.read_text())
    except (OSError, ValueError):
        continue
    name = conf.get("name")
    if not isinstance(name, str) or name == "podman" or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        continue
    opts, podmans = [], False
    for plugin in conf.get("plugins", []):
        # only what podman made: other CNI users (Kubernetes, ...) keep their own files
        if plugin.get("type") != "bridge" or not str(plugin.get("bridge", "")).startswith("cni-podman"):
            continue
        podmans = True
        for ranges in plugin.get("ipam", {}).get("ranges", []):
            for r in ranges:
                if r.get("subnet"):
                    opts += ["--subnet", r["subnet"]]
                    if r.get("gateway"):
                        opts += ["--gateway", r["gateway"]]
        if not plugin.get("isGateway", True):
            opts.append("--internal")
    for k, v in (conf.get("args", {}).get("podman_labels") or {}).items():
        opts += ["--label", f"{k}={v}"]
    if podmans and all(" " not in o and "\t" not in o for o in opts):
        print(name + "\t" + " ".join(opts))
PY
}

# Names must resolve on a user network (a limited agent's proxy is found by name). Checked on a
# scratch network with two containers that need no image: a root file system of the host's own
# getent and sleep (with their libraries), one container named by an alias, the other
# resolving that alias.
check_podman_dns() {
    local net="am-dnscheck-$$" backend out rootfs rc=0
    backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || true)
    [ "$backend" = netavark ] ||
        die "podman uses the '${backend:-?}' network backend, where names do not resolve on user networks: set network_backend = \"netavark\" under [network] in $CONF (with netavark and aardvark-dns installed)"
    rootfs=$(mktemp -d)
    mini_rootfs "$rootfs" || { rm -rf "$rootfs"; die "cannot make a root file system of getent and sleep for the name check"; }
    podman network rm -f "$net" >/dev/null 2>&1 || true
    if ! out=$(podman network create "$net" 2>&1); then
        rm -rf "$rootfs"
        die "'podman network create' failed: $out"
    fi
    if ! out=$(podman run -d --rm --name "$net-a" --network "$net" --network-alias am-dnscheck \
                   --rootfs "$rootfs" /usr/bin/sleep 60 2>&1); then
        rc=1
    elif ! out=$(podman run --rm --network "$net" --rootfs "$rootfs" /usr/bin/getent hosts am-dnscheck 2>&1); then
        rc=1
        out="the name did not resolve${out:+: $out}"
    fi
    podman rm -f --time 0 "$net-a" >/dev/null 2>&1 || true
    podman network rm -f "$net" >/dev/null 2>&1 || true
    rm -rf "$rootfs"
    [ "$rc" -eq 0 ] ||
        die "names do not resolve on podman networks ($out): install netavark and aardvark-dns, and use the netavark backend"
    log "podman ok: names resolve on user networks (netavark + aardvark-dns)"
}

# DIR: just enough of the host to run getent (glibc resolves DNS itself) and sleep.
mini_rootfs() {
    local dir=$1 bin f
    for bin in /usr/bin/getent /usr/bin/sleep; do
        for f in "$bin" $(ldd "$bin" | grep -o '/[^ ]*'); do
            mkdir -p "$dir$(dirname "$f")"
            cp -L "$f" "$dir$f" || return 1
        done
    done
    mkdir -p "$dir/etc"
    echo 'hosts: files dns' >"$dir/etc/nsswitch.conf"
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

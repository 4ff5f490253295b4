#!/usr/bin/env bash
# build-proxy-image.sh - build the egress proxy image am-proxy:2, offline.
#
# Usage: scripts/build-proxy-image.sh [--runtime docker|podman|both] [--tag T] [--force]
#
# The proxy of a `--network limited` agent (see docs/network.md) is Debian's
# squid, served on a unix socket by am's own tiny relay (lib/proxy-relay.c),
# which can reach nothing but squid's loopback port (and the agent's sockets
# for --publish). The image holds those two programs, the libraries they load
# and squid's error pages: no shell, no package manager, no other tool. No registry is reachable, so, like
# scripts/build-base-image.sh, mmdebstrap builds a Debian bookworm root with
# squid and a compiler on the host (which reaches Debian's mirror); the relay
# is compiled there and the few files are copied into a fresh root, cached as
# $AM_BUILD_DIR/proxy-squid-bookworm.tar (not the name of the tinyproxy root
# an older am cached) and imported into the engine(s). The image is labelled
# am.squid=<Debian version> (am doctor shows it and the image's age); --force
# builds anew from the mirror, picking up security updates.
# Nothing in the image is specific to an agent: each proxy gets its
# configuration mounted read-only by am.
#
# Environment: AM_BUILD_DIR, AM_DEBIAN_MIRROR, AM_DEBIAN_SECURITY (as for the
# base image). Progress goes to stderr.
set -euo pipefail

NAME=build-proxy-image
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/debian-image.sh
. "$REPO/scripts/lib/debian-image.sh"

TAG=am-proxy:2
HELP_LINES=2,22p
parse_args "$@"
TARBALL="$BUILD_DIR/proxy-squid-bookworm.tar"
VERSION_FILE="$BUILD_DIR/proxy-squid-bookworm.version"

VARIANT=essential
INCLUDE=squid,gcc,libc6-dev
EXTRA_OPTS=(--aptopt='APT::Install-Recommends "false"')
HOOK=true
SOURCES=("deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main"
         "deb $SECURITY bookworm-security main")
CHANGES=('LABEL am.image=proxy' 'USER 65534:65534'
         'ENTRYPOINT ["/usr/local/bin/am-proxy-relay"]')
RELAY=/usr/local/bin/am-proxy-relay
# What squid reads besides its configuration: its error page templates.
DATA=(usr/share/squid/errors/templates)
# am's own refusals (am/backends/network.py names them in squid's configuration and its log).
declare -A REFUSALS=(
    [ERR_AM_DOMAIN]="this host is not on the agent's network allowlist. The user can allow it when spawning an agent: am spawn ... --network limited --allow-domain HOST"
    [ERR_AM_PRIVATE]="this host resolves to a private, loopback, link-local or host address, which the agent's network policy refuses unless the user allows the host by name: --allow-private-domain HOST"
    [ERR_AM_PORT]="this port is not allowed for this host: http goes to port 80 and https to 443, other ports only when the user allows them: --allow-domain HOST:PORT"
)

# The files BINARY loads, as paths relative to the root FULL: each library's real file and
# the name it is loaded by (a symbolic link beside it), with the directory links resolved.
libraries() {
    local full=$1 binary=$2 lib dir real
    while read -r lib; do
        dir=$(chroot "$full" readlink -f "$(dirname "$lib")")
        real=$(chroot "$full" readlink -f "$lib")
        echo "${dir#/}/$(basename "$lib")"
        echo "${real#/}"
    done < <(chroot "$full" ldd "$binary" | grep -o '/[^ ]*')
}

build_tarball() {
    build_checks
    local work t0=$SECONDS l
    work=$(mktemp -d "$BUILD_DIR/.proxy-build.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    log "downloading Debian bookworm packages from $MIRROR with mmdebstrap ($INCLUDE), then" \
        "squid and the relay alone -> $TARBALL"
    run_mmdebstrap directory "$work/full"
    cp "$REPO/scripts/lib/proxy-relay.c" "$work/full/tmp/relay.c"
    chroot "$work/full" gcc -O2 -Wall -Wextra -Werror -o "$RELAY" /tmp/relay.c
    local files=(usr/sbin/squid "${RELAY#/}" "${DATA[@]}")
    for l in bin sbin lib lib64; do [ -L "$work/full/$l" ] && files+=("$l"); done
    mapfile -t -O "${#files[@]}" files < <(libraries "$work/full" /usr/sbin/squid
                                            libraries "$work/full" "$RELAY")
    mkdir -p "$work/root"
    printf '%s\n' "${files[@]}" | sort -u \
        | tar -C "$work/full" --no-recursion --files-from=- -cf - \
        | tar -C "$work/root" -xf -
    # The templates folder itself came without its content (--no-recursion above).
    tar -C "$work/full" -cf - usr/share/squid/errors/templates | tar -C "$work/root" -xf -
    for l in "${!REFUSALS[@]}"; do
        printf '<p>am: %s</p>\n' "${REFUSALS[$l]}" > "$work/root/usr/share/squid/errors/templates/$l"
    done
    # Mount points and the folders the engines fill (squid wants an icon folder, even empty);
    # a user list for tools that look.
    mkdir -p "$work/root"/{etc/am-proxy,run/am-proxy,var/log/am-proxy,proc,dev,sys,tmp} \
        "$work/root/usr/share/squid/icons"
    chmod 1777 "$work/root/tmp"
    printf 'root:x:0:0:root:/:/nonexistent\nnobody:x:65534:65534:nobody:/:/nonexistent\n' \
        > "$work/root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$work/root/etc/group"
    chroot "$work/full" dpkg-query -W -f '${Version}' squid > "$work/version"
    tar -C "$work/root" --numeric-owner -cf "$work/root.tar" .
    mv -f "$work/root.tar" "$TARBALL"
    mv -f "$work/version" "$VERSION_FILE"
    log "built in $((SECONDS - t0))s: squid $(cat "$VERSION_FILE"), $(du -h "$TARBALL" | cut -f1)"
}

before_import() {
    [ -s "$VERSION_FILE" ] && CHANGES+=("LABEL am.squid=$(cat "$VERSION_FILE")")
    return 0
}

ensure_image

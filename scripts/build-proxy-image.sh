#!/usr/bin/env bash
# build-proxy-image.sh - build the egress proxy image am-proxy:latest, offline.
#
# Usage: scripts/build-proxy-image.sh [--runtime docker|podman|both] [--tag T] [--force]
#
# The proxy of a `--network limited` agent (see docs/network.md) is Debian's
# tinyproxy, with socat in front of it to serve it on a unix socket. No
# registry is reachable, so, like scripts/build-base-image.sh, we build a
# minimal Debian bookworm root (mmdebstrap --variant=essential: no apt, no
# shell tools beyond coreutils/dash) with just tinyproxy-bin and socat on the
# host, which reaches Debian's mirror, cache it as
# $AM_BUILD_DIR/proxy-bookworm.tar and import it into the engine(s).
# Nothing in the image is specific to an agent: each proxy gets its
# configuration mounted read-only by am.
#
# Environment: AM_BUILD_DIR, AM_DEBIAN_MIRROR, AM_DEBIAN_SECURITY (as for the
# base image). Progress goes to stderr.
set -euo pipefail

log() { printf 'build-proxy-image: %s\n' "$*" >&2; }
die() { printf 'build-proxy-image: ERROR: %s\n' "$*" >&2; exit 1; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR="${AM_BUILD_DIR:-$REPO/build}"
MIRROR="${AM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${AM_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
TARBALL="$BUILD_DIR/proxy-bookworm.tar"
TAG=am-proxy:latest
RUNTIME=docker
FORCE=0

while [ $# -gt 0 ]; do
    case "$1" in
        --runtime) RUNTIME="${2:?--runtime needs docker|podman|both}"; shift 2 ;;
        --runtime=*) RUNTIME="${1#*=}"; shift ;;
        --tag|-t) TAG="${2:?--tag needs a name}"; shift 2 ;;
        --tag=*) TAG="${1#*=}"; shift ;;
        --force) FORCE=1; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
case "$RUNTIME" in
    docker) ENGINES=docker ;;
    podman) ENGINES=podman ;;
    both) ENGINES="docker podman" ;;
    *) die "--runtime must be docker, podman or both (got '$RUNTIME')" ;;
esac

build_tarball() {
    command -v mmdebstrap >/dev/null || die "mmdebstrap not installed (apt-get install mmdebstrap)"
    [ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap root mode)"
    mkdir -p "$BUILD_DIR"
    local tmp="$BUILD_DIR/.proxy-bookworm.partial.tar"
    rm -f "$tmp"
    log "mmdebstrap bookworm (essential + tinyproxy-bin, socat) -> $TARBALL"
    local t0=$SECONDS
    # shellcheck disable=SC2016
    mmdebstrap \
        --variant=essential \
        --mode=root \
        --format=tar \
        --include=tinyproxy-bin,socat \
        --aptopt='Acquire::Retries "3"' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
        bookworm "$tmp" \
        "deb $MIRROR bookworm main" \
        "deb $SECURITY bookworm-security main" \
        </dev/null >&2
    mv -f "$tmp" "$TARBALL"
    log "mmdebstrap done in $((SECONDS - t0))s ($(du -h "$TARBALL" | cut -f1))"
}

image_exists() { "$1" image inspect "$TAG" >/dev/null 2>&1; }

need_tarball=$FORCE
for e in $ENGINES; do
    command -v "$e" >/dev/null || die "$e not installed"
    image_exists "$e" || need_tarball=1
done
if [ "$need_tarball" -eq 1 ] && { [ "$FORCE" -eq 1 ] || [ ! -s "$TARBALL" ]; }; then
    build_tarball
fi
for e in $ENGINES; do
    if [ "$FORCE" -eq 0 ] && image_exists "$e"; then
        log "$e already has $TAG"
        continue
    fi
    t0=$SECONDS
    "$e" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'LABEL am.image=proxy' \
        --change 'CMD ["tinyproxy", "-v"]' \
        "$TARBALL" "$TAG" >&2
    log "imported $TAG into $e in $((SECONDS - t0))s"
done

#!/usr/bin/env bash
# build-base-image.sh - build the offline base image am-base:bookworm.
#
# Usage: scripts/build-base-image.sh [--runtime docker|podman|both] [--force]
#
# No image registry is reachable from here, so instead of pulling
# debian:bookworm-slim we build a Debian bookworm root filesystem with
# mmdebstrap (on the host, which reaches Debian's mirror) into a tarball,
# cached as $AM_BUILD_DIR/base-bookworm.tar (reused when present), and
# import it into the engine(s) as am-base:bookworm (skipped when the engine
# already has that image). --force rebuilds the tarball and re-imports.
#
# Environment:
#   AM_BUILD_DIR        build dir (default: <repo>/build)
#   AM_BASE_IMAGE       image name (default: am-base:bookworm)
#   AM_DEBIAN_MIRROR    mirror (default: http://deb.debian.org/debian)
#   AM_DEBIAN_SECURITY  security mirror (default: http://deb.debian.org/debian-security)
#   AM_BASE_EXTRA_PKGS  extra packages to include (space separated)
# Progress goes to stderr.
set -euo pipefail

log() { printf 'build-base-image: %s\n' "$*" >&2; }
die() { printf 'build-base-image: ERROR: %s\n' "$*" >&2; exit 1; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR="${AM_BUILD_DIR:-$REPO/build}"
IMAGE="${AM_BASE_IMAGE:-am-base:bookworm}"
MIRROR="${AM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${AM_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
TARBALL="$BUILD_DIR/base-bookworm.tar"
RUNTIME=docker
FORCE=0

while [ $# -gt 0 ]; do
    case "$1" in
        --runtime) RUNTIME="${2:?--runtime needs docker|podman|both}"; shift 2 ;;
        --runtime=*) RUNTIME="${1#*=}"; shift ;;
        --force) FORCE=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
case "$RUNTIME" in
    docker) ENGINES=docker ;;
    podman) ENGINES=podman ;;
    both) ENGINES="docker podman" ;;
    *) die "--runtime must be docker, podman or both (got '$RUNTIME')" ;;
esac

# What a coding agent needs, and little more. --no-install-recommends is
# mmdebstrap's default for the apt variant; man pages, docs and locales are
# left out through dpkg path filters below.
PACKAGES=(
    ca-certificates git curl python3 nodejs npm tmux procps iproute2 less
    openssh-client ripgrep jq patch unzip xz-utils file make
)
# shellcheck disable=SC2206
PACKAGES+=(${AM_BASE_EXTRA_PKGS:-})

build_tarball() {
    command -v mmdebstrap >/dev/null || die "mmdebstrap not installed (apt-get install mmdebstrap)"
    [ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap root mode)"
    mkdir -p "$BUILD_DIR"
    local tmp="$BUILD_DIR/.base-bookworm.partial.tar" include
    include=$(IFS=,; echo "${PACKAGES[*]}")
    rm -f "$tmp"
    log "mmdebstrap bookworm -> $TARBALL (packages: $include)"
    local t0=$SECONDS
    # $1 in the customize hook is the new root, expanded by mmdebstrap's sh.
    # The mirrors are given as sources.list lines: with no mirror argument
    # mmdebstrap reads sources from stdin when stdin is not a terminal (CI).
    # shellcheck disable=SC2016
    mmdebstrap \
        --variant=apt \
        --mode=root \
        --format=tar \
        --include="$include" \
        --aptopt='APT::Install-Recommends "false"' \
        --aptopt='Acquire::Retries "3"' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --customize-hook='rm -rf "$1"/var/cache/apt/*.bin "$1"/var/log/apt/* "$1"/var/log/dpkg.log' \
        bookworm "$tmp" \
        "deb $MIRROR bookworm main" \
        "deb $MIRROR bookworm-updates main" \
        "deb $SECURITY bookworm-security main" \
        </dev/null >&2
    mv -f "$tmp" "$TARBALL"
    log "mmdebstrap done in $((SECONDS - t0))s ($(du -h "$TARBALL" | cut -f1))"
}

image_exists() { "$1" image inspect "$IMAGE" >/dev/null 2>&1; }

import_into() {
    local engine=$1
    command -v "$engine" >/dev/null || die "$engine not installed"
    if [ "$FORCE" -eq 0 ] && image_exists "$engine"; then
        log "$engine already has $IMAGE: skipping import"
        return 0
    fi
    log "importing $TARBALL into $engine as $IMAGE"
    local t0=$SECONDS
    "$engine" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["bash"]' \
        "$TARBALL" "$IMAGE" >&2
    log "$engine import done in $((SECONDS - t0))s"
}

need_tarball=0
if [ "$FORCE" -eq 1 ]; then
    need_tarball=1
else
    for e in $ENGINES; do image_exists "$e" || need_tarball=1; done
fi
if [ "$need_tarball" -eq 1 ]; then
    if [ "$FORCE" -eq 1 ] || [ ! -s "$TARBALL" ]; then
        build_tarball
    else
        log "reusing cached $TARBALL"
    fi
fi
for e in $ENGINES; do import_into "$e"; done
log "done: $IMAGE in $ENGINES"

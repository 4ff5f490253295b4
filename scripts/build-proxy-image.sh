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

NAME=build-proxy-image
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/debian-image.sh
. "$REPO/scripts/lib/debian-image.sh"

TAG=am-proxy:latest
HELP_LINES=2,18p
parse_args "$@"
TARBALL="$BUILD_DIR/proxy-bookworm.tar"

VARIANT=essential
INCLUDE=tinyproxy-bin,socat
EXTRA_OPTS=()
# shellcheck disable=SC2016
HOOK='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*'
SOURCES=("deb $MIRROR bookworm main" "deb $SECURITY bookworm-security main")
CHANGES=('ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
         'LABEL am.image=proxy' 'CMD ["tinyproxy", "-v"]')

ensure_image

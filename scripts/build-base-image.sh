#!/usr/bin/env bash
# build-base-image.sh - build the offline base image am-base:bookworm.
#
# Usage: scripts/build-base-image.sh [--runtime docker|podman|both] [--tag T] [--force]
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

NAME=build-base-image
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/debian-image.sh
. "$REPO/scripts/lib/debian-image.sh"

TAG="${AM_BASE_IMAGE:-am-base:bookworm}"
HELP_LINES=2,20p
parse_args "$@"
TARBALL="$BUILD_DIR/base-bookworm.tar"

# What a coding agent needs, and little more (the apt variant installs no recommends).
PACKAGES=(
    ca-certificates git curl python3 nodejs npm tmux procps iproute2 less
    openssh-client ripgrep jq patch unzip xz-utils file make
)
# shellcheck disable=SC2206
PACKAGES+=(${AM_BASE_EXTRA_PKGS:-})
VARIANT=apt
INCLUDE=$(IFS=,; echo "${PACKAGES[*]}")
EXTRA_OPTS=(--aptopt='APT::Install-Recommends "false"'
            --dpkgopt='path-include=/usr/share/locale/locale.alias')
# shellcheck disable=SC2016
HOOK='rm -rf "$1"/var/cache/apt/*.bin "$1"/var/log/apt/* "$1"/var/log/dpkg.log'
SOURCES=("deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main"
         "deb $SECURITY bookworm-security main")
CHANGES=('ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
         'ENV LANG=C.UTF-8' 'CMD ["bash"]')

ensure_image
log "done: $TAG in $ENGINES"

# shellcheck shell=bash
# debian-image.sh - shared by build-base-image.sh and build-proxy-image.sh (sourced, not run).
#
# No image registry is reachable here, so am's images start from a Debian bookworm root file
# system that mmdebstrap builds on the host (which reaches Debian's mirror), cached as a
# tarball and imported into each engine. The caller sets REPO and NAME (prefix of log lines)
# before sourcing, then TAG (default image name) and HELP_LINES (the sed range of its usage
# comment), calls parse_args "$@" (--runtime, --tag, --force, --help: sets ENGINES, TAG, FORCE),
# sets
#   TARBALL   cached root file system      VARIANT   mmdebstrap variant (apt, essential, ...)
#   INCLUDE   comma-separated packages     HOOK      mmdebstrap --customize-hook ($1 = root)
#   SOURCES   array of sources.list lines  CHANGES   array of `import --change` values
#   EXTRA_OPTS array of further mmdebstrap options (may be empty)
# and calls ensure_image. A script may replace build_tarball (run_mmdebstrap and build_checks
# help), and define before_import to add CHANGES once the tarball exists. Progress: stderr.

# An image's files are for whoever its containers run as, whatever umask the caller has.
umask 022
BUILD_DIR="${AM_BUILD_DIR:-$REPO/build}"
MIRROR="${AM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${AM_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
RUNTIME=docker
FORCE=0

log() { printf '%s: %s\n' "$NAME" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$NAME" "$*" >&2; exit 1; }

# mmdebstrap bookworm in FORMAT (tar, directory) into OUT, with the caller's settings, in the
# MODE build_checks chose.
run_mmdebstrap() {
    # Man pages, docs and locales are left out through dpkg path filters. The mirrors are given
    # as sources.list lines: with no mirror argument mmdebstrap reads sources from stdin when
    # stdin is not a terminal (CI).
    mmdebstrap \
        --variant="$VARIANT" \
        --mode="${MODE:-root}" \
        --format="$1" \
        --include="$INCLUDE" \
        --aptopt='Acquire::Retries "3"' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        "${EXTRA_OPTS[@]}" \
        --customize-hook="$HOOK" \
        bookworm "$2" "${SOURCES[@]}" \
        </dev/null >&2
}

# Checks before a build; sets MODE. As root: mmdebstrap's root mode. An ordinary user builds in
# a user namespace of their subordinate ids (uidmap) when the caller allows it ($1 = unshare), so
# that their first container spawn can build the agent image without root.
build_checks() {
    command -v mmdebstrap >/dev/null || die "mmdebstrap not installed (apt-get install mmdebstrap)"
    MODE=root
    if [ "$(id -u)" -ne 0 ]; then
        [ "${1:-}" = unshare ] || die "run as root (mmdebstrap root mode), e.g. 'sudo make setup'"
        MODE=unshare
        grep -qE "^($(id -un)|$(id -u)):" /etc/subuid 2>/dev/null ||
            die "$(id -un) has no subordinate ids in /etc/subuid, which mmdebstrap needs to build as an ordinary user: 'sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $(id -un)', or build the image as root ('sudo make image')"
    fi
    mkdir -p "$(dirname "$TARBALL")"
    [ "${AM_OFFLINE:-}" != 1 ] || die "AM_OFFLINE=1 and $TARBALL is missing: build it on a" \
        "machine that reaches Debian's mirror and copy it here"
}

build_tarball() {
    build_checks unshare
    local tmp
    tmp="$(dirname "$TARBALL")/.$(basename "$TARBALL" .tar).partial.tar"
    rm -f "$tmp"
    log "downloading Debian bookworm packages from $MIRROR with mmdebstrap ($VARIANT: $INCLUDE) -> $TARBALL"
    local t0=$SECONDS
    run_mmdebstrap tar "$tmp"
    mv -f "$tmp" "$TARBALL"
    log "mmdebstrap done in $((SECONDS - t0))s ($(du -h "$TARBALL" | cut -f1))"
}

image_exists() { "$1" image inspect "$TAG" >/dev/null 2>&1; }

# Build the tarball if an engine lacks TAG (reusing a cached one), then import into each.
ensure_image() {
    local c e need=$FORCE import_args=()
    for e in $ENGINES; do
        command -v "$e" >/dev/null || die "$e not installed"
        image_exists "$e" || need=1
    done
    if [ "$need" -eq 1 ]; then
        if [ "$FORCE" -eq 1 ] || [ ! -s "$TARBALL" ]; then
            build_tarball
        else
            log "reusing cached $TARBALL"
        fi
    fi
    if declare -F before_import >/dev/null; then before_import; fi
    for c in "${CHANGES[@]}"; do import_args+=(--change "$c"); done
    for e in $ENGINES; do
        if [ "$FORCE" -eq 0 ] && image_exists "$e"; then
            log "$e already has $TAG: skipping import"
            continue
        fi
        local t0=$SECONDS
        "$e" import "${import_args[@]}" "$TARBALL" "$TAG" >&2
        log "imported $TAG into $e in $((SECONDS - t0))s"
    done
}

# The options both image scripts take.
parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --runtime) RUNTIME="${2:?--runtime needs docker|podman|both}"; shift 2 ;;
            --runtime=*) RUNTIME="${1#*=}"; shift ;;
            --tag|-t) TAG="${2:?--tag needs a name}"; shift 2 ;;
            --tag=*) TAG="${1#*=}"; shift ;;
            --force) FORCE=1; shift ;;
            -h|--help) sed -n "$HELP_LINES" "$0"; exit 0 ;;
            *) die "unknown argument: $1" ;;
        esac
    done
    ENGINES=$(engines_for "$RUNTIME") || exit 1
}

# --runtime docker|podman|both -> ENGINES
engines_for() {
    case "$1" in
        docker) echo docker ;;
        podman) echo podman ;;
        both) echo "docker podman" ;;
        *) die "--runtime must be docker, podman or both (got '$1')" ;;
    esac
}

#!/usr/bin/env bash
# build-image.sh - the whole offline build of the agent image (`make image`).
#
# Usage: scripts/build-image.sh [--runtime docker|podman] [--tag am-agent:latest]
#                               [--no-clis]
#
# Steps:
#   1. base image: if $BASE_IMAGE (default am-base:bookworm) is not in the
#      engine, scripts/build-base-image.sh builds/imports it (mmdebstrap).
#   2. agent CLIs: scripts/fetch-agent-clis.sh fills build/context/npm-global
#      (cached). --no-clis skips it and builds with AGENT_CLIS= (no CLI).
#   3. the engine build, output streamed:
#
# The engine build command (what `am image build` composes too):
#     <engine> build -f <repo>/Containerfile \
#         --build-arg BASE_IMAGE=am-base:bookworm \
#         --build-arg AGENT_CLIS=claude \
#         -t am-agent:latest \
#         <repo>/build/context
#   - context dir: <repo>/build/context ($AM_BUILD_DIR/context). It must
#     exist and contain npm-global/ (empty is fine with AGENT_CLIS=); the
#     repo top is NOT the context (it holds build/base-bookworm.tar, .git...).
#   - build args: BASE_IMAGE (default in the Containerfile:
#     debian:bookworm-slim, which needs a registry), AGENT_CLIS (default
#     "claude"; empty = no agent CLI, for light test images).
#   - the same command for docker and podman; nothing in the build reaches
#     the network when BASE_IMAGE is am-base:bookworm (its apt step is a no-op).
#
# Environment: AM_BUILD_DIR, BASE_IMAGE, AGENT_CLIS, plus what the two
# helper scripts read (AM_CLAUDE_CODE_VERSION, AM_EXTRA_NPM_CLIS, ...).
set -euo pipefail

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: ERROR: %s\n' "$*" >&2; exit 1; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR="${AM_BUILD_DIR:-$REPO/build}"
CONTEXT="$BUILD_DIR/context"
BASE_IMAGE="${BASE_IMAGE:-am-base:bookworm}"
AGENT_CLIS="${AGENT_CLIS-claude}"
RUNTIME=docker
TAG=am-agent:latest

while [ $# -gt 0 ]; do
    case "$1" in
        --runtime) RUNTIME="${2:?--runtime needs docker|podman}"; shift 2 ;;
        --runtime=*) RUNTIME="${1#*=}"; shift ;;
        --tag|-t) TAG="${2:?--tag needs a name}"; shift 2 ;;
        --tag=*) TAG="${1#*=}"; shift ;;
        --no-clis) AGENT_CLIS=""; shift ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
case "$RUNTIME" in
    docker|podman) ;;
    *) die "--runtime must be docker or podman (got '$RUNTIME')" ;;
esac
command -v "$RUNTIME" >/dev/null || die "$RUNTIME not installed"
"$RUNTIME" info >/dev/null 2>&1 || die "'$RUNTIME info' fails: run scripts/engines-up.sh first"

export AM_BUILD_DIR="$BUILD_DIR"
t_all=$SECONDS

if ! "$RUNTIME" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    if [ "$BASE_IMAGE" = am-base:bookworm ]; then
        log "base image $BASE_IMAGE missing in $RUNTIME: building it"
        "$REPO/scripts/build-base-image.sh" --runtime "$RUNTIME"
    else
        log "warning: $BASE_IMAGE not in $RUNTIME; the engine will try to pull it"
    fi
fi

mkdir -p "$CONTEXT/npm-global"
if [ -n "$AGENT_CLIS" ]; then
    "$REPO/scripts/fetch-agent-clis.sh"
fi

build=("$RUNTIME" build -f "$REPO/Containerfile"
       --build-arg "BASE_IMAGE=$BASE_IMAGE"
       --build-arg "AGENT_CLIS=$AGENT_CLIS"
       -t "$TAG")
build+=("$CONTEXT")
log "$(printf '%q ' "${build[@]}")"
t0=$SECONDS
"${build[@]}"
log "built $TAG with $RUNTIME in $((SECONDS - t0))s (total $((SECONDS - t_all))s)"

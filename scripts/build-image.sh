#!/usr/bin/env bash
# build-image.sh - the whole offline build of the agent image (`make image`, `am image build`).
#
# Usage: scripts/build-image.sh [--runtime docker|podman] [--tag am-agent:latest]
#                               [--agents claude,codex,gemini,aider | --no-clis]
#
# Steps:
#   1. base image: if $BASE_IMAGE (default am-base:bookworm) is not in the
#      engine, scripts/build-base-image.sh builds/imports it (mmdebstrap).
#   2. agent CLIs: scripts/fetch-agent-clis.sh fetches each CLI of --agents
#      (default: $AGENT_CLIS, else claude) exactly as locked in
#      scripts/agent-clis/, in a throwaway container (cached in build/fetch/),
#      and lays out build/context/clis/. --no-clis: an image without any.
#   3. the engine build, output streamed, with NO network:
#
#     <engine> build -f <repo>/Containerfile --network none \
#         --build-arg BASE_IMAGE=am-base:bookworm \
#         --build-arg AGENT_CLIS=claude,codex \
#         -t am-agent:latest <repo>/build/context
#   - context dir: $AM_BUILD_DIR/context (default <repo>/build/context): clis/
#     holds the fetched CLIs; the repo top is NOT the context.
#   - AGENT_CLIS: the CLIs to install (comma separated; empty: none). The
#     image carries them in its label am.agent-clis, and fails to build if
#     one does not answer --version.
#   - another BASE_IMAGE (e.g. debian:bookworm-slim, which needs a registry
#     and apt) builds with the engine's network.
#
# Environment: AM_BUILD_DIR, BASE_IMAGE, AGENT_CLIS, plus what the helper
# scripts read (AM_OFFLINE, AM_AGENT_CLI_DIRS, AM_DEBIAN_MIRROR, ...).
set -euo pipefail

NAME=build-image
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/agent-clis.sh
. "$REPO/scripts/lib/agent-clis.sh"
CONTEXT="$BUILD_DIR/context"
BASE_IMAGE="${BASE_IMAGE:-am-base:bookworm}"
AGENTS="${AGENT_CLIS-claude}"
RUNTIME=docker
TAG=am-agent:latest

while [ $# -gt 0 ]; do
    case "$1" in
        --runtime) RUNTIME="${2:?--runtime needs docker|podman}"; shift 2 ;;
        --runtime=*) RUNTIME="${1#*=}"; shift ;;
        --tag|-t) TAG="${2:?--tag needs a name}"; shift 2 ;;
        --tag=*) TAG="${1#*=}"; shift ;;
        --agents) AGENTS="${2?--agents needs a list such as claude,codex}"; shift 2 ;;
        --agents=*) AGENTS="${1#*=}"; shift ;;
        --no-clis) AGENTS=""; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
case "$RUNTIME" in
    docker|podman) ;;
    *) die "--runtime must be docker or podman (got '$RUNTIME')" ;;
esac
# The CLIs, checked, sorted and without repeats: the label lists them the same way each time.
CLIS=()
for cli in $(printf '%s' "$AGENTS" | tr ', ' '\n\n' | sort -u); do
    cli_dir "$cli" >/dev/null || die "unknown agent CLI '$cli' (known: $(known_clis))"
    CLIS+=("$cli")
done
AGENT_CLIS=$(IFS=,; echo "${CLIS[*]}")
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

"$REPO/scripts/fetch-agent-clis.sh" --runtime "$RUNTIME" "${CLIS[@]}"

build=("$RUNTIME" build -f "$REPO/Containerfile"
       --build-arg "BASE_IMAGE=$BASE_IMAGE"
       --build-arg "AGENT_CLIS=$AGENT_CLIS"
       -t "$TAG")
# am's own base has every package: the build needs no network, and gets none.
[ "$BASE_IMAGE" != am-base:bookworm ] || build+=(--network none)
build+=("$CONTEXT")
log "$(printf '%q ' "${build[@]}")"
t0=$SECONDS
"${build[@]}"
log "built $TAG (CLIs: ${AGENT_CLIS:-none}) with $RUNTIME in $((SECONDS - t0))s (total $((SECONDS - t_all))s)"

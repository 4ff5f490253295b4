#!/usr/bin/env bash
# fetch-agent-clis.sh - fetch the agent CLIs, exactly as locked, for an offline image build.
#
# Usage: scripts/fetch-agent-clis.sh [--runtime docker|podman] [--force] [CLI...]
#
# Each CLI (claude, codex, gemini, aider: the folders of scripts/agent-clis/, see
# scripts/lib/agent-clis.sh) is fetched into $AM_BUILD_DIR/fetch/CLI/CLI by a throwaway
# container of the base image (scripts/lib/throwaway.sh): the engine's network, no host folder
# but $AM_BUILD_DIR/fetch/CLI, no package's install scripts, and every file checked against the
# lockfile's hash (npm ci, pip --require-hashes). Nothing runs on the host but cp and the engine.
# A CLI whose lock files are unchanged since its last fetch is not fetched again: a filled
# $AM_BUILD_DIR/fetch (copied from a machine that has one) builds with no network at all.
# Then $AM_BUILD_DIR/context/clis/ is laid out with exactly the CLIs asked for (hard links),
# for `COPY clis/` in the Containerfile; the build installs them with no network.
#
# Environment:
#   AM_BUILD_DIR        build dir (default: <repo>/build)
#   AM_OFFLINE=1        never fetch: fail unless every CLI asked for is already fetched
#   AM_AGENT_CLI_DIRS   more folders of pinned CLIs (colon separated), searched first
# AM_EXTRA_NPM_CLIS (unpinned npm packages) is refused: pin a CLI in a folder instead.
set -euo pipefail
NAME=fetch-agent-clis
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/agent-clis.sh
. "$REPO/scripts/lib/agent-clis.sh"
FETCH="$BUILD_DIR/fetch"
CONTEXT="$BUILD_DIR/context"
RUNTIME=docker
FORCE=0
CLIS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runtime) RUNTIME="${2:?--runtime needs docker|podman}"; shift 2 ;;
        --runtime=*) RUNTIME="${1#*=}"; shift ;;
        --force) FORCE=1; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        -*) die "unknown option: $1" ;;
        *) CLIS+=("$1"); shift ;;
    esac
done
[ -z "${AM_EXTRA_NPM_CLIS:-}" ] || die "AM_EXTRA_NPM_CLIS is refused: its packages are not pinned." \
    "Pin a CLI in a folder (package.json with exact versions, then scripts/lock-agent-clis.sh" \
    "NAME for its package-lock.json), name its parent in AM_AGENT_CLI_DIRS and build with --agents NAME"

fetch_one() {
    local cli=$1 src kind key out
    src=$(cli_dir "$cli") || die "unknown agent CLI '$cli' (known: $(known_clis))"
    kind=$(cli_kind "$src")
    [ "$kind" = npm ] && [ ! -f "$src/package-lock.json" ] && die "$src has no package-lock.json: run scripts/lock-agent-clis.sh $cli"
    [ "$kind" = pip ] && [ ! -f "$src/requirements.txt" ] && die "$src has no requirements.txt: run scripts/lock-agent-clis.sh $cli"
    key=$(cli_key "$src")
    out="$FETCH/$cli"
    if [ "$FORCE" -eq 0 ] && [ "$(cat "$out/$cli/.am-key" 2>/dev/null)" = "$key" ]; then
        log "cached: $cli ($key)"
        return 0
    fi
    [ "${AM_OFFLINE:-}" != 1 ] || die "AM_OFFLINE=1 and $cli is not fetched yet ($out):" \
        "fetch it on a machine that reaches the registries and copy $FETCH/$cli here"
    rm -rf "$out/$cli" "$out/.step.sh"
    mkdir -p "$out/$cli"
    (cd "$src" && cli_lock_files "$src" | xargs cp -t "$out/$cli/")
    cp "$REPO/scripts/lib/in-container.sh" "$out/.step.sh"
    local what="the npm registry" t0=$SECONDS
    [ "$kind" = npm ] || what="PyPI"
    log "downloading $cli from $what, as locked in $src, in a throwaway $RUNTIME container"
    throwaway "$RUNTIME" "$out" sh /out/.step.sh "fetch-$kind" "$cli" \
        || die "fetching $cli failed (see above)"
    printf '%s' "$key" >"$out/$cli/.am-key"
    log "fetched $cli in $((SECONDS - t0))s: $(du -sh "$out/$cli" | cut -f1)"
}

for cli in "${CLIS[@]}"; do fetch_one "$cli"; done

# The build context: exactly the CLIs asked for, as hard links into the cache.
rm -rf "$CONTEXT/clis" "$CONTEXT/npm-global"
mkdir -p "$CONTEXT/clis"
for cli in "${CLIS[@]}"; do
    cp -al "$FETCH/$cli/$cli" "$CONTEXT/clis/$cli" 2>/dev/null \
        || cp -a "$FETCH/$cli/$cli" "$CONTEXT/clis/$cli"
done
printf '%s\n' "${CLIS[@]}" >"$CONTEXT/clis/.am-clis"

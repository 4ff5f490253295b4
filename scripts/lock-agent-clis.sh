#!/usr/bin/env bash
# lock-agent-clis.sh - re-resolve the agent CLIs' lockfiles (maintainers; needs the registries).
#
# Usage: scripts/lock-agent-clis.sh [--runtime docker|podman] [CLI...]   (default: every CLI)
#
# Each CLI is a folder of scripts/agent-clis/ (or of a folder in AM_AGENT_CLI_DIRS):
#   npm:  package.json (exact versions)       -> package-lock.json (every package, integrity)
#   pip:  requirements.in, pip.txt (pip wheel) -> requirements.txt (every wheel, sha256)
# The resolution runs in a throwaway container (scripts/lib/throwaway.sh), never on the host,
# with no install script of any package. Review the diff of the lockfiles, then commit them.
set -euo pipefail
NAME=lock-agent-clis
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/agent-clis.sh
. "$REPO/scripts/lib/agent-clis.sh"
RUNTIME=docker
CLIS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runtime) RUNTIME="${2:?--runtime needs docker|podman}"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        -*) die "unknown option: $1" ;;
        *) CLIS+=("$1"); shift ;;
    esac
done
[ ${#CLIS[@]} -gt 0 ] || read -ra CLIS <<<"$(known_clis)"
for cli in "${CLIS[@]}"; do
    src=$(cli_dir "$cli") || die "no lock folder for '$cli' (known: $(known_clis))"
    kind=$(cli_kind "$src")
    out="$BUILD_DIR/lock/$cli"
    rm -rf "$out"; mkdir -p "$out/$cli"
    cp "$REPO/scripts/lib/in-container.sh" "$out/.step.sh"
    if [ "$kind" = npm ]; then
        cp "$src/package.json" "$out/$cli/"
        find "$src" -maxdepth 1 -type f -name '*.tgz' -exec cp -t "$out/$cli/" {} +
        result=package-lock.json
    else
        cp "$src/requirements.in" "$src/pip.txt" "$out/$cli/"
        result=requirements.txt
    fi
    log "resolving $cli ($kind) in a throwaway $RUNTIME container"
    throwaway "$RUNTIME" "$out" sh /out/.step.sh "lock-$kind" "$cli"
    cp "$out/$cli/$result" "$src/$result"
    log "wrote $src/$result"
done

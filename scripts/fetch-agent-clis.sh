#!/usr/bin/env bash
# fetch-agent-clis.sh - fetch the agent CLIs on the host for an offline image build.
#
# Usage: scripts/fetch-agent-clis.sh [--force]
#
# The host reaches the npm registry, build containers do not. So we install
# the CLIs here with the host's npm into an npm "global prefix" laid out like
# /usr/local (bin/ + lib/node_modules/):
#     $AM_BUILD_DIR/context/npm-global
# and the Containerfile copies that folder over /usr/local in the image
# (`COPY npm-global/ /usr/local/`). Nothing is downloaded inside the build.
#
# Claude Code (@anthropic-ai/claude-code) 2.x is a native x86_64/arm64 glibc
# binary shipped in a per-platform optional dependency
# (@anthropic-ai/claude-code-linux-x64); the wrapper package's postinstall
# (node install.cjs) puts it at bin/claude.exe, which `claude` links to. So
# the image needs no node to run it, and the host's platform must be the
# image's (it is: same machine). We pin 2.1.197: it is the last release whose
# package.json says engines.node ">=18.0.0" (Debian 12's nodejs is 18.19);
# 2.1.198 and later say ">=22.0.0" (newer npm then silently resolves an
# unpinned install to 2.1.197 on node 20, older npm takes the latest anyway).
#
# Idempotent: a stamp file records what was installed; a second run with the
# same package list and a working `claude --version` does nothing.
#
# Environment:
#   AM_BUILD_DIR              build dir (default: <repo>/build)
#   AM_CLAUDE_CODE_VERSION    claude-code version (default: 2.1.197); "none" skips it
#   AM_EXTRA_NPM_CLIS         more npm package specs, space separated
#                             (e.g. "@openai/codex@0.46.0")
set -euo pipefail

log() { printf 'fetch-agent-clis: %s\n' "$*" >&2; }
die() { printf 'fetch-agent-clis: ERROR: %s\n' "$*" >&2; exit 1; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR="${AM_BUILD_DIR:-$REPO/build}"
CONTEXT="$BUILD_DIR/context"
DEST="$CONTEXT/npm-global"
STAGE="$BUILD_DIR/.npm-global.partial"
STAMP="$DEST/.am-fetched"
CLAUDE_VERSION="${AM_CLAUDE_CODE_VERSION:-2.1.197}"
FORCE=0
case "${1:-}" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    "") ;;
    *) die "unknown argument: $1" ;;
esac

SPECS=()
[ "$CLAUDE_VERSION" = none ] || SPECS+=("@anthropic-ai/claude-code@$CLAUDE_VERSION")
# shellcheck disable=SC2206
SPECS+=(${AM_EXTRA_NPM_CLIS:-})
WANT="${SPECS[*]:-}"

mkdir -p "$DEST"
claude_works() { [ "$CLAUDE_VERSION" = none ] || "$1/bin/claude" --version >/dev/null 2>&1; }

if [ "$FORCE" -eq 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && claude_works "$DEST"; then
    log "cached: $DEST has ${WANT:-nothing}"
    exit 0
fi
if [ -z "$WANT" ]; then
    log "no CLIs asked for: leaving $DEST empty"
    find "$DEST" -mindepth 1 -delete
    : >"$STAMP"
    exit 0
fi

command -v npm >/dev/null || die "npm not found on the host (apt-get install npm)"
rm -rf "$STAGE"
mkdir -p "$STAGE"
log "npm install -g --prefix $STAGE $WANT"
t0=$SECONDS
# --foreground-scripts: show the postinstall's output; allow-scripts: newer
# npm asks for an allow-list before it runs install scripts (claude-code's
# postinstall places the native binary). Older npm ignores unknown configs.
npm install --global --prefix "$STAGE" --no-audit --no-fund --omit=dev \
    --foreground-scripts --allow-scripts=@anthropic-ai/claude-code \
    "${SPECS[@]}" >&2
log "npm install done in $((SECONDS - t0))s"

if [ "$CLAUDE_VERSION" != none ]; then
    pkg="$STAGE/lib/node_modules/@anthropic-ai/claude-code"
    [ -d "$pkg" ] || die "claude-code not installed under $pkg"
    # If npm skipped the postinstall, bin/claude.exe is still the small stub.
    if [ "$(stat -c %s "$pkg/bin/claude.exe")" -lt 1000000 ]; then
        log "postinstall did not run: running node install.cjs"
        (cd "$pkg" && node install.cjs) >&2
    fi
    # The platform package holds a second copy (a hard link) of the ~240 MB
    # binary; COPY in an image build would store it twice. Make it a symlink
    # to bin/claude.exe so cli-wrapper.cjs still finds it.
    for plat in "$pkg"/node_modules/@anthropic-ai/claude-code-*/; do
        [ -f "$plat/claude" ] || continue
        rm -f "$plat/claude"
        ln -s ../../../bin/claude.exe "$plat/claude"
    done
    ver=$("$STAGE/bin/claude" --version 2>&1) || die "claude --version failed: $ver"
    log "claude --version: $ver"
fi

printf '%s' "$WANT" >"$STAGE/.am-fetched"
rm -rf "$DEST.old"
mv "$DEST" "$DEST.old"
mv "$STAGE" "$DEST"
rm -rf "$DEST.old"
log "done: $DEST ($(du -sh "$DEST" | cut -f1))"

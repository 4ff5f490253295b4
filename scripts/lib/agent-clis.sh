# shellcheck shell=bash
# agent-clis.sh - where the agent CLIs' lock folders are, and what the scripts that fetch,
# lock and build them share (sourced).
#
# A CLI is a folder named after its command: scripts/agent-clis/NAME/, or NAME/ in one of the
# colon-separated folders of AM_AGENT_CLI_DIRS (searched first: your own pinned CLIs). It holds
#   npm:  package.json + package-lock.json, or
#   pip:  requirements.txt (hashes) + pip.txt (the pip wheel that installs it, by sha256),
# and may hold install.sh, run inside the image build (no network) to put NAME on PATH, and
# package tarballs that package.json names as file: dependencies.

# The caller sets NAME (the prefix of its messages) and REPO before sourcing.
log() { printf '%s: %s\n' "$NAME" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$NAME" "$*" >&2; exit 1; }
BUILD_DIR="${AM_BUILD_DIR:-$REPO/build}"
# shellcheck source=throwaway.sh
. "$REPO/scripts/lib/throwaway.sh"

cli_search_path() {
    local d
    IFS=: read -ra d <<<"${AM_AGENT_CLI_DIRS:-}"
    printf '%s\n' "${d[@]}" "$REPO/scripts/agent-clis"
}

# The folder of CLI, or nothing (status 1).
cli_dir() {
    local top
    [[ "$1" =~ ^[a-z0-9][a-z0-9_.-]*$ ]] || return 1
    while IFS= read -r top; do
        [ -n "$top" ] && [ -d "$top/$1" ] && { echo "$top/$1"; return 0; }
    done < <(cli_search_path)
    return 1
}

cli_kind() {
    if [ -f "$1/package.json" ]; then echo npm; else echo pip; fi
}

# Every CLI name, sorted, space separated.
known_clis() {
    local top
    while IFS= read -r top; do
        [ -d "$top" ] && find "$top" -mindepth 1 -maxdepth 1 -type d -printf '%f\n'
    done < <(cli_search_path) | sort -u | tr '\n' ' ' | sed 's/ $//'
}

# The files that pin CLI (those the fetch and the build read), vendored package tarballs
# (file: dependencies, for an air-gapped CLI) included.
cli_lock_files() {
    local f
    for f in package.json package-lock.json requirements.txt pip.txt install.sh; do
        [ -f "$1/$f" ] && echo "$f"
    done
    (cd "$1" && find . -maxdepth 1 -type f -name '*.tgz' -printf '%f\n' | sort)
}

# A digest of what pins CLI: the fetched cache is reused while it is unchanged.
cli_key() {
    local dir=$1
    (cd "$dir" && cli_lock_files "$dir" | xargs sha256sum; sha256sum "$REPO/scripts/lib/in-container.sh" | cut -d' ' -f1) \
        | sha256sum | cut -c1-16
}

#!/usr/bin/env bash
# reclaim-checkout.sh - before 'make install': what another user (root, through 'sudo make ...')
# left in this checkout and you cannot write is moved aside, so that make can make your own.
# Root can write anything: nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -ne 0 ] || exit 0
for d in .venv am.egg-info build; do
    [ -e "$d" ] || continue
    # Symbolic links point elsewhere (the venv's python): only what lies here must be yours.
    [ -n "$(find "$d" ! -type l ! -writable -print -quit 2>/dev/null)" ] || continue
    owner=$(stat -c %U "$d")
    aside="$d.not-yours.$(date +%Y%m%d-%H%M%S)"
    if ! mv "$d" "$aside" 2>/dev/null; then
        echo "make: $d belongs to $owner and cannot be moved aside: 'sudo rm -rf $d'" >&2
        exit 1
    fi
    echo "make: moved $d (made by $owner) aside to $aside; remove it with 'sudo rm -rf $aside'" >&2
done

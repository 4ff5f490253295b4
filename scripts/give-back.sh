#!/usr/bin/env bash
# give-back.sh - after 'sudo make ...' in an ordinary user's checkout: what root made here (the
# venv, caches, the image build folder) goes back to the checkout's owner, so their own 'make'
# is not blocked by it. Only root-owned files change hands (--from), and symbolic links are
# changed themselves, never followed (-h).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || exit 0
owner=$(stat -c %u:%g .)
[ "${owner%%:*}" -ne 0 ] || exit 0
chown -R -h --from=0:0 "$owner" .

#!/usr/bin/env bash
# Installs what am and its tests need on Debian/Ubuntu and starts the container engines.
# Idempotent; run as root (CI runs it through `make setup`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
    echo "setup-host.sh: run as root (sudo make setup)" >&2
    exit 1
fi
pkgs=(git tmux python3 python3-venv make ca-certificates curl npm
      docker.io podman runc uidmap mmdebstrap iproute2 procps
      netavark aardvark-dns catatonit runsc e2fsprogs mount
      kubernetes-client docker-registry)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
    # A Node.js from elsewhere (e.g. NodeSource) brings its own npm and conflicts with Debian's.
    [ "$p" = npm ] && command -v npm >/dev/null && continue
    # Any kubectl will do (a cloud SDK's, or Kubernetes' own package): Debian's is the fallback.
    [ "$p" = kubernetes-client ] && command -v kubectl >/dev/null && continue
    missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "Installing: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
bash "$here/engines-up.sh"

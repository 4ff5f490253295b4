#!/usr/bin/env bash
# Installs what am and its tests need on Debian/Ubuntu and starts the container engines; run
# through sudo, it also puts the calling user in the docker group.
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

# The one root step of a normal user's path: whoever ran 'sudo make setup' may use docker from
# now on (membership of the docker group is as good as root on this machine: say so).
user="${SUDO_USER:-}"
if [ -n "$user" ] && [ "$user" != root ] && getent group docker >/dev/null &&
        ! id -nG "$user" | tr ' ' '\n' | grep -qx docker; then
    usermod --append --groups docker "$user"
    echo "setup-host.sh: added $user to the docker group (it gives root-equivalent control" \
         "of this machine through docker); it takes effect at their next login" >&2
fi

# A normal user's first '--network limited' spawn needs the proxy image, whose build needs root
# (it compiles the relay in a chroot): build it now for docker, the engine just given to them.
# What it caches in the checkout's build folder is handed back by make.
if [ -n "$user" ] && [ "$user" != root ] && command -v docker >/dev/null; then
    bash "$here/build-proxy-image.sh" --runtime docker
fi

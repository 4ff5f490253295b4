# shellcheck shell=bash
# throwaway.sh - run a step that needs the package registries inside a throwaway container
# (sourced by fetch-agent-clis.sh and lock-agent-clis.sh, not run).
#
# The container is the base image (am-base:bookworm: Debian's node, npm and python3), removed
# when the step ends. It has the engine's default network and nothing of the host but ONE
# folder, mounted at /out: its output. Whatever it needs as input (lockfiles, the host's CA
# bundle) the caller copies into that folder first. Its root file system is read-only, it has
# no capabilities, no-new-privileges and bounded memory/pids, and it runs as a non-root uid
# where the engine allows it. The caller sets NAME (log prefix); die() and log() are expected.
#
#   throwaway ENGINE OUTDIR COMMAND...   (COMMAND runs with /out as its working directory)

THROWAWAY_IMAGE="${AM_BASE_IMAGE:-am-base:bookworm}"

# The host's trust store, when the registries are reached through a TLS-inspecting proxy the
# host trusts (the image's own ca-certificates would refuse it). Only the file is copied.
host_ca_bundle() {
    local f
    for f in "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
        [ -n "$f" ] && [ -s "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}

throwaway() {
    local engine=$1 out=$2; shift 2
    command -v "$engine" >/dev/null || die "$engine not installed"
    "$engine" image inspect "$THROWAWAY_IMAGE" >/dev/null 2>&1 \
        || die "$THROWAWAY_IMAGE is not in $engine: run scripts/build-base-image.sh --runtime $engine"
    local args=(run --rm --pull never --read-only --tmpfs /tmp:rw,exec,size=1g
                --cap-drop ALL --security-opt no-new-privileges
                --memory 2g --pids-limit 512 --log-driver none
                --mount "type=bind,source=$out,target=/out" --workdir /out
                --env HOME=/tmp --env npm_config_cache=/out/.npm-cache
                --env npm_config_update_notifier=false)
    local ca
    if ca=$(host_ca_bundle); then
        cp -f "$ca" "$out/.ca-certificates.crt"
        args+=(--env NODE_EXTRA_CA_CERTS=/out/.ca-certificates.crt
               --env npm_config_cafile=/out/.ca-certificates.crt
               --env SSL_CERT_FILE=/out/.ca-certificates.crt
               --env PIP_CERT=/out/.ca-certificates.crt)
    fi
    local v
    for v in HTTPS_PROXY HTTP_PROXY NO_PROXY https_proxy http_proxy no_proxy; do
        [ -n "${!v:-}" ] && args+=(--env "$v")
    done
    # Not the host's root: as root the folder goes to nobody for the run; otherwise the
    # caller's own uid (podman rootless: mapped to itself with keep-id).
    if [ "$(id -u)" -eq 0 ]; then
        chown -R 65534:65534 "$out"
        args+=(--user 65534:65534)
    elif [ "$engine" = podman ]; then
        args+=(--userns keep-id --user "$(id -u):$(id -g)")
    else
        args+=(--user "$(id -u):$(id -g)")
    fi
    local rc=0
    "$engine" "${args[@]}" "$THROWAWAY_IMAGE" "$@" || rc=$?
    [ "$(id -u)" -ne 0 ] || chown -R 0:0 "$out"
    return $rc
}

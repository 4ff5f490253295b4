"""scripts/engines-up.sh gives podman name resolution on user networks, also on a machine whose
podman used the CNI backend before, and fails with a clear message when names do not resolve.

Each case runs the script in private mount and network namespaces (unshare -m -n): podman's
storage, network configuration and containers.conf are tmpfs copies there, and bridges come and
go in that network namespace, so the host's engines never see any of it.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.container

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "engines-up.sh"
PODMAN_DIRS = (
    "/etc/cni/net.d",
    "/etc/containers/networks",
    "/var/lib/containers",
    "/run/containers",
    "/run/libpod",
)


def conflist(
    name: str, bridge: str, subnet: str, gateway: str, *, is_gateway=True, labels=None
) -> str:
    plugin = {
        "type": "bridge",
        "bridge": bridge,
        "isGateway": is_gateway,
        "ipMasq": is_gateway,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet, "gateway": gateway}]]},
    }
    conf = {"cniVersion": "0.4.0", "name": name, "plugins": [plugin, {"type": "portmap"}]}
    if labels:
        conf["args"] = {"podman_labels": labels}
    return json.dumps(conf)


def isolated(tmp_path: Path, setup: str, after: str, conf: str | None = None):
    """Run engines-up.sh (podman only) after SETUP, then AFTER, all inside fresh namespaces."""
    if os.getuid() != 0:
        pytest.fail("engines-up.sh runs as root: run 'sudo make test'")
    conf_file = tmp_path / "containers.conf"
    conf_file.write_text(
        conf if conf is not None else Path("/etc/containers/containers.conf").read_text()
    )
    mounts = "\n".join(f"mkdir -p {d} && mount -t tmpfs tmpfs {d}" for d in PODMAN_DIRS)
    script = f"""set -e
ip link set lo up
{mounts}
mount --bind {conf_file} /etc/containers/containers.conf
{setup}
rc=0; AM_ENGINES=podman bash {SCRIPT} || rc=$?
echo "RC=$rc"
{after}
"""
    return subprocess.run(
        ["unshare", "-m", "-n", "--propagation", "private", "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cni_networks_are_made_again_under_netavark(tmp_path):
    nets = tmp_path / "cni"
    nets.mkdir()
    (nets / "87-podman-bridge.conflist").write_text(
        conflist("podman", "cni-podman0", "10.88.0.0/16", "10.88.0.1")
    )
    (nets / "mine.conflist").write_text(
        conflist("mine", "cni-podman1", "10.89.7.0/24", "10.89.7.1", labels={"am.home": "/x"})
    )
    (nets / "inner.conflist").write_text(
        conflist("inner", "cni-podman2", "10.89.8.0/24", "10.89.8.1", is_gateway=False)
    )
    (nets / "k8s.conflist").write_text(conflist("k8s", "cni0", "10.244.0.0/16", "10.244.0.1"))
    # CNI leaves its bridges up: the default one holds the subnet netavark's default uses
    setup = f"""cp {nets}/* /etc/cni/net.d/
ip link add cni-podman0 type bridge && ip addr add 10.88.0.1/16 dev cni-podman0
ip link add cni-podman1 type bridge && ip addr add 10.89.7.1/24 dev cni-podman1"""
    after = """ip -o link show type bridge | sed 's/^/LINK /'
podman network ls --format 'NET {{.Name}}'
podman network inspect mine --format 'MINE {{range .Subnets}}{{.Subnet}}{{end}} {{.Labels}}'
podman network inspect inner --format 'INNER {{.Internal}}'"""
    res = isolated(tmp_path, setup, after)
    out = res.stdout
    assert "RC=0" in out, res.stderr
    assert "names resolve on user networks" in res.stderr
    assert "cni-podman0" not in out and "cni-podman1" not in out  # unused: removed
    nets_now = {line.split()[1] for line in out.splitlines() if line.startswith("NET ")}
    assert nets_now == {"podman", "mine", "inner"}, out  # not k8s: not podman's
    assert "MINE 10.89.7.0/24 map[am.home:/x]" in out
    assert "INNER true" in out


def test_a_cni_bridge_still_in_use_stops_the_switch(tmp_path):
    setup = """ip link add cni-podman1 type bridge
ip link add am-t0 type veth peer name am-t1 && ip link set am-t0 master cni-podman1"""
    res = isolated(tmp_path, setup, "")
    assert "RC=1" in res.stdout
    assert "cni-podman1 still has containers attached" in res.stderr
    assert "podman stop" in res.stderr


def test_names_that_do_not_resolve_fail_clearly(tmp_path):
    # an aardvark-dns that does not serve: networks have DNS on, and nothing answers
    broken = tmp_path / "aardvark-dns"
    broken.write_text("#!/bin/sh\nexit 0\n")
    broken.chmod(0o755)
    res = isolated(tmp_path, f"mount --bind {broken} /usr/lib/podman/aardvark-dns", "")
    assert "RC=1" in res.stdout
    assert "names do not resolve on podman networks" in res.stderr, res.stderr


def test_the_cni_backend_is_named_as_the_cause(tmp_path):
    conf = '[engine]\nruntime = "runc"\n[network]\nnetwork_backend = "cni"\n'
    res = isolated(tmp_path, "", "", conf)
    assert "RC=1" in res.stdout
    assert (
        "the 'cni' network backend" in res.stderr
        and 'network_backend = \\"netavark\\"' not in res.stderr
    )
    assert 'network_backend = "netavark"' in res.stderr

"""Property 6: the image build's supply chain, on both engines.

The agent CLIs are fetched exactly as their lockfile pins them, by a throwaway container that
sees no host folder but its output, runs no package's install script, and refuses a package
whose content differs from the lockfile's hash; the engine build then has no network.
The attack packages are local tarballs (``file:`` dependencies), so no test reaches a registry.
"""

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from containers import engine_ready

PROPERTY = "6 image build supply chain"
pytestmark = pytest.mark.container
REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
# What a package's postinstall does when it runs: leave a marker in the one writable host
# folder (the fetch's output) and say so.
POSTINSTALL = "touch /out/POSTINSTALL-RAN; echo POSTINSTALL-RAN"
# The CLI's own command, recording at build time which network interfaces the build had.
INSTALL_SH = """#!/bin/sh
set -eu
nets=$(ls /sys/class/net | tr '\\n' ' ')
printf '#!/bin/sh\\necho "evilcli 1.0.0 build-net: %s"\\n' "$nets" >/opt/am/bin/evilcli
chmod 755 /opt/am/bin/evilcli
"""


def package_tgz(version: str, postinstall: str) -> bytes:
    """An npm package tarball (package/ prefix, as npm packs) with a postinstall script."""
    meta = {"name": "evil-pkg", "version": version, "scripts": {"postinstall": postinstall}}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (
            ("package/package.json", json.dumps(meta)),
            ("package/index.js", "module.exports = 1;\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def run(argv, env=None, check=True):
    res = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=900,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"{argv} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


@pytest.fixture
def evil(tmp_path, engine):
    """A pinned CLI 'evilcli' of our own (AM_AGENT_CLI_DIRS) whose one dependency has a
    postinstall script, locked by lock-agent-clis.sh; a private build dir."""
    clis = tmp_path / "clis"
    folder = clis / "evilcli"
    folder.mkdir(parents=True)
    (folder / "evil-pkg-1.0.0.tgz").write_bytes(package_tgz("1.0.0", POSTINSTALL))
    (folder / "package.json").write_text(
        json.dumps(
            {
                "name": "am-agent-cli-evilcli",
                "private": True,
                "dependencies": {"evil-pkg": "file:evil-pkg-1.0.0.tgz"},
            }
        )
    )
    (folder / "install.sh").write_text(INSTALL_SH)
    env = {"AM_AGENT_CLI_DIRS": str(clis), "AM_BUILD_DIR": str(tmp_path / "build")}
    run(["bash", SCRIPTS / "lock-agent-clis.sh", "--runtime", engine, "evilcli"], env)
    lock = json.loads((folder / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/evil-pkg"]["integrity"].startswith("sha512-")
    return folder, env, tmp_path / "build"


def marker_files(top: Path) -> list[str]:
    return [str(p) for p in top.rglob("POSTINSTALL-RAN")]


def test_fetch_runs_no_install_script_and_the_build_has_no_network(evil, engine):
    folder, env, build = evil
    # Positive control: plain npm ci, in the same kind of throwaway container, runs it.
    control = build / "control"
    (control / "evilcli").mkdir(parents=True)
    for f in ("package.json", "package-lock.json", "evil-pkg-1.0.0.tgz"):
        (control / "evilcli" / f).write_bytes((folder / f).read_bytes())
    run(
        [
            "bash",
            "-c",
            'NAME=t; die() { echo "$*" >&2; exit 1; }; . "$1"; '
            'throwaway "$2" "$3" sh -c "cd /out/evilcli && npm ci --no-audit --no-fund"',
            "t",
            SCRIPTS / "lib" / "throwaway.sh",
            engine,
            control,
        ]
    )
    assert marker_files(control), "positive control: npm ci did not run the postinstall"

    res = run(["bash", SCRIPTS / "fetch-agent-clis.sh", "--runtime", engine, "evilcli"], env)
    assert "downloading evilcli" in res.stderr  # said before anything is fetched
    fetched = build / "context" / "clis" / "evilcli" / "node_modules" / "evil-pkg"
    assert json.loads((fetched / "package.json").read_text())["version"] == "1.0.0"
    assert marker_files(build / "fetch") == [] and marker_files(build / "context") == []

    # The image build installs it with am's install.sh and no network (only loopback);
    # a container of the engine's default network has more (the control).
    tag = f"am-agent:evil-{uuid.uuid4().hex[:8]}"
    am = [sys.executable, "-m", "am"]
    try:
        run(
            [*am, "image", "build", "--runtime", engine, "--agents", "evilcli", "--tag", tag],
            {**env, "AM_OFFLINE": "1"},
        )  # fetched above: the build reaches no registry
        out = run([engine, "run", "--rm", tag, "evilcli"]).stdout
        assert "build-net: lo" in out and "eth" not in out, out
        nets = run([engine, "run", "--rm", tag, "ls", "/sys/class/net"]).stdout.split()
        assert len(nets) > 1, nets
        labels = json.loads(
            run([engine, "image", "inspect", "--format", "{{json .Config.Labels}}", tag]).stdout
        )
        assert labels["am.agent-clis"] == "evilcli"
    finally:
        run([engine, "rmi", "-f", tag], check=False)


def test_fetch_refuses_a_package_that_differs_from_the_lockfile(evil, engine):
    folder, env, build = evil
    tampered = package_tgz("1.0.0", POSTINSTALL + "; echo tampered")
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tampered).digest()).decode()
    lock = json.loads((folder / "package-lock.json").read_text())
    # Control: the tampered tarball is not what the lockfile pins.
    assert lock["packages"]["node_modules/evil-pkg"]["integrity"] != digest
    (folder / "evil-pkg-1.0.0.tgz").write_bytes(tampered)
    res = run(
        ["bash", SCRIPTS / "fetch-agent-clis.sh", "--runtime", engine, "evilcli"], env, check=False
    )
    assert res.returncode != 0
    assert "EINTEGRITY" in res.stderr or "integrity" in res.stderr.lower(), res.stderr
    assert "fetching evilcli failed" in res.stderr
    assert not (build / "context" / "clis" / "evilcli").exists()
    assert marker_files(build) == []


def host_mounts(mountinfo: str) -> set[str]:
    """Mount points inside a container that come from a host block device (bind mounts)."""
    points = set()
    for line in mountinfo.splitlines():
        fields, _, tail = line.partition(" - ")
        source = tail.split()[1] if len(tail.split()) > 1 else ""
        if source.startswith("/dev/") and not source.startswith(("/dev/pts", "/dev/mqueue")):
            points.add(fields.split()[4])
    return points


ENGINE_FILES = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}


def test_fetch_container_sees_only_its_output_folder(tmp_path, engine):
    engine_ready(engine)
    out = tmp_path / "out"
    out.mkdir()
    probe = (
        "cat /proc/self/mountinfo; echo UID=$(id -u); grep CapEff /proc/self/status; "
        "touch /probe 2>/dev/null || echo READ-ONLY-ROOT"
    )
    res = run(
        [
            "bash",
            "-c",
            'NAME=t; die() { echo "$*" >&2; exit 1; }; . "$1"; throwaway "$2" "$3" sh -c "$4"',
            "t",
            SCRIPTS / "lib" / "throwaway.sh",
            engine,
            out,
            probe,
        ]
    )
    assert host_mounts(res.stdout) - ENGINE_FILES == {"/out"}, res.stdout
    assert "UID=0" not in res.stdout and "CapEff:\t0000000000000000" in res.stdout
    assert "READ-ONLY-ROOT" in res.stdout
    # Positive control: the same reading sees a host folder that is mounted.
    res = run(
        [
            engine,
            "run",
            "--rm",
            "--mount",
            f"type=bind,source={tmp_path},target=/host",
            "am-base:bookworm",
            "cat",
            "/proc/self/mountinfo",
        ]
    )
    assert "/host" in host_mounts(res.stdout)


def test_unpinned_extra_clis_are_refused(tmp_path):
    res = run(
        ["bash", SCRIPTS / "fetch-agent-clis.sh", "claude"],
        {"AM_EXTRA_NPM_CLIS": "left-pad", "AM_BUILD_DIR": str(tmp_path)},
        check=False,
    )
    assert res.returncode != 0 and "AM_EXTRA_NPM_CLIS is refused" in res.stderr
    assert "AM_AGENT_CLI_DIRS" in res.stderr
    assert not (tmp_path / "fetch").exists()


def test_offline_build_without_a_fetched_cli_fails_before_any_download(am, tmp_path, engine):
    tag = f"am-agent:offline-{uuid.uuid4().hex[:8]}"
    res = am(
        "image",
        "build",
        "--runtime",
        engine,
        "--agents",
        "codex",
        "--tag",
        tag,
        check=False,
        env={"AM_OFFLINE": "1", "AM_BUILD_DIR": str(tmp_path / "b")},
    )
    assert res.returncode != 0
    assert "AM_OFFLINE=1 and codex is not fetched yet" in res.stderr
    assert "downloading" not in res.stderr
    assert run([engine, "image", "inspect", tag], check=False).returncode != 0

"""--disk SIZE: a container agent's workspace on a file system of that size (am/disk.py).

Every write test is bounded: caps of 64m, writes of at most 96 MiB, each with a positive control
(the same write without --disk grows past the cap). Each test unmounts and deletes what it made
(the am fixture also unmounts whatever is left under its AM_HOME).
"""

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from helpers import assert_am_error, assert_nothing_made, state_agents, wait_for

from am import disk
from am.errors import AmError

CAP = "64m"


def capped(am, repo, engine: str, cmd: str) -> str:
    """A container agent of ENGINE with a --disk CAP, running CMD."""
    return am.spawn(repo, "--container", "--runtime", engine, "--disk", CAP, "--cmd", cmd)


WRITE_MB = 96  # more than the cap, little enough for a test
FILL = (
    f"dd if=/dev/zero of=/workspace/fill bs=1M count={WRITE_MB} 2>/workspace/dd.err; "
    "echo dd-exit=$? > /workspace/dd.rc; echo filled; sleep 300"
)


def engine_exec(engine: str, agent: str, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [engine, "exec", f"am-{agent}", *cmd], capture_output=True, text=True, timeout=120
    )


def mounts_under(path: Path) -> list[str]:
    """Mount points below PATH, from the kernel's own table."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(str(path) + "/"):
            out.append(point)
    return out


def loops_under(path: Path) -> list[str]:
    return [lo.device for lo in disk.loops() if lo.backing.startswith(str(path) + "/")]


def assert_no_disk_left(home: Path) -> None:
    assert mounts_under(home) == []
    assert loops_under(home) == []
    disks = home / "data" / "disks"
    assert not disks.exists() or [p for p in disks.iterdir() if p.name != ".lock"] == []


def dd_result(ws: Path) -> tuple[str, str]:
    wait_for(
        lambda: (ws / "dd.rc").exists() and (ws / "dd.rc").read_text().strip(),
        "the write to end",
        timeout=60,
    )
    return (ws / "dd.rc").read_text().strip(), (ws / "dd.err").read_text()


# --- no container: checks before anything is made ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [("0", "invalid"), ("abc", "invalid"), ("1.5x", "invalid"), ("1m", "at least 16m")],
)
def test_bad_sizes_are_refused_and_nothing_made(am, repo, value, why):
    res = am("spawn", repo, "--container", "--disk", value, "--cmd", "true", check=False)
    line = assert_am_error(res)
    assert "--disk" in line and why in line, line
    assert_nothing_made(am.home)


def test_tmux_agents_refuse_disk(am, repo):
    """A tmux agent runs as the user and writes wherever the user can: a cap on its workspace
    would promise what it cannot keep, so the flag is refused (as the other limits are)."""
    res = am("spawn", repo, "--disk", CAP, "--cmd", "true", check=False)
    line = assert_am_error(res)
    assert "--disk applies to container agents" in line and "add --container" in line
    assert_nothing_made(am.home)
    # the worktree agents that fill the source's objects run in tmux too: same refusal
    res = am("spawn", repo, "--worktree", "--disk", CAP, "--cmd", "true", check=False)
    assert "--disk applies to container agents" in assert_am_error(res)
    assert_nothing_made(am.home)


def test_config_key_is_checked_and_shown(am):
    (am.home).mkdir(parents=True, exist_ok=True)
    (am.home / "config.toml").write_text('[limits]\ndisk = "lots"\n')
    line = assert_am_error(am("config", "show", check=False))
    assert "invalid limits.disk" in line and "config.toml" in line
    (am.home / "config.toml").write_text('[limits]\ndisk = "10G"\n')
    shown = json.loads(am("config", "show", "--json").stdout)["settings"]["limits.disk"]
    assert shown["value"] == "10g" and shown["source"] == "file"
    flag = json.loads(am("config", "show", "--json", "--disk", "none").stdout)
    assert flag["settings"]["limits.disk"] == {
        "value": "none",
        "source": "flag",
        "origin": "--disk",
    }
    env = json.loads(am("config", "show", "--json", env={"AM_DISK": "2g"}).stdout)
    assert env["settings"]["limits.disk"]["value"] == "2g"


def test_config_disk_is_ignored_by_tmux_spawns(am, repo):
    am.home.mkdir(parents=True, exist_ok=True)
    (am.home / "config.toml").write_text(f'[limits]\ndisk = "{CAP}"\n')
    agent = am.spawn(repo, "--cmd", "sleep 300")
    assert mounts_under(am.home) == [] and not (am.home / "data" / "disks").exists()
    am("rm", "--force", agent)


def test_composition_and_sizes():
    assert disk.size_bytes("64m") == 64 * 1024**2 and disk.size_bytes("1.5G") == 3 << 29
    assert disk.size_bytes("none") is None and disk.check_size("NONE") is None
    assert disk.check_size(" 10G ") == "10g" and disk.check_size(None) is None
    image, ws = Path("/h/data/disks/a.ext4"), Path("/h/agents/a")
    mount = disk.mount_argv(image, ws)
    assert mount[1:] == ["-t", "ext4", "-o", "loop,nodev,nosuid,discard", str(image), str(ws)]
    assert disk.mkfs_argv(image)[1:] == ["-q", "-F", "-m", "0", "-E", "nodiscard", str(image)]
    assert disk.umount_argv(ws)[1:] == [str(ws)]


@pytest.mark.container  # it runs a container engine
def test_a_host_without_loop_devices_is_refused_clearly(am, repo):
    """/dev hidden in a mount namespace of its own (only /dev/null made again): no
    /dev/loop-control, so one error naming the module to load, and nothing made."""
    require_root()
    argv = " ".join(
        f"'{a}'"
        for a in [*am.argv, "spawn", str(repo), "--container", "--disk", CAP, "--cmd", "true"]
    )
    res = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            f"mount -t tmpfs none /dev && mknod -m 666 /dev/null c 1 3 && exec {argv}",
        ],
        env=am.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = assert_am_error(res)
    assert "no loop devices" in line and "modprobe loop" in line, line
    assert_nothing_made(am.home)


def test_a_mount_without_a_free_loop_device_names_the_fix():
    with pytest.raises(AmError) as e:
        disk._run(
            ["sh", "-c", "echo 'mount: /w: failed to setup loop device for /i.' >&2; exit 32"],
            "mount the workspace's file system /i",
        )
    assert "failed to setup loop device" in e.value.message and "losetup --list" in e.value.hint


def test_restore_writes_blocks_of_zeros_as_holes(tmp_path):
    """A sparse file comes out of a tar stream as zeros: written as they come it would take its
    full length; written by am it takes only its data, and reads back the same."""
    import io

    from am.snapshot import write_sparse

    data = b"\0" * (3 << 20) + b"x" + b"\0" * 5000 + b"y" * 10000 + b"\0" * (2 << 20) + b"z"
    data += b"\0" * 100
    for name, content in (("sparse", data), ("empty", b""), ("zeros", bytes(1 << 22))):
        fd = os.open(tmp_path / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        write_sparse(fd, io.BufferedReader(io.BytesIO(content)))
        os.close(fd)
        assert (tmp_path / name).read_bytes() == content
        assert (tmp_path / name).stat().st_blocks * 512 <= 64 * 1024
    # control: the same bytes written plainly take their length
    (tmp_path / "plain").write_bytes(data)
    assert (tmp_path / "plain").stat().st_blocks * 512 >= len(data) - 4096


def test_restore_never_leaves_a_short_write_as_zeros(tmp_path):
    """A file system that fills up mid-write writes less and says so only by the count: a
    restore that took it for all would set the file's length and read zeros where its last
    bytes were. Run as root in a mount namespace of its own, on a 64 KiB tmpfs."""
    require_root()
    code = (
        "import io, os, sys\n"
        "from am.snapshot import write_sparse\n"
        "data = os.urandom(100_000)\n"
        "fd = os.open(sys.argv[1] + '/control', os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "print('control', os.pwrite(fd, data, 0))\n"
        "os.close(fd)\n"
        "os.unlink(sys.argv[1] + '/control')\n"
        "fd = os.open(sys.argv[1] + '/restored', os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "try:\n"
        "    write_sparse(fd, io.BufferedReader(io.BytesIO(data)))\n"
        "    print('wrote', open(sys.argv[1] + '/restored', 'rb').read() == data)\n"
        "except OSError as e:\n"
        "    print('error', e.errno)\n"
    )
    folder = tmp_path / "small"
    folder.mkdir()
    script = f'mount -t tmpfs -o size=64k tmpfs {folder} && exec {sys.executable} -c "$0" {folder}'
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, code], capture_output=True, text=True, timeout=60
    )
    # control: the first write of 100,000 bytes wrote 65,536 and raised nothing
    assert out.stdout.splitlines() == ["control 65536", "error 28"], out.stderr


# --- root: the cap on both engines --------------------------------------------------------------


def require_root():
    if os.geteuid() != 0:
        pytest.fail(
            "--disk needs root: run the container tests as root (CI does), or see "
            "test_non_root_users_are_refused_clearly"
        )


@pytest.mark.container
def test_disk_caps_the_workspace_and_am_still_works(am, repo, engine):
    require_root()
    # positive control: without --disk the same write grows past the size
    free = am.spawn(repo, "--container", "--runtime", engine, "--cmd", FILL)
    ws = am.home / "agents" / free
    code, _ = dd_result(ws)
    assert code == "dd-exit=0" and (ws / "fill").stat().st_size == WRITE_MB * 1024**2
    assert json.loads(am("status", free, "--json").stdout)["disk_bytes"] is None
    am("rm", "--force", free)

    agent = capped(am, repo, engine, FILL)
    ws = am.home / "agents" / agent
    image = am.home / "data" / "disks" / f"{agent}.ext4"
    assert am.info(agent)["limits"]["disk"] == CAP
    code, err = dd_result(ws)
    assert code != "dd-exit=0" and "No space left on device" in err
    assert (ws / "fill").stat().st_size < 64 * 1024**2
    # the image is sparse: it holds what was written, no more than the cap
    assert image.stat().st_size == 64 * 1024**2
    assert image.stat().st_blocks * 512 <= 64 * 1024**2

    status = json.loads(am("status", agent, "--json").stdout)
    assert 48 * 1024**2 < status["disk_bytes"] <= status["disk_limit_bytes"] <= 64 * 1024**2
    assert status["health"] == "disk"
    info = am.info(agent)
    assert info["disk_bytes"] == status["disk_bytes"] and info["health"] == "disk"
    assert info["disk_limit_bytes"] == status["disk_limit_bytes"]
    assert "DISK" in am("status").stdout

    # am's own operations write nothing into the full workspace
    engine_exec(engine, agent, "sh", "-c", "rm /workspace/fill; echo mine > /workspace/note")
    engine_exec(
        engine,
        agent,
        "sh",
        "-c",
        "dd if=/dev/zero of=/workspace/fill bs=1M count=96 2>/dev/null; true",
    )
    assert "+mine" in am("diff", agent).stdout
    snap = am("snapshot", agent).stdout.strip().splitlines()[-1]
    am("stop", agent)
    assert "+mine" in am("diff", agent).stdout  # read in a throwaway container, read-only
    am("start", agent)
    am.wait_status(agent, "running")
    df = engine_exec(engine, agent, "df", "-k", "/workspace").stdout.splitlines()[-1].split()
    assert int(df[1]) * 1024 <= 64 * 1024**2  # started again on its own file system

    am("rm", "--force", agent)
    assert_no_disk_left(am.home)
    assert Path(snap).is_file()


@pytest.mark.container
def test_a_lost_mount_comes_back_before_any_use(am, repo, engine):
    """After a reboot the image is there and the mount is not: reading or starting the agent
    mounts it again first, and never runs the agent on the empty folder beneath."""
    require_root()
    agent = capped(am, repo, engine, "echo kept > /workspace/kept; sleep 300")
    ws = am.home / "agents" / agent
    wait_for(lambda: (ws / "kept").exists(), "the agent's file", timeout=60)
    am("stop", agent)
    subprocess.run(["umount", str(ws)], check=True)
    assert list(ws.iterdir()) == []  # as after a reboot
    assert "+kept" in am("diff", agent).stdout
    subprocess.run(["umount", str(ws)], check=True)
    snap = am("snapshot", agent).stdout.strip().splitlines()[-1]
    import tarfile

    with tarfile.open(snap) as tar:
        assert tar.extractfile("workspace/kept").read() == b"kept\n"
    subprocess.run(["umount", str(ws)], check=True)
    am("start", agent)
    am.wait_status(agent, "running")
    assert engine_exec(engine, agent, "cat", "/workspace/kept").stdout == "kept\n"
    am("stop", agent)

    # a capped agent whose file system is gone is refused a start, never run uncapped
    subprocess.run(["umount", str(ws)], check=True)
    (am.home / "data" / "disks" / f"{agent}.ext4").rename(am.home / "data" / "moved.ext4")
    line = assert_am_error(am("start", agent, check=False))
    assert "file system of agent" in line and "missing" in line
    assert am.info(agent)["status"] == "stopped"
    (am.home / "data" / "moved.ext4").rename(am.home / "data" / "disks" / f"{agent}.ext4")
    am("rm", "--force", agent)
    assert_no_disk_left(am.home)


@pytest.mark.container
def test_restore_with_disk(am, repo, engine):
    require_root()
    agent = capped(am, repo, engine, "head -c 20000000 /dev/urandom > /workspace/data; sleep 300")
    ws = am.home / "agents" / agent
    wait_for(
        lambda: (ws / "data").exists() and (ws / "data").stat().st_size == 20_000_000,
        "the agent's file",
        timeout=60,
    )
    snap = am("snapshot", agent).stdout.strip().splitlines()[-1]
    am("rm", "--force", agent)

    plain = am("restore", snap, "--name", "plain")
    assert f"capped at {CAP}" in plain.stderr  # said, never applied from the archive alone
    assert mounts_under(am.home) == []
    line = assert_am_error(am("restore", snap, "--name", "tight", "--disk", "16m", check=False))
    assert "does not fit in --disk 16m" in line
    assert "tight" not in state_agents(am.home) and mounts_under(am.home) == []

    restored = am("restore", snap, "--name", "capped", "--disk", CAP).stdout.strip()
    assert restored == "capped"
    assert mounts_under(am.home) == [str(am.home / "agents" / "capped")]
    assert (am.home / "agents" / "capped" / "data").stat().st_size == 20_000_000
    # its first start runs it in a container, on that file system
    am("start", "capped", "--runtime", engine, "--cmd", "sleep 300")
    info = am.wait_status("capped", "running")
    assert info["mode"] == "container" and info["limits"]["disk"] == CAP
    out = engine_exec(
        engine, "capped", "sh", "-c", "head -c 60000000 /dev/zero > /workspace/more; echo $?"
    ).stdout
    assert out.strip() != "0"
    am("rm", "--force", "capped")
    am("rm", "--force", "plain")
    assert_no_disk_left(am.home)


@pytest.mark.container
def test_sigkilled_disk_spawns_leave_nothing_doctor_cannot_clean(am, repo, engine):
    """A spawn killed while its file system is made, right after it is mounted, and once the
    clone is in it: doctor --fix unmounts, detaches and deletes everything."""
    require_root()
    disks = am.home / "data" / "disks"

    def made():
        return disks.exists() and any(
            p.name.endswith((".ext4", ".partial")) for p in disks.iterdir()
        )

    def mounted():
        return mounts_under(am.home)

    def cloned():
        return any((Path(p) / ".git").exists() for p in mounts_under(am.home))

    for i, condition in enumerate((made, mounted, cloned)):
        p = subprocess.Popen(
            [
                *am.argv,
                "spawn",
                str(repo),
                "--name",
                f"k{i}",
                "--container",
                "--runtime",
                engine,
                "--disk",
                CAP,
                "--cmd",
                "sleep 300",
            ],
            env=am.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(
                lambda c=condition, p=p: c() or p.poll() is not None,
                condition.__name__,
                every=0.002,
                timeout=60,
            )
        finally:
            alive = p.poll() is None
            p.send_signal(signal.SIGKILL)
            p.wait()
        assert alive, f"the spawn ended before {condition.__name__}"
    # a loop device a killed mount left attached, reading an image with no record
    orphan = disks / "gone.ext4"
    subprocess.run(["truncate", "--size", "16m", str(orphan)], check=True)
    subprocess.run(disk.mkfs_argv(orphan), check=True, capture_output=True)
    loose = subprocess.run(
        ["losetup", "--find", "--show", str(orphan)], capture_output=True, text=True, check=True
    ).stdout.strip()
    report = json.loads(am("doctor", "--json", check=False).stdout)
    kinds = {d["kind"] for d in report["drift"]}
    assert {"stale-spawn", "orphan-disk", "loose-loop"} <= kinds, report["drift"]
    fixed = json.loads(am("doctor", "--fix", "--json", check=False).stdout)
    assert all(d["fixed"] and not d["fixed"].startswith("not fixed") for d in fixed["drift"]), (
        fixed["drift"]
    )
    assert json.loads(am("doctor", "--json", check=False).stdout)["drift"] == []
    assert all(a["status"] in ("running", "stopped", "exited") for a in am.list())
    for a in am.list():
        am("rm", "--force", a["id"])
    assert loose not in [lo.device for lo in disk.loops()]
    assert_no_disk_left(am.home)


# --- not root -----------------------------------------------------------------------------------


@pytest.fixture
def unprivileged():
    """A fresh account in the docker group (rootless podman asks for nothing more before the
    refusal), with a folder of its own holding a repository and its AM_HOME; made and removed
    by the test: (uid, gid, folder)."""
    import grp
    import pwd
    import tempfile

    name = f"amd{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--groups",
            "docker",
            name,
        ],
        check=True,
        capture_output=True,
    )
    top = Path(tempfile.mkdtemp(prefix="amtest-disk-", dir="/tmp"))
    try:
        pw = pwd.getpwnam(name)
        top.chmod(0o755)
        mine = top / "user"
        mine.mkdir()
        src = mine / "source"
        subprocess.run(["git", "init", "-q", "-b", "main", str(src)], check=True)
        (src / "README").write_text("hello\n")
        subprocess.run(["git", "-C", str(src), "add", "."], check=True)
        subprocess.run(
            [
                "git",
                "-C",
                str(src),
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "commit",
                "-qm",
                "first",
            ],
            check=True,
        )
        subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", str(mine)], check=True)
        yield pw.pw_uid, pw.pw_gid, grp.getgrnam("docker").gr_gid, mine
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["rm", "-rf", str(top)])


def system_python() -> str:
    """An interpreter of this Python version that any user may run (the test's own may sit
    under root's home)."""
    want = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (f"/usr/bin/{want}", f"/usr/local/bin/{want}"):
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"no {want} outside root's home for the unprivileged user")


@pytest.mark.container
def test_non_root_users_are_refused_clearly(engine, unprivileged):
    """The mechanism needs root (mount, a loop device); a docker-group user and a rootless
    podman user get one clear error naming the fix, and nothing is made."""
    uid, gid, docker_gid, mine = unprivileged
    import am as package

    site = [p for p in sys.path if p.endswith("site-packages")]
    src = str(Path(package.__file__).parent.parent)
    home = mine / "amhome"
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(mine),
        "AM_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([src, *site]),
    }

    def as_user(*args):
        return subprocess.run(
            [system_python(), "-m", "am", *args],
            user=uid,
            group=gid,
            extra_groups=[docker_gid],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    # this am really runs as that user, and reads its settings as theirs
    shown = as_user("config", "show", "--json", "--disk", CAP)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["settings"]["limits.disk"]["value"] == CAP
    res = as_user(
        "spawn",
        str(mine / "source"),
        "--container",
        "--runtime",
        engine,
        "--disk",
        CAP,
        "--cmd",
        "true",
    )
    line = assert_am_error(res)
    assert "needs root" in line and "loop device" in line and "leave out --disk" in line
    assert "rootless podman cannot" in line
    assert not (home / "agents").exists() or list((home / "agents").iterdir()) == []
    assert state_agents(home) == {}
    assert not (home / "data" / "disks").exists()


SPARSE_MB = 256  # the length of the agent's sparse file: four times the cap


@pytest.mark.container
def test_a_sparse_file_gets_no_room_past_the_cap(am, repo, engine, tmp_path):
    """A sparse file takes no room on the agent's file system; its snapshot holds it as zeros
    (compressed), and a restore writes it with its holes: never its full length on the host's
    disk, and it fits in the same cap again."""
    require_root()
    agent = capped(
        am,
        repo,
        engine,
        f"truncate -s {SPARSE_MB}M /workspace/sparse && printf mark | dd "
        "of=/workspace/sparse bs=1 seek=100000000 conv=notrunc 2>/dev/null; "
        "echo made > /workspace/made; sleep 300",
    )
    ws = am.home / "agents" / agent
    wait_for(lambda: (ws / "made").exists(), "the sparse file", timeout=60)
    assert (ws / "sparse").stat().st_size == SPARSE_MB << 20
    image = am.home / "data" / "disks" / f"{agent}.ext4"
    assert image.stat().st_blocks * 512 <= 64 * 1024**2
    snap = Path(am("snapshot", agent).stdout.strip().splitlines()[-1])
    assert snap.stat().st_size < 16 * 1024**2  # zeros compress
    am("rm", "--force", agent)

    # control: extracted by plain tarfile, the file takes its full length
    import tarfile

    # the data filter where this Python has filters (3.11.4 on), none before (Debian's 3.11.2)
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(snap) as tar:
        tar.extract("workspace/sparse", tmp_path, **safe)
    plain = tmp_path / "workspace" / "sparse"
    assert plain.stat().st_blocks * 512 >= (SPARSE_MB - 1) << 20
    plain.unlink()

    am("restore", str(snap), "--name", "back")
    back = am.home / "agents" / "back" / "sparse"
    assert back.stat().st_size == SPARSE_MB << 20 and back.stat().st_blocks * 512 < 1 << 20
    with back.open("rb") as f:
        f.seek(100000000)
        assert f.read(4) == b"mark"
    am("rm", "--force", "back")
    assert am("restore", str(snap), "--name", "capped", "--disk", CAP).stdout.strip() == "capped"
    assert (am.home / "agents" / "capped" / "sparse").stat().st_size == SPARSE_MB << 20
    am("rm", "--force", "capped")
    assert_no_disk_left(am.home)


@pytest.mark.container
def test_the_publish_folder_is_no_way_past_the_cap(am, repo, engine):
    """--publish with --network limited mounts one more host folder the agent writes (its
    relay's sockets); with --disk it is a tiny tmpfs. Control: without --disk the agent writes
    96 MiB into it, onto the host's disk."""
    require_root()
    from test_task_io_container import free_port

    write = (
        f"dd if=/dev/zero of=/run/am-publish/fill bs=1M count={WRITE_MB} "
        "2>/workspace/dd.err; echo dd-exit=$? > /workspace/dd.rc; sleep 300"
    )

    def spawn(*extra):
        return am.spawn(
            repo,
            "--container",
            "--runtime",
            engine,
            "--network",
            "limited",
            "--publish",
            f"{free_port()}:8000",
            *extra,
            "--cmd",
            write,
        )

    free = spawn()
    code, _ = dd_result(am.home / "agents" / free)
    assert code == "dd-exit=0"
    pub = am.home / "state" / "run" / f"{free}.net" / "pub"
    assert (pub / "fill").stat().st_blocks * 512 >= WRITE_MB << 20
    am("rm", "--force", free)

    agent = spawn("--disk", CAP)
    ws = am.home / "agents" / agent
    code, err = dd_result(ws)
    assert code != "dd-exit=0" and "No space left on device" in err
    pub = am.home / "state" / "run" / f"{agent}.net" / "pub"
    assert str(pub) in mounts_under(am.home)
    assert (pub / "fill").stat().st_size <= 256 * 1024
    am("stop", agent)
    (ws / "dd.rc").unlink()
    am("start", agent)  # the folder made again, capped again
    code, err = dd_result(ws)
    assert code != "dd-exit=0" and "No space left on device" in err
    assert sorted(mounts_under(am.home)) == sorted([str(ws), str(pub)])
    am("rm", "--force", agent)
    assert mounts_under(am.home) == []
    assert_no_disk_left(am.home)

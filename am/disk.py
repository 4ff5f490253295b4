"""``--disk SIZE``: an agent's workspace on a file system of its own, of that size.

The workspace folder ``<workspaces>/<id>`` is the mount point of an ext4 file system kept in a
sparse image file ``<data>/disks/<id>.ext4`` and mounted on a loop device (``mount -o loop``,
which detaches the device again at unmount). Everything else of am sees an ordinary folder:
the container's bind mount, the read-only bind of a throwaway sandbox, snapshots, ``rm``. When
the agent has written SIZE (less the file system's own tables) it gets ``ENOSPC``; am's own
reads write nothing into the workspace, so ``diff``, ``snapshot`` and ``rm`` still work.

Measured on these hosts (docs/performance.md): the root file system is ext4 without
``prjquota``, so no project quota; docker's local volume driver cannot mount a loop device and
rootless podman cannot set one up; a loop mount works for root with any engine. Mounting needs
root, so ``--disk`` is refused, before anything is made, for anyone else.

Images are sparse and mounted with ``discard``: an image takes the space its files take, and
gives it back when they are deleted. The image is written only through the kernel's file
system, never by the agent directly. Mounts are made by ``create`` (spawn, restore) and again
by ``ensure`` whenever an agent's workspace is about to be used and is not mounted (after a
reboot); ``remove`` unmounts and deletes. ``leftovers`` finds what an interrupted spawn or a
deleted record left (an image, a mount, a loop device) for ``am doctor``.
"""

import contextlib
import os
import re
import shutil
from pathlib import Path

from am import proc, validate
from am.errors import AmError
from am.valueclass import value_class

FSTYPE = "ext4"
SUFFIX = ".ext4"
PARTIAL = ".partial"  # an image whose mkfs has not finished
MIN_SIZE = 16 * 1024**2
MOUNT_OPTIONS = "loop,nodev,nosuid,discard"
SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
HINT = "run am as root (sudo), or leave out --disk (docs/security.md, 'Disk')"
SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([kmgt]?)$", re.IGNORECASE)
UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def size_bytes(value: str, label: str = "--disk") -> int | None:
    """SIZE (``512m``, ``10g``) in bytes; None for ``none`` (no cap)."""
    text = str(value).strip().lower()
    if text == "none":
        return None
    m = SIZE_RE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise AmError(f"invalid {label} {value!r}", "a size such as 512m or 10g, or none")
    size = int(float(m.group(1)) * UNITS[m.group(2)])
    if size < MIN_SIZE:
        raise AmError(
            f"{label} {value!r} is too small",
            f"at least {MIN_SIZE // 1024**2}m: the file system's own tables and a "
            "checkout need room",
        )
    return size


def check_size(value, label: str = "--disk") -> str | None:
    """A --disk value, normalised (``1g``), or None for no cap (unset, or ``none``)."""
    if validate.no_disk_cap(value):
        return None
    size_bytes(str(value), label)
    return str(value).strip().lower()


# --- composition (pure) ----------------------------------------------------------------------


def mkfs_argv(image: Path) -> list[str]:
    """An ext4 file system filling IMAGE: no blocks reserved for root (the agent is the only
    user), no discard of a file that is all holes anyway."""
    return [tool("mkfs.ext4"), "-q", "-F", "-m", "0", "-E", "nodiscard", str(image)]


def mount_argv(image: Path, workspace: Path) -> list[str]:
    return [tool("mount"), "-t", FSTYPE, "-o", MOUNT_OPTIONS, str(image), str(workspace)]


def umount_argv(workspace: Path) -> list[str]:
    return [tool("umount"), str(workspace)]


def detach_argv(device: str) -> list[str]:
    return [tool("losetup"), "--detach", device]


def detach(device: str) -> bool:
    """Detach the loop DEVICE; False if it was no longer attached."""
    if not any(lo.device == device for lo in loops()):
        return False
    res = proc.run(detach_argv(device), timeout=60)
    if not res.ok:
        raise AmError(f"cannot detach {device}: {res.brief()}")
    return True


def tool(name: str) -> str:
    """NAME's path: root's tools live in sbin, which a user's PATH may lack."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
    return found or name


# --- what the kernel says ---------------------------------------------------------------------


@value_class
class Loop:
    """A loop device and the file behind it."""

    device: str  # /dev/loopN
    dev: int  # its device number
    backing: str  # the file it reads, as the kernel names it


def loops() -> list[Loop]:
    """Every loop device that has a backing file, from sysfs (no call)."""
    out = []
    try:
        names = [n for n in os.listdir("/sys/block") if n.startswith("loop")]
    except OSError:
        return out
    for name in names:
        try:
            backing = Path(f"/sys/block/{name}/loop/backing_file").read_text().rstrip("\n")
            major, _, minor = Path(f"/sys/block/{name}/dev").read_text().strip().partition(":")
            out.append(Loop(f"/dev/{name}", os.makedev(int(major), int(minor)), backing))
        except (OSError, ValueError):
            continue  # no backing file: the device is free
    return out


def _mountinfo() -> list[list[str]]:
    """The kernel's table of this process's mounts, one list of fields a mount."""
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return []
    return [fields for fields in (line.split() for line in text.splitlines()) if len(fields) > 4]


def mount_points() -> list[str]:
    """Every mount point (its octal escapes undone)."""
    return [
        re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        for fields in _mountinfo()
    ]


def mounted_devices() -> set[int]:
    """Device numbers of every mounted file system."""
    found = set()
    for fields in _mountinfo():
        major, _, minor = fields[2].partition(":")
        if major.isdigit() and minor.isdigit():
            found.add(os.makedev(int(major), int(minor)))
    return found


def attached(image: Path, all_loops: list[Loop] | None = None) -> list[Loop]:
    """The loop devices reading IMAGE."""
    real = os.path.realpath(image)
    return [lo for lo in (loops() if all_loops is None else all_loops) if lo.backing == real]


def mounted(image: Path, workspace: Path, all_loops: list[Loop] | None = None) -> bool:
    """Whether WORKSPACE is the root of IMAGE's file system, mounted (not a link to it)."""
    try:
        st = os.lstat(workspace)
    except OSError:
        return False
    if not os.path.ismount(workspace) or os.path.islink(workspace):
        return False
    return any(lo.dev == st.st_dev for lo in attached(image, all_loops))


@value_class
class Usage:
    """How full a workspace's own file system is, in bytes."""

    used: int  # bytes in use, the file system's own tables not counted
    size: int  # what the agent can fill: the image less those tables
    free: int

    @property
    def full(self) -> bool:
        """Close enough to full that writes fail (1% or 1 MiB left)."""
        return self.free < max(self.size // 100, 1024**2)


def usage(image: Path, workspace: Path, all_loops: list[Loop] | None = None) -> Usage | None:
    """How full the workspace's file system is, from the file system itself (one statvfs: no
    walk of the workspace); None when it is not mounted."""
    if not mounted(image, workspace, all_loops):
        return None
    try:
        st = os.statvfs(workspace)
    except OSError:
        return None
    return Usage(
        (st.f_blocks - st.f_bfree) * st.f_frsize,
        st.f_blocks * st.f_frsize,
        st.f_bavail * st.f_frsize,
    )


# --- checks before anything is made -----------------------------------------------------------


def problem(folder: Path, size: int, label: str = "--disk") -> AmError | None:
    """Why this host cannot give a workspace a file system of SIZE bytes kept in FOLDER."""
    if os.geteuid() != 0:
        return AmError(
            f"{label}: capping a workspace needs root here: am mounts a file system "
            "of that size on a loop device, which only root may do (this host has "
            "no project quotas, docker's volumes cannot use a loop device, and "
            "rootless podman cannot set one up)",
            HINT,
        )
    for name in ("mkfs.ext4", "mount", "umount", "losetup"):
        if tool(name) == name and not shutil.which(name):
            return AmError(
                f"{label}: {name} not found",
                "install e2fsprogs and mount ('apt-get install e2fsprogs mount')",
            )
    if not os.path.exists("/dev/loop-control"):
        return AmError(
            f"{label}: this kernel offers no loop devices (/dev/loop-control)",
            "load the loop module ('modprobe loop'), or leave out --disk",
        )
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    st = os.statvfs(probe)
    if size > st.f_blocks * st.f_frsize:
        return AmError(
            f"{label} is more than the file system holding {folder} has "
            f"({st.f_blocks * st.f_frsize / 1024**3:.1f}g)"
        )
    return None


def check(folder: Path, value: str | None, label: str = "--disk") -> None:
    """Raise the reason a --disk VALUE cannot be had here, if there is one."""
    size = size_bytes(value, label) if value else None
    if size is not None:
        err = problem(folder, size, label)
        if err:
            raise err


# --- making, mounting, removing -----------------------------------------------------------------


LOOP_HINT = (
    "no loop device was free: 'losetup --list' shows what holds them ('am doctor --fix' "
    "detaches am's own leftovers); more need the loop module's max_loop, or /dev/loopN "
    "nodes in a container"
)


def _run(argv: list[str], what: str) -> None:
    res = proc.run(argv, timeout=120)
    if not res.ok:
        why = res.brief()
        raise AmError(f"cannot {what}: {why}", LOOP_HINT if "loop device" in why else None)


def create(image: Path, workspace: Path, value: str) -> None:
    """Make IMAGE (a file system of VALUE) and mount it as the new folder WORKSPACE, empty and
    private (0700). The image gets its final name only once mkfs has finished, so a name
    ending in ``.partial`` always means an interrupted spawn."""
    size = size_bytes(value)
    from am import paths

    paths.private_dir(image.parent)
    partial = image.with_name(image.name + PARTIAL)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.ftruncate(fd, size)  # sparse: it takes what the files take
    finally:
        os.close(fd)
    _run(mkfs_argv(partial), f"make the workspace's file system ({partial})")
    os.replace(partial, image)
    workspace.mkdir(mode=0o700)
    mount(image, workspace)
    # git clones only into an empty folder; fsck makes lost+found again should it need one.
    os.rmdir(workspace / "lost+found")
    os.chmod(workspace, 0o700)


def made(image: Path) -> bool:
    """Whether IMAGE, or an unfinished one, exists."""
    return image.exists() or image.with_name(image.name + PARTIAL).exists()


def mount(image: Path, workspace: Path) -> None:
    _run(mount_argv(image, workspace), f"mount the workspace's file system {image}")


def ensure(image: Path, workspace: Path, agent_id: str, required: bool = False) -> bool:
    """Mount IMAGE on WORKSPACE unless it is already (after a reboot it is not); False when
    there is no image. REQUIRED: an agent about to run must have its cap, so a missing image
    is an error, never an uncapped start."""
    if not image.is_file():
        if required:
            raise AmError(
                f"the workspace file system of agent {agent_id} is missing: {image}",
                f"its files are gone; 'am rm --force {agent_id}' removes the agent",
            )
        return False
    if mounted(image, workspace):
        return True
    if os.geteuid() != 0:
        raise AmError(
            f"the workspace of agent {agent_id} is a file system that is not mounted "
            "(--disk), and only root can mount it",
            "run am as root (sudo)",
        )
    with locked(image.parent):  # two commands at once would stack two mounts
        if mounted(image, workspace):
            return True
        if workspace.is_symlink():
            raise AmError(f"the workspace of agent {agent_id} is a symbolic link: {workspace}")
        if not workspace.exists():
            workspace.mkdir(mode=0o700)
        elif any(os.scandir(workspace)):
            raise AmError(
                f"cannot mount the workspace file system of agent {agent_id}: "
                f"{workspace} is not empty",
                "move its files away, then try again",
            )
        mount(image, workspace)
    return True


def locked(folder: Path):
    """Mounting and unmounting in FOLDER's file systems, one am process at a time."""
    from am import files

    return files.locked(folder / ".lock")


def remove(image: Path, workspace: Path) -> None:
    """Unmount WORKSPACE if IMAGE is mounted there, detach any loop device still reading IMAGE,
    and delete IMAGE (and an unfinished one). WORKSPACE itself, an empty folder then, stays for
    the caller. Raises, deleting nothing, when the file system is in use."""
    if not image.parent.is_dir():
        return
    with locked(image.parent):
        _remove(image, workspace)


def _remove(image: Path, workspace: Path) -> None:
    while mounted(image, workspace):  # each of stacked mounts, should there be any
        res = proc.run(umount_argv(workspace), timeout=120)
        if not res.ok:
            raise AmError(
                f"cannot unmount the workspace {workspace}: {res.brief()}",
                "a process still uses it (a shell in it?); end it, then try again",
            )
    partial = image.with_name(image.name + PARTIAL)
    for path in (image, partial):
        for lo in attached(path):
            if lo.dev in mounted_devices():
                raise AmError(
                    f"{path} is still mounted ({lo.device}) elsewhere than at {workspace}",
                    f"unmount {lo.device}, then try again",
                )
            detach(lo.device)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --- the other folder a capped agent writes ---------------------------------------------------

# The agent's relay sockets for --publish (am/backends/network.py) are the one host folder
# besides the workspace that a container agent may write: a tmpfs this small holds sockets and
# nothing more, and what it holds is memory, charged to the agent's own --memory.
SMALL_TMPFS = "size=256k,nr_inodes=256,mode=0700,nosuid,nodev,noexec"


def small_tmpfs_argv(folder: Path, uid: int, gid: int) -> list[str]:
    return [
        tool("mount"),
        "-t",
        "tmpfs",
        "-o",
        f"{SMALL_TMPFS},uid={uid},gid={gid}",
        "am-publish",
        str(folder),
    ]


def cap_folder(folder: Path, uid: int, gid: int) -> None:
    """Make FOLDER (empty) a tiny tmpfs that UID owns: room for sockets, not for files."""
    _run(small_tmpfs_argv(folder, uid, gid), f"mount a small tmpfs on {folder}")


def unmount_below(folder: Path) -> None:
    """Unmount whatever is mounted at or below FOLDER, deepest first (no call if nothing)."""
    top = os.path.realpath(folder)
    for point in sorted(
        (p for p in mount_points() if p == top or p.startswith(top + "/")), reverse=True
    ):
        _run([tool("umount"), point], f"unmount {point}")


# --- leftovers --------------------------------------------------------------------------------


@value_class
class Leftover:
    """A workspace file system left behind by an agent that is gone."""

    agent_id: str
    image: Path
    what: str  # orphan: an image with no record; loose: a loop device with no mount
    device: str | None = None  # the loose loop device


def leftovers(folder: Path, known: set[str], busy: set[str]) -> list[Leftover]:
    """Images in FOLDER of agents not in KNOWN, and loop devices reading an image of FOLDER
    that nothing mounts (a spawn killed between attaching and mounting). Agents in BUSY (a
    spawn still running) are left alone."""
    found = []
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        names = []
    all_loops = loops()
    mounts = mounted_devices()
    real = os.path.realpath(folder)
    for name in names:
        agent_id = name.removesuffix(PARTIAL).removesuffix(SUFFIX)
        if agent_id in busy or not name.endswith((SUFFIX, SUFFIX + PARTIAL)):
            continue
        if agent_id not in known:
            found.append(Leftover(agent_id, folder / name, "orphan"))
    for lo in all_loops:
        path = Path(lo.backing.removesuffix(" (deleted)"))
        if str(path.parent) != real or lo.dev in mounts:
            continue
        agent_id = path.name.removesuffix(PARTIAL).removesuffix(SUFFIX)
        if agent_id in busy:
            continue
        found.append(Leftover(agent_id, folder / path.name, "loose", lo.device))
    return found

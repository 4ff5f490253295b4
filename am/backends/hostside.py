"""What an agent's container is given from this host, for the engines and the network proxy
alike: mount arguments (host paths checked, engine volumes), and under a root am the uid the
agent runs as, its identity files and the ownership handed to it."""

import contextlib
import os
import re
from pathlib import Path

from am.errors import AmError

AGENT_HOME = "/home/agent"
# When am runs as root, agents run as this uid and gid, which no account of the host has: not
# the image's user 1000, which on a real host is somebody's account (issue 18). It lies in the
# range systemd leaves unused (1879048192-2147483647) and above the subordinate uids useradd
# hands out; 'am doctor' checks it, and AM_AGENT_UID chooses another.
AGENT_UID = 2_000_000_000
AGENT_UID_ENV = "AM_AGENT_UID"
UNSAFE_MOUNT_CHARS = re.compile(r"[,:\n\r\0]")


class Volume(str):
    """An engine volume's name where a mount's source is otherwise a host path."""


def workspace_volume(agent_id: str) -> Volume:
    """The volume that holds the workspace of agent AGENT_ID on a remote engine."""
    from am import ids

    return Volume(ids.volume_name(agent_id))


def check_mount_path(path: Path) -> str:
    """A host path that can be mounted without its text becoming extra mount options."""
    text = str(path)
    if UNSAFE_MOUNT_CHARS.search(text):
        raise AmError(
            f"cannot mount {text!r} into a container: it contains ',', ':' or a control character",
            "choose an AM_HOME without them",
        )
    return text


def mount_arg(source: Path | Volume, target: str, readonly: bool = False) -> str:
    if isinstance(source, Volume):
        # podman takes only 'ro' for a volume; docker takes both
        opts = f"type=volume,source={check_mount_path(source)},target={target}"
        return opts + (",ro" if readonly else "")
    opts = f"type=bind,source={check_mount_path(source)},target={target}"
    return opts + (",readonly" if readonly else "")


def host_paths(argv: list[str]) -> list[str]:
    """The host paths ARGV (a run command line) would mount into the container."""
    found = []
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag == "--mount" and "type=bind" in value.split(","):
            found += [o.partition("=")[2] for o in value.split(",") if o.startswith("source=")]
        elif flag in ("-v", "--volume") and value.startswith(("/", ".")):
            found.append(value.split(":")[0])
    return found


def agent_uid() -> int:
    """The uid (and gid) container agents run as when am runs as root."""
    text = os.environ.get(AGENT_UID_ENV, "")
    if not text:
        return AGENT_UID
    if not text.isdigit() or not 0 < int(text) < 2**31 - 1:
        raise AmError(
            f"invalid {AGENT_UID_ENV} {text!r}",
            "a uid no account uses, such as 2000000000 (the default)",
        )
    return int(text)


def _ranges(path: str) -> list[tuple[str, int, int]]:
    """(owner, first, count) of each line of /etc/subuid or /etc/subgid."""
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                owner, _, rest = line.strip().partition(":")
                first, _, count = rest.partition(":")
                if first.isdigit() and count.isdigit():
                    out.append((owner, int(first), int(count)))
    except OSError:
        pass
    return out


def uid_problem(uid: int) -> str | None:
    """Why UID must not be the agents' (an account, a group, a user's subordinate ids)."""
    import grp
    import pwd

    with contextlib.suppress(KeyError):
        return f"uid {uid} is the account {pwd.getpwuid(uid).pw_name!r}"
    with contextlib.suppress(KeyError):
        return f"gid {uid} is the group {grp.getgrgid(uid).gr_name!r}"
    for path in ("/etc/subuid", "/etc/subgid"):
        for owner, first, count in _ranges(path):
            if first <= uid < first + count:
                return f"{uid} is one of {owner}'s subordinate ids in {path}"
    return None


def check_agent_uid() -> int:
    """The agents' uid as root, or a clear error if it belongs to someone."""
    uid = agent_uid()
    problem = uid_problem(uid)
    if problem:
        raise AmError(
            f"agents would run as {problem}",
            f"set {AGENT_UID_ENV} to a uid no account uses; 'am doctor' checks it",
        )
    return uid


def identity_files(folder: Path, uid: int) -> list[tuple[Path, str, bool]]:
    """/etc/passwd and /etc/group naming the agent's uid ``agent`` (home /home/agent), for a
    root am's container agents: tools such as node's os.userInfo() fail for a uid with no
    entry. Written into FOLDER; returns their read-only mounts."""
    (folder / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        f"agent:x:{uid}:{uid}:agent:{AGENT_HOME}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (folder / "group").write_text(f"root:x:0:\nagent:x:{uid}:\nnogroup:x:65534:\n")
    for name in ("passwd", "group"):
        (folder / name).chmod(0o644)
    return [(folder / "passwd", "/etc/passwd", True), (folder / "group", "/etc/group", True)]


def grant_argv(top: Path, uid: int) -> list[str]:
    """The command that gives UID everything under TOP: with -P it follows no symbolic link,
    and with -h it changes a link itself, never what the link names."""
    return ["chown", "-R", "-P", "-h", "--", f"{uid}:{uid}", os.fspath(top)]


def start_grant(top: Path, uid: int):
    """Begin giving UID everything under TOP, beside the caller: on a checkout of 5,000 files
    it is 20 ms of the kernel's work, which a container spawn overlaps with the engine's create.
    ``finish_grant`` before anything runs as UID there."""
    from am import proc

    return proc.Background(grant_argv(top, uid))


def finish_grant(running, top: Path) -> None:
    """Wait for a ``start_grant`` of TOP; raise if it failed."""
    res = running.result()
    if not res.ok:
        raise AmError(f"cannot give the agent's uid its workspace {top}: {res.brief()}")


def grant(top: Path, uid: int) -> None:
    """Give UID everything under TOP, without following symbolic links."""
    finish_grant(start_grant(top, uid), top)

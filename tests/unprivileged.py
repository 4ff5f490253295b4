"""Running am as an ordinary user: a user the tests create (when they run as root), with am
installed where that user can read it, driven through ``runuser``.

Real users are not root: their workspaces and tmux server are their own, container engines
answer them only through the docker group, and podman runs rootless.
"""

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPS = ("sh", "psutil", "platformdirs", "tabulate")
PATH = "/usr/local/bin:/usr/bin:/bin"
GIT_ID = ("-c", "user.name=t", "-c", "user.email=t@example.invalid")


def root() -> None:
    if os.getuid() != 0:
        pytest.fail("this tier creates ordinary users and needs root: run 'sudo make test'")


def _locked(argv: list[str]) -> None:
    """useradd and friends, retried while another process holds /etc/passwd's lock."""
    for _ in range(50):
        res = subprocess.run(argv, capture_output=True, text=True)
        if res.returncode == 0:
            return
        if "lock" not in res.stderr:
            break
        time.sleep(0.1)
    raise AssertionError(f"{' '.join(argv)}: {res.stderr}")


class User:
    """An ordinary user of this machine, made for the tests and removed after them."""

    def __init__(self, groups: tuple[str, ...] = ()):
        root()
        self.name = f"amt{uuid.uuid4().hex[:8]}"
        _locked(
            [
                "useradd",
                "--create-home",
                "--shell",
                "/bin/sh",
                "--user-group",
                *(["--groups", ",".join(groups)] if groups else []),
                self.name,
            ]
        )
        entry = pwd.getpwnam(self.name)
        self.uid, self.home = entry.pw_uid, Path(entry.pw_dir)

    def join(self, group: str) -> None:
        _locked(["usermod", "--append", "--groups", group, self.name])

    def run(
        self,
        *argv,
        env: dict | None = None,
        check: bool = True,
        timeout: float = 300,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess:
        """ARGV as this user, with a login's groups and a clean environment."""
        base = {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": PATH,
            "LANG": "C.UTF-8",
        }
        res = subprocess.run(
            [
                "runuser",
                "-u",
                self.name,
                "--",
                "env",
                "-i",
                *[f"{k}={v}" for k, v in {**base, **(env or {})}.items()],
                *map(str, argv),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd or self.home,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"{' '.join(map(str, argv))} as {self.name} failed "
                f"({res.returncode}):\n{res.stdout}\n{res.stderr}"
            )
        return res

    def processes(self) -> list[int]:
        pids = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.stat(f"/proc/{pid}").st_uid == self.uid:
                    pids.append(int(pid))
            except FileNotFoundError:
                pass
        return pids

    def remove(self) -> None:
        """End this user's processes (its tmux server, rootless podman's pause process), by
        pid, then remove the user, its home and what it left in /tmp."""
        self.run("tmux", "kill-server", check=False)
        for _ in range(50):
            pids = self.processes()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        _locked(["userdel", "--remove", self.name])
        for left in Path("/tmp").glob(f"*-{self.uid}"):
            if left.is_dir() and left.stat().st_uid == self.uid:
                shutil.rmtree(left, ignore_errors=True)


class Install:
    """am installed for other users to run: a venv of a Python they may execute, holding a
    copy of am and its dependencies (what 'pip install' would put there)."""

    def __init__(self):
        self.top = Path(tempfile.mkdtemp(prefix="am-unpriv-", dir="/var/tmp"))
        self.top.chmod(0o755)
        python = self.python()
        subprocess.run([python, "-m", "venv", "--without-pip", str(self.top / "venv")], check=True)
        site = next((self.top / "venv" / "lib").glob("python3*/site-packages"))
        shutil.copytree(REPO / "am", site / "am", ignore=shutil.ignore_patterns("__pycache__"))
        for name in DEPS:
            module = Path(__import__(name).__file__)
            if module.name == "__init__.py":
                shutil.copytree(
                    module.parent,
                    site / module.parent.name,
                    ignore=shutil.ignore_patterns("__pycache__"),
                )
            else:
                shutil.copy2(module, site / module.name)
        for folder, dirs, files in os.walk(self.top):
            for n in dirs + files:
                p = Path(folder) / n
                if not p.is_symlink():
                    p.chmod(p.stat().st_mode | 0o555 if p.is_dir() else p.stat().st_mode | 0o444)
        self.am = self.top / "venv" / "bin" / "am"
        self.am.write_text(
            f"#!{self.top / 'venv' / 'bin' / 'python'}\n"
            "import sys\nfrom am.main import main\nsys.exit(main())\n"
        )
        self.am.chmod(0o755)

    @staticmethod
    def python() -> str:
        """A python3 of the running version that every user may execute (the test's own one
        may live in root's home)."""
        want = f"python{sys.version_info.major}.{sys.version_info.minor}"
        for candidate in (os.path.realpath(sys.executable), f"/usr/bin/{want}"):
            if os.path.basename(candidate) == want and _world_executable(Path(candidate)):
                return candidate
        pytest.fail(
            f"no {want} that an ordinary user may run: install python3 and "
            "python3-venv (sudo make setup)"
        )

    def remove(self) -> None:
        shutil.rmtree(self.top, ignore_errors=True)


def _world_executable(path: Path) -> bool:
    if not path.is_file() or not path.stat().st_mode & 0o001:
        return False
    return all(p.stat().st_mode & 0o001 for p in path.parents)


class UserAm:
    """The am CLI run by USER, with an AM_HOME in its home."""

    def __init__(self, user: User, install: Install, name: str):
        self.user, self.install = user, install
        self.home = user.home / name
        self.env = {"AM_HOME": str(self.home)}

    def __call__(self, *args, check=True, env=None, timeout=300):
        return self.user.run(
            self.install.am, *args, env={**self.env, **(env or {})}, check=check, timeout=timeout
        )

    def spawn(self, *args, **kw) -> str:
        return self("spawn", *args, **kw).stdout.strip().splitlines()[-1]

    def info(self, agent: str) -> dict:
        return json.loads(self("info", agent, "--json").stdout)

    def repo(self) -> Path:
        """A small repository of the user's own."""
        path = self.user.home / f"src-{uuid.uuid4().hex[:6]}"
        self.user.run("git", "init", "-q", "-b", "main", path)
        self.user.run("sh", "-c", "echo hello > README", cwd=path)
        self.user.run("git", *GIT_ID, "-C", path, "add", "README")
        self.user.run("git", *GIT_ID, "-C", path, "commit", "-qm", "first")
        return path

    def wait_log(self, agent: str, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            out = self("logs", agent).stdout
            if text in out:
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the log of {agent}:\n{out[-2000:]}")
            time.sleep(0.2)


def rootless_podman_enforces_limits(uid: int) -> bool:
    """Whether this host can give USER's rootless containers memory, CPU and process limits,
    judged without podman: a pure cgroup v2 host whose systemd delegates those controllers to
    the user's service (cgroup v1, or no delegation, cannot)."""
    if (
        subprocess.run(
            ["stat", "-f", "-c", "%T", "/sys/fs/cgroup"], capture_output=True, text=True
        ).stdout.strip()
        != "cgroup2fs"
    ):
        return False
    service = Path(f"/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service")
    try:
        have = (service / "cgroup.controllers").read_text().split()
    except OSError:
        return False
    return all(c in have for c in ("memory", "cpu", "pids"))


def memory_limit_file() -> str:
    """Where a container reads its own memory limit: cgroup v2's file, else v1's."""
    v2 = (
        subprocess.run(
            ["stat", "-f", "-c", "%T", "/sys/fs/cgroup"], capture_output=True, text=True
        ).stdout.strip()
        == "cgroup2fs"
    )
    return "/sys/fs/cgroup/memory.max" if v2 else "/sys/fs/cgroup/memory/memory.limit_in_bytes"


def mini_rootfs(user: User, *programs: str) -> Path:
    """A root file system of the host's PROGRAMS and their libraries, the user's own (a
    container of it needs no image)."""
    top = user.home / f"rootfs-{uuid.uuid4().hex[:6]}"
    for program in programs:
        libs = subprocess.run(["ldd", program], capture_output=True, text=True).stdout
        for f in [program, *[w for w in libs.split() if w.startswith("/")]]:
            (top / f.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, top / f.lstrip("/"))
    subprocess.run(["chown", "-R", f"{user.name}:", str(top)], check=True)
    return top

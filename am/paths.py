"""Where am keeps things: everything under AM_HOME when it is set, else the platform's dirs.

Everything am keeps is private to its user: am runs with umask 077 (``private_umask``), so the
files it and the git it runs create are 0600, and each of its folders is 0700 (``private_dir``,
which also tightens a folder an older am made). Other local users cannot read an agent's
output, workspace, snapshots or state.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False  # typing's own costs am list 3 ms: the annotations' Path, unimported
if TYPE_CHECKING:
    from pathlib import Path


def _path(text: str) -> Path:
    from pathlib import Path  # here: ``am list`` reads its few files by name, as text

    return Path(text)


def _join(folder: str, name: str) -> str:
    return folder + name if folder.endswith("/") else f"{folder}/{name}"


class Layout:
    """The folders and files of one am installation (one AM_HOME). A plain class: ``am list``
    needs it, and ``dataclasses`` would cost more to import than the rest of its start. The
    folders are kept as text and given as Paths when asked for: pathlib's import alone costs
    ``am list`` a tenth of its time, and list reads its files through the ``*_text`` names."""

    __slots__ = ("root_text", "state_text", "workspaces_text", "data_text", "config_text")

    def __init__(self, root, state_dir, workspaces, data_dir, config_dir):
        self.root_text = os.fspath(root)  # identifies this installation: the am.home label
        self.state_text = os.fspath(state_dir)
        self.workspaces_text = os.fspath(workspaces)
        self.data_text = os.fspath(data_dir)
        self.config_text = os.fspath(config_dir)

    def __eq__(self, other) -> bool:
        return isinstance(other, Layout) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__
        )

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, k) for k in self.__slots__))

    def __repr__(self) -> str:
        return f"Layout(root={self.root!r})"

    @property
    def root(self) -> Path:
        return _path(self.root_text)

    @property
    def state_dir(self) -> Path:
        return _path(self.state_text)

    @property
    def workspaces(self) -> Path:
        return _path(self.workspaces_text)

    @property
    def data_dir(self) -> Path:
        return _path(self.data_text)

    @property
    def config_dir(self) -> Path:
        return _path(self.config_text)

    @property
    def run_text(self) -> str:
        return _join(self.state_text, "run")

    @property
    def state_file_text(self) -> str:
        return _join(self.state_text, "state.json")

    @property
    def lock_file_text(self) -> str:
        return _join(self.state_text, "state.lock")

    @property
    def config_file_text(self) -> str:
        return _join(self.config_text, "config.toml")

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "state.lock"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run(self) -> Path:
        return self.state_dir / "run"

    @property
    def snapshots(self) -> Path:
        return self.data_dir / "snapshots"

    @property
    def cache(self) -> Path:
        return self.data_dir / "cache"

    @property
    def disks(self) -> Path:
        """The file systems of --disk workspaces (am/disk.py)."""
        return self.data_dir / "disks"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    def log_file(self, agent_id: str) -> Path:
        return self.logs / f"{agent_id}.log"

    def exit_file(self, agent_id: str) -> Path:
        return self.run / f"{agent_id}.exit.json"

    def health_file(self, agent_id: str) -> Path:
        """What the supervisor saw while the agent ran: an OOM kill, the pids limit hit."""
        return self.run / f"{agent_id}.health.json"

    def gate_file(self, agent_id: str) -> Path:
        """The FIFO a gated container agent's command waits on until am's keeper holds its
        terminal (``am/gate.py``)."""
        return self.run / f"{agent_id}.gate"

    def guest_file(self, agent_id: str) -> Path:
        """A gVisor agent's task count inside its sandbox, kept by the supervisor."""
        return self.run / f"{agent_id}.guest.json"

    def workspace(self, agent_id: str) -> Path:
        return self.workspaces / agent_id

    def disk_image(self, agent_id: str) -> Path:
        """The file system an agent's workspace is mounted from, if it has --disk."""
        return self.disks / f"{agent_id}.ext4"


def layout() -> Layout:
    """The layout for the current environment (AM_HOME or the platform defaults)."""
    home = os.environ.get("AM_HOME")
    if home:
        if not (
            home.startswith("/") and not home.startswith("//") and os.path.normpath(home) == home
        ):
            try:
                home = str(_path(home).expanduser().absolute())  # as pathlib writes it, always
            except RuntimeError:  # ~USER of no such user
                from am.errors import AmError

                raise AmError(
                    f"AM_HOME={home!r}: its ~ names no user of this system",
                    "set AM_HOME to a folder's full path",
                ) from None
        # HOME is now what str(Path(HOME).expanduser().absolute()) gives, pathlib or not.
        return Layout(home, _join(home, "state"), _join(home, "agents"), _join(home, "data"), home)
    from pathlib import Path

    import platformdirs

    state = Path(platformdirs.user_state_dir("am"))
    return Layout(
        root=state,
        state_dir=state,
        workspaces=Path.home() / ".agents",
        data_dir=Path(platformdirs.user_data_dir("am")),
        config_dir=Path(platformdirs.user_config_dir("am")),
    )


PRIVATE_UMASK = 0o077
_user_umask: int | None = None  # the caller's own, for what runs as the user (tmux, its agents)


def private_umask() -> None:
    """From here on, what this process and its children create is for the user alone."""
    global _user_umask
    old = os.umask(PRIVATE_UMASK)
    if _user_umask is None:
        _user_umask = old


class umask:
    """A block in which children create files with MASK (am itself stays private). A class,
    not a ``contextlib`` generator: am list starts its tmux call in one, and imports no
    contextlib."""

    def __init__(self, mask: int):
        self.mask = mask

    def __enter__(self) -> None:
        self.old = os.umask(self.mask)

    def __exit__(self, *exc) -> None:
        os.umask(self.old)


def user_umask() -> int:
    """The umask the user ran am with (the current one if am never changed it)."""
    if _user_umask is not None:
        return _user_umask
    current = os.umask(0)
    os.umask(current)
    return current


def private_dir(path: Path) -> Path:
    """PATH as a folder only its owner may enter (0700): made so, or tightened if it is ours."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != 0o700:
            path.chmod(0o700)
    except OSError as e:
        from am.errors import AmError

        raise AmError(
            f"cannot make the folder {path}: {e.strerror or e}",
            "am keeps its state and workspaces under AM_HOME: set it to a folder you can write",
        ) from None
    return path

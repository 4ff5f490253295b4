"""The state file: the only module that reads or writes it.

Writers take an exclusive flock on a separate lock file, write the whole state to a temporary
file in the same folder, fsync it and ``os.replace`` it over the old one, so a reader (which
takes no lock) sees either the old or the new file, never a torn one.
"""

from __future__ import annotations

import os

from am import files, jsonread
from am.errors import AmError

TYPE_CHECKING = False  # collections.abc imports all of collections: am list imports none
if TYPE_CHECKING:
    import contextlib
    from collections.abc import Iterator

FORMAT = 1


class Store:
    """Agent records keyed by id, persisted in one JSON file (PATH and LOCK_PATH: Paths or
    text; a read needs no pathlib)."""

    def __init__(self, path: files.StrPath, lock_path: files.StrPath):
        self.path = path
        self.lock_path = lock_path

    @property
    def folder(self):
        from pathlib import Path

        return Path(self.path).parent

    def agents(self) -> dict[str, dict]:
        """A consistent read of all records, without locking."""
        return self._load()["agents"]

    def get(self, agent_id: str, agents: dict[str, dict] | None = None) -> dict:
        """One record (of AGENTS, if read already), or a clear error for an unknown id."""
        agents = self.agents() if agents is None else agents
        if agent_id not in agents:
            raise AmError(f"no such agent: {agent_id!r}", "see 'am list' for the agents there are")
        return agents[agent_id]

    def transaction(self) -> contextlib.AbstractContextManager[dict[str, dict]]:
        """Read-modify-write under the lock; the change is written only if the block succeeds."""
        import contextlib  # here: am list reads the file and imports no contextlib

        return contextlib.contextmanager(self._transaction)()

    def _transaction(self) -> Iterator[dict[str, dict]]:
        from am import paths

        paths.private_dir(self.folder)
        with files.locked(self.lock_path):
            raw = self._read()
            data = self._parse(raw)
            before = raw or encode(data).encode()
            yield data["agents"]
            # Written when its text changed: one encoding, which the write needs anyway.
            text = encode(data)
            if text.encode() != before:
                self._write(text)
            self._remove_stale_temps()

    def update(self, agent_id: str, **fields) -> dict:
        """Set fields of one record under the lock and return the new record."""
        with self.transaction() as agents:
            if agent_id not in agents:
                raise AmError(f"no such agent: {agent_id!r}")
            agents[agent_id].update(fields)
            return dict(agents[agent_id])

    def remove(self, agent_id: str) -> None:
        with self.transaction() as agents:
            agents.pop(agent_id, None)

    def _load(self) -> dict:
        return self._parse(self._read())

    def _read(self) -> bytes | None:
        """The state file's bytes; None if there is none yet."""
        import stat

        try:
            # Never waiting on a FIFO planted as the file: every command reads it.
            with open(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise self._corrupt("it is not a regular file")
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise AmError(f"cannot read state file {self.path}: {e.strerror}") from None

    def _parse(self, raw: bytes | None) -> dict:
        if raw is None:
            return {"format": FORMAT, "agents": {}}
        try:
            data = jsonread.loads(raw)
        except ValueError as e:  # not UTF-8, not JSON, nested too deeply
            raise self._corrupt(f"not valid JSON: {e}") from None
        if not isinstance(data, dict) or not isinstance(data.get("agents"), dict):
            raise self._corrupt("it has no 'agents' object")
        for key, record in data["agents"].items():
            if not isinstance(record, dict):
                raise self._corrupt("an agent record is not an object")
            # Every command keys its work by the record's id: one that is not its own key
            # (a list, a number, another agent's) would be read as a different agent.
            if record.get("id") != key:
                raise self._corrupt(f"the record of agent {key!r} has the id {record.get('id')!r}")
        return data

    def _corrupt(self, why: str) -> AmError:
        return AmError(
            f"state file {self.path} is corrupt ({why})",
            "am will not overwrite it; repair it or move it aside to start with no agents",
        )

    def _remove_stale_temps(self) -> None:
        """Temporary files left by writers killed mid-write (only a lock holder writes one)."""
        for stale in self.folder.glob(".state.*.tmp"):
            try:
                stale.unlink()
            except FileNotFoundError:
                pass

    def _write(self, text: str) -> None:
        # One writer at a time (the lock holder), so a name of its own pid cannot collide.
        files.write_atomic(
            self.path,
            text,
            sync=True,
            tmp=self.folder / f".state.{os.getpid()}.tmp",
        )


def encode(data: dict) -> str:
    """The state file's text: JSON, keys sorted, one agent record a line. Every spawn writes
    it twice under the lock; ``json.dumps(indent=...)`` takes the pure-Python encoder, about
    4 ms a write for 100 agents and 22 ms for 500, where each line through the C one takes a
    third of that."""
    import json  # here: a read needs no encoder (am list imports no json)

    agents = data.get("agents")
    if isinstance(agents, dict) and not all(isinstance(k, str) for k in agents):
        return json.dumps(data, indent=1, sort_keys=True) + "\n"  # as json writes such keys
    enc = json.JSONEncoder(sort_keys=True).encode
    parts = []
    for key in sorted(data):
        value = data[key]
        if key == "agents" and isinstance(value, dict) and value:
            lines = ",\n".join(f"{enc(i)}: {enc(value[i])}" for i in sorted(value))
            parts.append(f'"agents": {{\n{lines}\n}}')
        else:
            parts.append(f"{enc(key)}: {enc(value)}")
    return "{" + ", ".join(parts) + "}\n"


def open_store(layout) -> Store:
    return Store(layout.state_file_text, layout.lock_file_text)

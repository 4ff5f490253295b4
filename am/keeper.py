"""The keeper: one process per AM_HOME that looks after every running container agent.

A container agent runs detached, with its own terminal in the engine. The keeper holds one
stream of each (``am.engineapi``), attached before the container starts: it writes the agent's
output to the host log, reads no faster than ``OUTPUT_RATE`` so that a flooding agent is slowed
at its own terminal instead of costing the host, rotates the log at ``logs.max_size``, types
``am send``'s text, and watches the container's cgroups for OOM kills and the process limit.
When the stream ends it records the container's exit code and OOM state and removes the
container, as the per-agent supervisor did. One process for all agents: am's memory per agent
is a share of it (docs/performance.md).

Started on demand (``ensure``) by whatever needs it, it holds an exclusive ``flock`` on
``state/run/keeper.lock`` while it lives, so there is never more than one, and leaves when no
agent has run for ``IDLE_EXIT`` seconds. Killed with SIGKILL, it loses nothing that matters:
containers are never auto-removed, so the next keeper (any am command that finds none starts
one) reads each one's state again from the engine and carries on.

Clients talk to it over ``state/run/keeper.sock``: one JSON line in, one JSON line out.
"""

import contextlib
import fcntl
import json
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

from am import clock
from am.cgroupstats import MARK_EVERY, Cgroups
from am.keepersock import address
from am.launchspec import LaunchSpec
from am.proc import stat_fields
from am.runfiles import cap_appended, rotate_written, write_exit

OUTPUT_RATE = 1 << 20  # bytes per second one agent's terminal output is read at, at most
BURST = 256 << 10  # bytes read at once before the rate applies
IDLE_EXIT = 30.0  # seconds without agents after which the keeper leaves (AM_KEEPER_IDLE)
TICK = MARK_EVERY  # seconds between looks at network logs' sizes and marks of CPU time
PASTE_ON, PASTE_OFF = b"\x1b[?2004h", b"\x1b[?2004l"
CONTAINER_ID = re.compile(r"[0-9a-f]{64}")  # what docker and podman 'create' print
START_WINDOW = 0.1  # seconds after a gated command's release in which an end is the spawn's
# What a container runs on its way to the agent's program: its init, the gate, the shell of a
# --cmd. Any other process below the container's first has had its program found and started.
ON_THE_WAY = frozenset({"sh", "dash", "bash", "podman-init", "catatonit", "docker-init", "tini"})
TERM_SIZE = (50, 200)  # rows, columns of a new agent's terminal (as tmux agents get)


def runs_a_program(pid: int, most: int = 64) -> bool:
    """Whether the tree below PID (a container's first process, included) holds a process
    that is none of ``ON_THE_WAY``: the agent's command was found and its program runs. A
    command that cannot run (not found, a shell's syntax error, ``exit 3``) never gets here."""
    todo, looked = [pid], 0
    while todo and looked < most:  # the agent makes the tree: bounded
        p = todo.pop()
        looked += 1
        try:
            name = Path(f"/proc/{p}/comm").read_bytes().decode("ascii", "replace")
            if name.removesuffix("\n") not in ON_THE_WAY:
                return True
            # Shells and inits are single-threaded: their one task's children are theirs.
            todo += [int(k) for k in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):
            continue
    return False


# -- the keeper itself -------------------------------------------------------------------------


def render(fmt: str, doc: dict) -> str:
    """FMT, a docker ``--format`` template of plain fields (``{{.State.Pid}}``), filled from
    the inspect document DOC as the CLI fills it (booleans as true/false)."""

    def field(m) -> str:
        value = doc
        for key in m.group(1).split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, bool):
            return str(value).lower()
        return "<no value>" if value is None else str(value)

    return re.sub(r"\{\{\s*\.([\w.]+)\s*\}\}", field, fmt)


def typed(text: str, enter: bool, paste: bool) -> bytes:
    """The bytes a terminal gets when TEXT is pasted (newlines as Enter, as tmux pastes;
    bracketed when the program turned PASTE mode on) and Enter pressed."""
    data = text.replace("\n", "\r").encode()
    if paste and data:
        data = b"\x1b[200~" + data + b"\x1b[201~"
    return data + (b"\r" if enter else b"")


class Watch:
    """One container agent: its stream, its log, its cgroup watch, its end."""

    def __init__(self, keeper: "Keeper", agent_id: str, spec: LaunchSpec):
        self.keeper = keeper
        self.id = agent_id
        self.spec = spec
        c = spec.container
        self.container = c
        self.engine, self.name = c.engine, c.name
        self.env = spec.env or None
        self.api = c.api  # an engine API endpoint; None: a local podman's conmon
        self.limit = c.log_max
        self.stream = None
        self.attached = threading.Event()
        self.error = None
        self.paste = False
        self.tail = b""
        self.lock = threading.Lock()
        self.done = False
        self.conmon = None
        # Set once the spawn that asked for this watch has started the container (or given
        # up): until then the container is never removed, even if it has already ended, so
        # that the spawn's own 'start' never finds it gone (an agent that exits at once).
        self.launched = threading.Event()
        self.abandoned = False
        self.resumed = False  # a keeper found it running: output from meanwhile is not logged
        self.running_seen = False
        self.cgroups = None  # its cgroups once it runs on this host (am.cgroupstats): am status
        # A local podman's container folder, pid and id, from the watch's first inspect (its
        # pid is the same from 'init' on): each podman inspect costs tens of ms of CPU.
        self.static = self.pid = self.cid = self.born = None
        # The container's id, from the first look: every later call names it, never the
        # name, which a container made after 'am stop' (an 'am start', or anyone) reuses.
        self.ref: str | None = None
        self.superseded = False  # a later start of the agent has its own watch
        # Held while it is told it is superseded, and while it writes the agent's end: once
        # superseded it writes nothing (Keeper.watch).
        self.ending = threading.Lock()
        self.released: float | None = None  # when a gated command was let go (am/gate.py)
        self.stream_ended = threading.Event()
        self.gate_lock = threading.Lock()
        self.holding = False

    # -- engine ---------------------------------------------------------------------------

    def cli(self, *args, timeout: float = 60):
        from am import proc

        try:
            return proc.run([self.engine, *args], env=self.env, timeout=timeout)
        except proc.NotFound as e:
            return proc.Result(127, "", e.message)

    def inspect_result(self, fmt: str):
        """``ENGINE inspect --format FMT``'s result; docker's API answers instead of a client
        process where the keeper speaks it (the same fields, rendered as the CLI would)."""
        if self.api and self.engine == "docker":
            from am import engineapi, proc

            try:
                doc = engineapi.inspect(self.endpoint(), self.target)
            except (OSError, ValueError):
                doc = False
            if doc is None:
                return proc.Result(1, "", f"Error: No such object: {self.target}")
            if doc:
                return proc.Result(0, render(fmt, doc), "")
        return self.cli("inspect", "--format", fmt, self.target)

    @property
    def target(self) -> str:
        """What engine calls name: the container's id once seen, its name before."""
        return self.ref or self.name

    def inspect(self, fmt: str) -> str | None:
        res = self.inspect_result(fmt)
        return res.out.strip() if res.ok else None

    def first_look(self) -> str | None:
        """The container's state (None: no such container); a local podman's folder, pid
        and id too, in the same call."""
        if self.api:
            got = self.inspect("{{.State.Status}}\t{{.Id}}")
            if got is None:
                return None
            state, _, cid = got.partition("\t")
            self.ref = cid.strip() or None
            return state
        if self.container.gated and self.quick_look():
            return "running"
        got = self.inspect(
            "{{.State.Status}}\t{{.StaticDir}}\t{{.State.Pid}}\t{{.Id}}\t{{.PidFile}}"
        )
        if got is None:
            return None
        state, static, pid, cid, pidfile = (got.split("\t") + ["", "", "", ""])[:5]
        self.static = static or None
        self.ref = cid or None
        if pid.isdigit() and pid != "0" and cid:
            self.seen(int(pid), cid)
            self.keeper.learn_paths(self.env, cid, static, pidfile)
        return state

    def quick_look(self) -> bool:
        """A gated container its spawn just ran (its id known), seen without an engine call:
        its folders are where podman put the last container's, with this id; its pid from
        conmon's pid file, running and in a cgroup that names the container. False (ask the
        engine) when anything of that does not hold."""
        paths = self.keeper.paths_of(self.env, self.ref) if self.ref else None
        if not paths:
            return False
        static, pidfile = paths
        try:
            text = Path(pidfile).read_text()
        except OSError:
            return False
        if not text.strip().isdigit() or not (Path(static) / "attach").exists():
            return False
        self.seen(int(text), self.ref)
        if self.alive() is not True:
            self.pid = self.cid = self.born = None
            return False
        self.static = static
        return True

    def seen(self, pid: int, cid: str) -> None:
        """The container's first process, as its engine just named it, and when it started:
        a pid reused later is another process, with another start time."""
        self.pid, self.cid, self.born = pid, cid, stat_fields(pid)[19:20]

    def alive(self) -> bool | None:
        """Whether the container's first process still runs, seen in /proc (no engine call);
        None when that cannot be told here."""
        if not self.pid or not self.cid:
            return None
        stat = stat_fields(self.pid)
        if not stat:
            return False  # no such process (any later one with its pid has a /proc entry)
        try:
            cgroup = Path(f"/proc/{self.pid}/cgroup").read_text()
        except OSError:
            return False
        # The same start time and a cgroup that names the container: not another process
        # with the pid since (one the agent made could name any cgroup below its own).
        if stat[19:20] != self.born or self.cid not in cgroup:
            return None
        return stat[0] not in ("Z", "X")

    def settle(self, deadline: float, early: bool) -> None:
        """Wait until the agent's stream ends or the monotonic DEADLINE; with EARLY (the gate
        execs the agent's own command, ``ContainerSpec.direct``), also until its program runs
        (``runs_a_program``), polled, as /proc tells no one of an exec."""
        pause = 0.001
        while not self.stream_ended.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or (early and self.program_runs()):
                return
            self.stream_ended.wait(min(pause if early else left, left))
            pause = min(pause * 2, 0.008)

    def program_runs(self) -> bool:
        pid = self.pid
        try:
            return pid is not None and self.alive() is True and runs_a_program(pid)
        except Exception:  # what the agent's processes show is theirs: the window decides
            return False

    def endpoint(self):
        from am import engineapi

        return engineapi.Endpoint.from_json(self.api)

    def open_stream(self) -> bytes:
        """Attach to the container's terminal; the bytes already read."""
        if self.api:
            from am import engineapi

            self.stream, first = engineapi.attach(self.endpoint(), self.target)
            return first
        from am import engineapi

        static = self.static or self.inspect("{{.StaticDir}}")
        if not static:
            raise OSError(f"no container {self.name}")
        self.conmon = engineapi.Conmon(static)
        self.stream = self.conmon.attach()
        return b""

    def resize(self, rows: int, cols: int) -> None:
        from am import engineapi

        if self.api:
            engineapi.resize(self.endpoint(), self.target, rows, cols)
        elif self.conmon:
            self.conmon.resize(rows, cols)

    # -- the stream -------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # never let one agent's trouble end the keeper
            print(f"{clock.iso()} {self.id}: {e!r}", file=sys.stderr, flush=True)
            if not self.attached.is_set():
                self.error = f"am's keeper could not hold {self.name}'s terminal: {e}"
        finally:
            if not self.attached.is_set() and not self.error:
                self.error = f"am's keeper found no container {self.name}"
            self.attached.set()
            self.keeper.forget(self)

    def _run(self) -> None:
        state = self.first_look()
        if state is None:
            return  # removed (am stop, am rm): nothing to record
        if state in ("exited", "dead", "stopped"):
            self.attached.set()  # the spawn's 'started' lets finish() go on
            self.finish()
            return
        try:
            first = self.open_stream()
        except OSError as e:
            self.error = f"cannot attach to {self.name}: {e}"
            self.attached.set()
            if self.inspect("{{.State.Status}}") in ("exited", "dead", "stopped"):
                self.finish()
            return
        log = open(self.spec.log, "ab", buffering=0)
        held = self.container.gated and self.gate.exists()  # its command has not run yet
        if state == "running":
            if self.resumed and not held:
                # Nobody held the terminal while no keeper ran: say so where it shows.
                log.write(
                    f"\r\n[am: {clock.iso()}: am's keeper was not running; output "
                    "since it stopped is not in this log]\r\n".encode()
                )
            with contextlib.suppress(Exception):
                self.on_running()
        self.holding = True  # its terminal is read from here on: a gate may be released
        self.attached.set()
        try:
            self.pump(first, log)
        finally:
            oom = getattr(self, "oom", None)  # first: the stream ends as the container does
            if oom is not None:
                with contextlib.suppress(Exception):
                    oom.last_look()
            self.stream_ended.set()
            log.close()
            with contextlib.suppress(OSError):
                self.stream.close()
        # The stream ends when the container does (or the engine went away): make sure.
        while (
            self.inspect("{{.State.Status}}") == "running"
            and not self.keeper.stopping
            and not self.superseded
        ):
            time.sleep(1)
            try:
                first = self.open_stream()
            except OSError:
                continue
            log = open(self.spec.log, "ab", buffering=0)
            try:
                self.pump(first, log)
            finally:
                log.close()
        if not self.keeper.stopping:
            self.finish()

    @property
    def gate(self) -> Path:
        return self.keeper.layout.gate_file(self.id)

    def release(self, fifo: tuple[int, int]) -> bool:
        """Let a gated container's command go, now that its terminal is held here; asked by
        the spawn that made it (a container whose spawn died stays held, never run, as a
        created one stayed). Only the FIFO FIFO (st_dev, st_ino) that spawn made, only while
        this watch holds the terminal of the container it runs."""
        from am import gate

        def waiting() -> bool:
            return (
                self.holding
                and not self.done
                and not self.superseded
                and not self.keeper.stopping
                and self.alive() is not False
            )

        with self.gate_lock:
            if self.released is not None:
                return True
            if not waiting() or not gate.release(self.gate, running=waiting, same=fifo):
                return False
            self.released = time.monotonic()
            return True

    def on_running(self) -> None:
        """Once the container runs: its terminal's size, and the watch of its cgroups."""
        with self.lock:
            if self.running_seen:
                return
            self.running_seen = True
        self.resize(*TERM_SIZE)
        self.watch_cgroups()

    def pump(self, first: bytes, log) -> None:
        tokens, last = float(BURST), time.monotonic()
        data = first
        packets = not self.api  # conmon: one packet per read, its first byte the stream
        while True:
            if data:
                self.see(data, log)
                tokens -= len(data)
                t = time.monotonic()
                tokens = min(BURST, tokens + (t - last) * OUTPUT_RATE)
                last = t
                if tokens < 0:
                    # Read no more for now: the engine stops reading the terminal, and the
                    # agent's writes wait, inside its own CPU limit.
                    time.sleep(-tokens / OUTPUT_RATE)
            try:
                chunk = self.stream.recv(65536 if not packets else 8193)
            except OSError:
                return
            if not chunk:
                return
            data = chunk[1:] if packets else chunk

    def see(self, data: bytes, log) -> None:
        """Output: into the log, and what it says of the terminal."""
        seen = self.tail + data
        on, off = seen.rfind(PASTE_ON), seen.rfind(PASTE_OFF)
        if on >= 0 or off >= 0:
            self.paste = on > off
        self.tail = seen[-8:]
        if self.limit and log.tell() + len(data) > self.limit:
            self.rotate(log)
        log.write(data)

    def rotate(self, log) -> None:
        fd = rotate_written(self.spec.log, self.limit)
        os.dup2(fd, log.fileno())
        os.close(fd)

    def send(self, text: str, enter: bool) -> None:
        """Type TEXT (and Enter) into the terminal, as tmux pastes: newlines as Enter, and
        bracketed if the program asked for it."""
        data = typed(text, enter, self.paste)
        with self.lock:
            if self.stream is None:
                raise OSError("not attached")
            if self.api:
                self.stream.sendall(data)
            else:
                for i in range(0, len(data), 4096):
                    self.stream.send(data[i : i + 4096])

    # -- cgroups and the end ------------------------------------------------------------------

    def watch_cgroups(self) -> None:
        from am import hostos
        from am.oomwatch import OomWatch
        from am.runfiles import write_guest, write_health

        self.oom = OomWatch(write_health(self.spec.health_file))
        if not hostos.local_engine(self.api):
            return
        if self.pid and self.cid:
            fields = [str(self.pid), self.cid]
        else:
            fields = (self.inspect("{{.State.Pid}} {{.Id}}") or "").split()
        if len(fields) != 2 or not fields[0].isdigit():
            return
        # Only cgroups that name the container: the pid may be another process's here.
        cgroups = Cgroups.of(int(fields[0]), fields[1])
        if cgroups is None or not self.oom.start(cgroups.memory, cgroups.pids):
            return
        if (self.pid, self.cid) != (int(fields[0]), fields[1]):
            self.seen(int(fields[0]), fields[1])
        # Read as the pid's, then checked to be still the container's first process.
        self.cgroups = cgroups if self.alive() is True else None
        c = self.container
        if c.isolation == "gvisor" and c.pids_limit:
            self.oom.start_guest(
                int(fields[0]),
                fields[1],
                c.pids_limit,
                write_guest(self.spec.guest_file),
            )

    def finish(self) -> None:
        """The container ended: record its exit code and OOM state, then remove it (and a
        limited agent's proxy and, unused, its outside network)."""
        if self.done or self.superseded:
            return
        self.done = True
        self.launched.wait(330)  # the spawn's own start call, at most its timeout
        if self.abandoned:
            return  # the spawn failed and undoes what it made
        c = self.container
        res = self.inspect_result("{{.State.ExitCode}} {{.State.OOMKilled}} {{.State.Status}}")
        if not res.ok or len(res.out.split()) != 3:
            gone = self.inspect_result("{{.Id}}")
            if "no such" in gone.err.lower() and self.keeper.still_running(self.id):
                # Removed behind am's back (not by am stop or rm, which mark the record
                # first): it ended, how is unknown; never 'running' forever. (Unless a new
                # start runs now: its record says running too.)
                self.record_end(
                    {
                        "exit_code": None,
                        "oom_killed": False,
                        "vanished": True,
                        "finished": clock.iso(),
                    }
                )
            return  # already removed (am stop, am rm): nothing to record
        code, oom, status = res.out.split()
        if status in ("created", "running"):
            return
        marker = Path(self.spec.cwd or "/nonexistent") / "oom"
        killed = getattr(self, "oom", None)
        result = {
            "exit_code": int(code) if code.lstrip("-").isdigit() else None,
            "oom_killed": oom.lower() == "true"
            or marker.exists()
            or bool(killed and killed.killed),
        }
        self.cli("rm", "--force", self.target)
        # A later start's container, proxy and end are its own watch's (a name is reused).
        if c.proxy and not self.superseded:
            self.cli("rm", "--force", c.proxy)
        if c.egress and not self.superseded:
            self.cli("network", "rm", c.egress)
        result["finished"] = clock.iso()
        started = self.spec.started_at
        if started:
            result["seconds"] = round(time.time() - started, 3)
        self.record_end(result)

    def record_end(self, result: dict) -> None:
        """Write the agent's end RESULT, unless a later start has superseded this watch."""
        with self.ending:
            if not self.superseded:
                write_exit(self.spec.exit_file, result)


class Keeper:
    def __init__(self, layout):
        self.layout = layout
        self.watches: dict[str, Watch] = {}
        self.lock = threading.Lock()
        self.last_busy = time.monotonic()
        self.stopping = False
        self.serving = 0  # requests accepted and not yet answered
        self.podman_paths: dict[str, tuple[list[str], list[str]]] = {}  # learn_paths
        try:
            self.idle_exit = float(os.environ.get("AM_KEEPER_IDLE") or IDLE_EXIT)
        except ValueError:
            self.idle_exit = IDLE_EXIT

    def learn_paths(self, env: dict | None, cid: str, static: str, pidfile: str) -> None:
        """Where a local podman (with ENV) keeps a container's folder and pid file, learnt
        from one container's inspect: both name its id once."""
        if CONTAINER_ID.fullmatch(cid) and static.count(cid) == 1 and pidfile.count(cid) == 1:
            self.podman_paths[json.dumps(env, sort_keys=True)] = (
                static.split(cid),
                pidfile.split(cid),
            )

    def paths_of(self, env: dict | None, cid: str) -> tuple[str, str] | None:
        """Container CID's folder and pid file, as ``learn_paths`` learnt them; None before."""
        learnt = self.podman_paths.get(json.dumps(env, sort_keys=True))
        if not learnt or not CONTAINER_ID.fullmatch(cid):
            return None
        return cid.join(learnt[0]), cid.join(learnt[1])

    def spec(self, agent_id: str) -> LaunchSpec | None:
        """AGENT_ID's launch spec; None when it has none. A spec that is not what am wrote
        raises InvalidSpec, which the request's answer carries."""
        from am import ids

        ids.validate_name(agent_id)
        path = self.layout.run / f"{agent_id}.spec.json"
        if not path.exists():
            return None
        return LaunchSpec.read(path)

    def watch(self, agent_id: str, launched: bool = True, cid: str | None = None) -> Watch | None:
        """The watch of AGENT_ID, started if none runs. LAUNCHED: the container has been
        started already (False only for a spawn, before its 'start'). CID: the id of the
        container the spawn just made, when its engine said it."""
        with self.lock:
            w = self.watches.get(agent_id)
            if w is not None and cid and (w.error or (w.ref and w.ref != cid)):
                # A spawn or start made container CID: the watch of the one before (an
                # 'am stop' removed it, and its end may not have reached that watch yet)
                # must never record this one's end, nor remove it.
                with w.ending:
                    w.superseded = True
                # An end it wrote after this start cleared the last one is not this start's
                # (this container's end is only ever written by the watch made below).
                with contextlib.suppress(OSError):
                    os.unlink(w.spec.exit_file)
                w = None
            if w is not None and not w.done and not launched:
                w.launched.clear()  # a keeper's own watch, now the spawn's: it says 'started'
                w.resumed = False
            if w is None or w.done:
                spec = self.spec(agent_id)
                if spec is None or spec.container is None:
                    return None
                w = Watch(self, agent_id, spec)
                w.ref = cid
                w.resumed = launched
                if launched:
                    w.launched.set()
                self.watches[agent_id] = w
                threading.Thread(target=w.run, daemon=True).start()
        return w

    def still_running(self, agent_id: str) -> bool:
        """Whether the state file still says AGENT_ID runs (am stop and rm mark it first)."""
        from am.store import open_store

        try:
            r = open_store(self.layout).agents().get(agent_id)
        except Exception:
            return False
        return bool(r) and r.get("status") in ("running", "starting")

    def forget(self, w: Watch) -> None:
        with self.lock:
            if self.watches.get(w.id) is w:
                del self.watches[w.id]
            self.last_busy = time.monotonic()

    def reconcile(self) -> None:
        """Every container agent the state file says runs: watch it again."""
        from am.record import detached
        from am.store import open_store

        try:
            agents = open_store(self.layout).agents()
        except Exception:
            return
        for r in agents.values():
            if detached(r) and r.get("status") in ("running", "starting"):
                with contextlib.suppress(Exception):
                    self.watch(r["id"])

    def each_second(self) -> None:
        """Every TICK seconds: mark each container's CPU time (``am status``'s CPU
        is measured from these marks), and cap the network logs. A limited agent's proxy
        appends to its network log on the host, one line per request the agent makes, with no
        cap of its own: keep each near the agent's logs.max_size (it may pass it by what the
        proxy writes in TICK)."""
        while not self.stopping:
            time.sleep(TICK)
            with self.lock:
                watches = list(self.watches.values())
            for w in watches:
                if w.cgroups is not None:
                    with contextlib.suppress(Exception):  # never end the loop: it caps logs
                        w.cgroups.mark()
                if w.limit:
                    with contextlib.suppress(OSError):
                        cap_appended(str(self.layout.logs / f"{w.id}.network.log"), w.limit)

    def figures(self, ids: list) -> dict[str, dict]:
        """Agent id -> live figures of those of IDS whose containers run on this host and are
        watched here, read from their cgroups (``am status`` asks no engine for those)."""
        with self.lock:
            watches = [self.watches.get(i) for i in ids if isinstance(i, str)]
        out = {}
        for w in watches:
            if w is None or w.cgroups is None or w.done:
                continue
            with contextlib.suppress(Exception):  # a cgroup gone as it is read: no figure
                got = w.cgroups.figures(subtract_inactive=w.engine == "docker")
                if got is not None:
                    out[w.id] = got
        return out

    def handle(self, msg: dict) -> dict:
        op = msg.get("op")
        if op == "ping":
            return {"ok": True, "pid": os.getpid(), "gate": True}
        if op == "stats":
            ids = msg.get("ids")
            return {"ok": True, "figures": self.figures(ids if isinstance(ids, list) else [])}
        agent_id = msg.get("id")
        if not isinstance(agent_id, str):
            return {"ok": False, "error": "no agent id"}
        if op == "watch":
            cid = msg.get("cid")
            if not isinstance(cid, str) or not CONTAINER_ID.fullmatch(cid):
                cid = None
            w = self.watch(agent_id, launched=False, cid=cid)
            if w is None:
                return {"ok": False, "error": f"no spec for agent {agent_id}"}
            if not w.attached.wait(60):
                return {"ok": False, "error": f"am's keeper could not attach to {w.name} in 60 s"}
            if w.error:
                return {"ok": False, "error": w.error}
            fifo = msg.get("gate")
            if w.container.gated and fifo is not None:
                ok = (
                    isinstance(fifo, list)
                    and len(fifo) == 2
                    and all(isinstance(n, int) for n in fifo)
                    and w.release((fifo[0], fifo[1]))
                )
                return {"ok": True, "released": ok}
            return {"ok": True}
        if op == "started":
            w = self.watches.get(agent_id)
            if w and msg.get("cid") and w.ref and w.ref != msg.get("cid"):
                w = None  # another start's watch: this spawn's container is not its
            if w and not msg.get("failed"):
                # An agent whose command cannot run ends within this window after its start,
                # and the spawn says so (docs/usage.md); one whose program is seen running
                # needs no more of it. A gated command runs from its release on; an ungated
                # one from its 'start', whose return says only that its first process runs:
                # on a busy host that shell may not have tried the command yet.
                if w.released is None and not w.done:
                    with contextlib.suppress(Exception):  # it may have ended already
                        w.on_running()  # its pid, from here on, for the window's look
                began = time.monotonic() if w.released is None else w.released
                w.settle(began + START_WINDOW, early=w.container.direct)
            if w:
                if msg.get("failed"):
                    w.abandoned = True
                elif not w.done:
                    with contextlib.suppress(Exception):  # it may have ended already
                        w.on_running()
                w.launched.set()
                if not msg.get("failed") and not w.done:
                    # Seen running in /proc: the spawn need not ask the engine.
                    return {"ok": True, "running": w.alive()}
            return {"ok": True}
        if op == "send":
            w = self.watches.get(agent_id) or self.watch(agent_id)
            if w is None or not w.attached.wait(30) or w.stream is None:
                return {"ok": False, "error": f"agent {agent_id} has no terminal to type into"}
            try:
                w.send(str(msg.get("text", "")), bool(msg.get("enter", True)))
            except OSError as e:
                return {"ok": False, "error": f"cannot type into agent {agent_id}: {e}"}
            return {"ok": True}
        return {"ok": False, "error": f"unknown request {op!r}"}

    def serve_one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(120)
            data = b""
            try:
                while not data.endswith(b"\n") and len(data) < 4 << 20:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                msg = json.loads(data)
                answer = self.handle(msg if isinstance(msg, dict) else {})
            except Exception as e:
                answer = {"ok": False, "error": f"keeper: {e}"}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(answer).encode() + b"\n")
            with self.lock:
                self.serving -= 1
                self.last_busy = time.monotonic()

    def idle(self) -> bool:
        """Whether to leave: no agent watched, no request being answered, for IDLE_EXIT
        seconds. Decided by the thread that accepts requests, so none is accepted after."""
        with self.lock:
            if self.watches or self.serving or time.monotonic() - self.last_busy < self.idle_exit:
                return False
            self.stopping = True
            return True

    def main(self) -> int:
        run = self.layout.run
        run.mkdir(parents=True, exist_ok=True)
        lock = os.open(run / "keeper.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # another keeper looks after this AM_HOME
        listener = Listener(run / "keeper.sock", lock, min(1.0, self.idle_exit))
        listener.open()
        self.reconcile()
        threading.Thread(target=self.each_second, daemon=True).start()
        while True:
            listener.heal()
            try:
                conn, _ = listener.server.accept()
            except TimeoutError:
                if self.idle():
                    break
                continue
            except OSError:
                break
            with self.lock:
                self.serving += 1
            threading.Thread(target=self.serve_one, args=(conn,), daemon=True).start()
        # Unlink before the lock goes, so a client never reaches a socket nobody serves; one
        # that connected meanwhile is reset unanswered, and asks again (request()).
        listener.close()
        os.close(lock)
        return 0


class Listener:
    """The keeper's socket, ``state/run/keeper.sock``: made by the keeper that holds the lock,
    and removed only by it. Told by its inode from a socket a later keeper made there (once
    the folder was deleted and made again under this one, whose leaving would otherwise
    unlink the new keeper's socket and leave it deaf), and made again when the file alone
    goes (a hand's ``rm``) while this keeper still holds the lock file at its path."""

    def __init__(self, path: Path, lock: int, timeout: float):
        self.path, self.lock, self.timeout = path, lock, timeout
        self.server: socket.socket  # set by open()
        self.at = str(path)  # its file: the path, or off Linux a short name for a long one
        self.made: tuple[int, int] | None = None  # its file's (st_dev, st_ino)
        self.looked = time.monotonic()
        self.made_before = False

    def open(self) -> None:
        """Listen at the path, in place of whatever is there: this keeper holds the lock, so a
        socket there is one no keeper serves. Owner-only, without a turn of the umask, which
        is the whole process's: the keeper's other threads make files and start processes."""
        addr, fd = address(str(self.path))
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.at = str(self.path) if addr.startswith("/proc/") else addr
            with contextlib.suppress(OSError):  # Linux: bind makes the file with this mode
                os.fchmod(server.fileno(), 0o600)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.at)
            server.bind(addr)
            os.chmod(self.at, 0o600)  # elsewhere (the folder is the user's alone meanwhile)
            st = os.lstat(self.at)
            server.listen(64)
            server.settimeout(self.timeout)
        except BaseException:
            server.close()
            raise
        finally:
            if fd is not None:
                os.close(fd)
        self.made = (st.st_dev, st.st_ino)
        if self.made_before:
            self.server.close()
        self.server, self.made_before = server, True

    def ours(self) -> bool:
        return same_file(self.at, self.made)

    def heal(self) -> None:
        """At most once a second: listen again if the socket's file has gone while this keeper
        still holds the lock file at its path (else it belongs to a folder deleted since)."""
        now = time.monotonic()
        if now - self.looked < 1:
            return
        self.looked = now
        if self.ours():
            return
        mine = os.fstat(self.lock)
        if same_file(str(self.path.parent / "keeper.lock"), (mine.st_dev, mine.st_ino)):
            with contextlib.suppress(OSError):  # tried again in a second
                self.open()

    def close(self) -> None:
        if self.ours():
            with contextlib.suppress(OSError):
                os.unlink(self.at)
        if self.made_before:
            self.server.close()


def same_file(path: str, ident: tuple[int, int] | None) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == ident


def main() -> int:
    from am import paths

    threading.stack_size(256 << 10)  # threads here only wait and copy: small stacks
    return Keeper(paths.layout()).main()


if __name__ == "__main__":
    raise SystemExit(main())

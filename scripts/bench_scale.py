"""Figures of `make bench` for many agents and for output floods (issues 15 and 18), each
measured for the code under test and, with ``--before REV``, for an older am in the same run.

- memory: am's own host processes per running container agent (summed PSS) against the
  engine's own per-container process (containerd-shim, conmon), at N agents;
- 50 concurrent spawns against 50 concurrent ``run -d`` of the same containers (medians of
  five rounds in turn);
- ``am list`` with 500 records (100 running) against ``python -c pass`` + ``tmux
  list-sessions``; ``am status`` of 100 agents against the engine's ``stats --no-stream``;
- ten idle agents: am's memory and CPU for them, and ``am list`` over them;
- a flooding agent (``yes``, ``--cpus 1``): host CPU outside its cgroup, and how fast its log
  grows.
"""

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


MAX_ROUNDS = 5  # rounds of the 50 separate spawns, each against its own floor


class Version:
    """An am to measure: this checkout, or REV of it unpacked beside a venv of its own whose
    interpreter finds that am first (so its supervisors, started as ``sys.executable -m
    am.supervise``, are that am's too)."""

    def __init__(self, label: str, python: str):
        self.label = label
        self.python = python

    @classmethod
    def current(cls) -> "Version":
        return cls("after", sys.executable)

    @classmethod
    def before(cls, work: Path, rev: str) -> "Version":
        tree = work / "before-am"
        tree.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "am"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        venv = work / "before-venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = next((venv / "lib").glob("python3*/site-packages"))
        ours = next(p for p in sys.path if p.endswith("site-packages"))
        (site / "am-before.pth").write_text(f"{tree}\n{ours}\n")
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "compileall", "-q", str(tree)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return cls(f"before ({rev})", str(venv / "bin" / "python"))


# What each version's installed ``am`` script runs: ``entry`` where it has one, ``main`` before.
ENTRY = "import sys, am.main as m; m.entry() if hasattr(m, 'entry') else sys.exit(m.main())"


class Home:
    def __init__(self, version: Version, home: Path):
        self.version = version
        self.home = home
        self.env = {
            **os.environ,
            "AM_HOME": str(home),
            "GIT_AUTHOR_NAME": "b",
            "GIT_AUTHOR_EMAIL": "b@localhost",
            "GIT_COMMITTER_NAME": "b",
            "GIT_COMMITTER_EMAIL": "b@localhost",
        }

    def argv(self, *args) -> list[str]:
        # What the installed ``am`` script runs (not ``-m am``, whose runpy imports contextlib
        # and more that am itself does not); -P: not the cwd's am.
        return [self.version.python, "-P", "-c", ENTRY, *map(str, args)]

    def __call__(self, *args, check=True) -> subprocess.CompletedProcess:
        res = subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True)
        if check and res.returncode:
            raise RuntimeError(
                f"{self.version.label}: am {' '.join(map(str, args))} failed:\n{res.stderr[-2000:]}"
            )
        return res

    def agents(self) -> list[dict]:
        return json.loads(self("list", "--json").stdout)

    def clean(self) -> None:
        # --yes: am asks first since it learned to; a version from before it has no such flag
        if self("clean", "--containers", "--all", "--yes", check=False).returncode == 2:
            self("clean", "--containers", "--all", check=False)
        self.end_processes()

    def halt(self, engine: str) -> None:
        """Its containers removed and its processes ended, but its files (workspaces, state)
        kept until the bench's work folder goes, at its end. This machine's disk is ext4
        without a journal, whose inode allocator passes over every inode freed in the last
        minute or more, looking each up in the buffer cache (``recently_deleted``): deleting
        50 workspaces before the next round made that round's clones spend up to 40% of the
        machine's CPU there (``perf``), a cost of the bench's own clean-up, not of a spawn.
        Its keeper ends first: it would write (and free) files for each container it sees go."""
        self.end_processes()
        ids = container_ids(engine, self.home, every=True)
        if ids:
            subprocess.run([engine, "rm", "-f", *ids], capture_output=True, check=True)
        left = container_ids(engine, self.home, every=True)
        if left:  # they would load the next rounds
            raise RuntimeError(f"{len(left)} containers of {self.home} were not removed")

    def end_processes(self) -> None:
        out = subprocess.run(
            ["tmux", "list-sessions", "-F", "#{session_name}\t#{@am_home}"],
            capture_output=True,
            text=True,
        ).stdout
        for line in out.splitlines():
            name, _, owner = line.partition("\t")
            if owner == str(self.home):
                subprocess.run(["tmux", "kill-session", "-t", f"={name}:"], capture_output=True)
        keepers = []
        for p in am_processes(self.home):  # its keeper, which would leave once idle
            with contextlib.suppress(psutil.Error):
                if "am.keeper" in p.cmdline():
                    p.terminate()
                    keepers.append(p)
        psutil.wait_procs(keepers, timeout=10)


def concurrently(argvs: list[list[str]], env=None) -> tuple[float, int]:
    """Wall seconds for all of ARGVS started at once, and how many failed."""
    t = time.perf_counter()
    procs = [
        subprocess.Popen(a, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for a in argvs
    ]
    failed = sum(p.wait() != 0 for p in procs)
    return time.perf_counter() - t, failed


def container_ids(engine: str, home: Path, every: bool = False) -> list[str]:
    """The running containers of HOME, or with EVERY all of them."""
    out = subprocess.run(
        [
            engine,
            "ps",
            *(["-a"] if every else []),
            "-q",
            "--no-trunc",
            "--filter",
            f"label=am.home={home}",
        ],
        capture_output=True,
        text=True,
    ).stdout
    return out.split()


def pss(p: psutil.Process) -> int:
    try:
        return p.memory_full_info().pss
    except psutil.Error:
        return 0


def tmux_server() -> psutil.Process | None:
    for p in psutil.process_iter(["name", "ppid"]):
        if (p.info["name"] or "").startswith("tmux") and p.info["ppid"] == 1:
            return p
    return None


def am_processes(home: Path) -> list[psutil.Process]:
    """Every host process am keeps for the agents of HOME: the keeper, or per agent its
    supervisor, the engine client under it and the log's pipe-pane ``cat``."""
    found = []
    logs = str(home / "state" / "logs")
    run = str(home / "state" / "run")
    server = tmux_server()
    for p in psutil.process_iter(["cmdline", "ppid"]):
        cmd = p.info["cmdline"] or []
        try:
            if "am.keeper" in cmd and p.environ().get("AM_HOME") == str(home):
                found.append(p)
            elif cmd[1:3] == ["system", "service"] and cmd[-1].startswith(f"unix://{run}/"):
                found.append(p)  # the spawns' podman service (am/podmanservice.py)
            elif "am.supervise" in cmd and any(str(home) in a for a in cmd):
                found.append(p)
                found += p.children(recursive=True)
            elif (
                server
                and p.info["ppid"] == server.pid
                and cmd[:1] == ["cat"]
                and any(f.path.startswith(logs) for f in p.open_files())
            ):
                found.append(p)
        except psutil.Error:
            pass
    return found


def engine_processes(engine: str, ids: list[str]) -> list[psutil.Process]:
    """The engine's own host process of each container (containerd-shim, conmon)."""
    want = ("containerd-shim",) if engine == "docker" else ("conmon",)
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        if (p.info["name"] or "").startswith(want):
            line = " ".join(p.info["cmdline"] or [])
            if any(i in line for i in ids):
                found.append(p)
    return found


def services(home: Path) -> list[psutil.Process]:
    """The podman services HOME's spawns started (am/podmanservice.py), while they run."""
    return [p for p in am_processes(home) if "service" in (p.info["cmdline"] or [])]


def memory_figure(h: Home, engine: str, n: int, tmux_before: int) -> dict:
    time.sleep(3)  # let the agents settle
    # The spawns' service leaves IDLE seconds after the last: it is kept for spawns, not for
    # each running agent. What it holds meanwhile is in the detail.
    from am import podmanservice

    serving = services(h.home)
    service = sum(pss(p) for p in serving)
    deadline = time.monotonic() + podmanservice.IDLE + 60
    while services(h.home) and time.monotonic() < deadline:
        time.sleep(1)
    ids = container_ids(engine, h.home)
    ours = am_processes(h.home)
    server = tmux_server()
    tmux_share = max(0, pss(server) - tmux_before) if server else 0
    am_total = sum(pss(p) for p in ours) + tmux_share
    eng = engine_processes(engine, ids)
    eng_total = sum(pss(p) for p in eng)
    return {
        "figure": f"am's host memory per running container agent, {n} agents ({engine}, "
        f"{h.version.label})",
        "am": am_total / max(1, len(ids)),
        "floor": eng_total / max(1, len(eng)),
        "floor_what": "the engine's own "
        + ("containerd-shim" if engine == "docker" else "conmon")
        + " per container (PSS)",
        "target": 1.0,
        "unit": "bytes",
        "detail": f"{len(ours)} am processes, {tmux_share / 2**20:.1f} MiB of tmux's server;"
        f" {len(ids)} containers, {len(eng)} engine processes"
        + (
            f"; before it left, the spawns' podman service held {service / 2**20:.1f} MiB"
            if serving
            else ""
        ),
    }


def spawn_figures(
    work: Path,
    repo: Path,
    version: Version,
    engine: str,
    n: int,
    flags: list[str],
    extra: int = 0,
    rounds: int = MAX_ROUNDS,
) -> tuple[list[dict], Home]:
    """N concurrent spawns against N concurrent run -d, ROUNDS times in turn, each round's am
    in a new home (cold: its keeper and caches made then); the medians' ratio, as one round
    moves by a tenth either way and the floor alone by up to a third (3.9 to 5.5 s for
    podman in one hour of 2026-12-01). Then EXTRA more agents (untimed) in the last round's home,
    and am's memory per agent. Returns the figures and that home, agents running."""
    server = tmux_server()
    tmux_before = pss(server) if server else 0
    names = [f"bench-floor-{engine}-{i}" for i in range(n)]
    floors, ours, ratios, lost = [], [], [], 0
    for r in range(rounds):
        floor, floor_failed = concurrently(
            [
                [
                    engine,
                    "run",
                    "-d",
                    "--name",
                    name,
                    *flags,
                    "--memory",
                    "64m",
                    "--mount",
                    f"type=bind,source={repo},target=/workspace,readonly",
                    "am-agent:latest",
                    "sleep",
                    "3600",
                ]
                for name in names
            ]
        )
        subprocess.run([engine, "rm", "-f", *names], capture_output=True)
        h = Home(version, work / f"home-scale-{engine}-{version.label.split()[0]}-{r}")
        spawn = h.argv(
            "spawn", repo, "--container", "--runtime", engine, "--memory", "64m",
            "--cmd", "sleep 3600",
        )  # fmt: skip
        took, failed = concurrently([spawn] * n, env=h.env)
        running = sum(a["status"] == "running" for a in h.agents())
        live = len(container_ids(engine, h.home))
        lost += floor_failed + max(failed, n - running)
        floors.append(floor)
        ours.append(took)
        ratios.append(took / floor)
        if r < rounds - 1:
            h.halt(engine)
    span = f"{min(ratios):.2f}x-{max(ratios):.2f}x" if rounds > 1 else f"{ratios[0]:.2f}x"
    floor = statistics.median(floors)
    rows = [
        {
            "figure": f"{n} concurrent spawns ({engine}, {h.version.label})",
            "am": statistics.median(ours),
            "floor": floor,
            "floor_what": f"{n} concurrent {engine} run -d, same flags; medians of {rounds}",
            "target": 1.5,
            "detail": f"rounds {span}; {lost} failed or not running in all rounds; last: "
            f"{running} running in am list, {live} containers",
        }
    ]
    if version.label == "after":  # --count is new: the version before has none
        rows.append(count_figure(work, repo, version, engine, n, floor))
    if extra:
        concurrently([spawn] * extra, env=h.env)
    rows.append(memory_figure(h, engine, n + extra, tmux_before))
    return rows, h


def count_figure(
    work: Path, repo: Path, version: Version, engine: str, n: int, floor: float
) -> dict:
    """One ``am spawn --count N`` against the same floor as N separate spawns."""
    h = Home(version, work / f"home-count-{engine}")
    ours, failed = concurrently(
        [
            h.argv(
                "spawn", repo, "--count", n, "--container", "--runtime", engine,
                "--memory", "64m", "--cmd", "sleep 3600",
            )
        ],
        env=h.env,
    )  # fmt: skip
    running = sum(a["status"] == "running" for a in h.agents())
    live = len(container_ids(engine, h.home))
    h.halt(engine)
    return {
        "figure": f"{n} agents in one spawn --count {n} ({engine}, {version.label})",
        "am": ours,
        "floor": floor,
        "floor_what": f"the median of the {n} concurrent {engine} run -d",
        "target": 1.5,
        "detail": f"exit status {failed}, {running} running in am list, {live} containers",
    }


def add_records(h: Home, total: int) -> None:
    """Records up to TOTAL in HOME's state file: copies of its first agent, exited (a list
    reads records; it does not matter how they were made)."""
    state = h.home / "state" / "state.json"
    data = json.loads(state.read_text())
    agents = data["agents"]
    model = dict(next(iter(agents.values())))
    i = 0
    while len(agents) < total:
        aid = f"rec{i:05d}"
        i += 1
        agents[aid] = {
            **model,
            "id": aid,
            "name": aid,
            "status": "exited",
            "mode": "tmux",
            "runtime": None,
            "container": None,
            "session": f"am-{aid}",
            "workspace": str(h.home / "agents" / aid),
            "log": str(h.home / "state" / "logs" / f"{aid}.log"),
            "exit_code": 0,
        }
    tmp = state.with_suffix(".bench")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, state)


def list_status_figures(h: Home, engine: str, runs: int) -> list[dict]:
    from bench import paired

    n = len(h.agents())
    add_records(h, 500)
    running = sum(a["status"] == "running" for a in h.agents())
    # Alternately, twelve pairs at --runs 3: a list is tens of milliseconds, and six runs of
    # each, one after the other, moved by a third between two runs of the same code.
    ours, floor = paired(
        lambda _: h("list"),
        lambda _: (
            subprocess.run([sys.executable, "-c", "pass"]),
            subprocess.run(["tmux", "list-sessions"], capture_output=True),
        ),
        runs * 4,
    )
    o_status, f_status = paired(
        lambda _: h("status", "--json"),
        lambda _: subprocess.run([engine, "stats", "--no-stream"], capture_output=True),
        runs,
    )
    return [
        {
            "figure": f"am list, 500 records, {running} running ({h.version.label})",
            "am": ours,
            "floor": floor,
            "floor_what": "python -c pass + tmux list-sessions",
            "target": 2.0,
        },
        {
            "figure": f"am status, {n} running agents ({engine}, {h.version.label})",
            "am": o_status,
            "floor": f_status,
            "floor_what": f"{engine} stats --no-stream",
            "target": 1.2,
        },
    ]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def cpu_over(groups: list[list[psutil.Process]], seconds: float) -> list[float]:
    """CPU seconds each group of processes spends over the same SECONDS, counting only the
    processes alive at both ends (the shared tmux server leaves when its last session does,
    anyone's): a vanished process is a missing sample, not a negative one."""

    def sample(procs):
        got = {}
        for p in procs:
            with contextlib.suppress(psutil.Error):
                if p.is_running():
                    t = p.cpu_times()
                    got[p] = t.user + t.system + t.children_user + t.children_system
        return got

    before = [sample(g) for g in groups]
    time.sleep(seconds)
    after = [sample(g) for g in groups]
    return [sum(a[p] - b[p] for p in b if p in a) for b, a in zip(before, after, strict=True)]


def flood_figure(
    work: Path, repo: Path, version: Version, engine: str, seconds: float = 8
) -> list[dict]:
    """One agent printing as fast as it can (``yes``) with --cpus 1: the host CPU spent
    outside its cgroup (am's processes, the engine's, tmux's server), and its log's growth.
    The shared processes (tmux's server, dockerd) also serve everyone else on the machine:
    their CPU in the same span before the flood starts is taken off."""
    h = Home(version, work / f"home-flood-{engine}-{version.label.split()[0]}")
    t0 = time.monotonic()
    agent = h(
        "spawn",
        repo,
        "--container",
        "--runtime",
        engine,
        "--cpus",
        "1",
        "--cmd",
        f"sleep {seconds + 4}; exec yes",
    ).stdout.split()[-1]
    time.sleep(1)
    ids = container_ids(engine, h.home)
    procs = am_processes(h.home) + engine_processes(engine, ids)
    server = tmux_server()
    shared = [server] if server else []
    if engine == "docker":
        shared += [p for p in psutil.process_iter(["name"]) if p.info["name"] == "dockerd"]
    logs = [
        h.home / "state" / "logs" / f"{agent}.log",
        h.home / "state" / "logs" / f"{agent}.log.1",
    ]

    def size():
        return sum(p.stat().st_size for p in logs if p.exists())

    def window():
        a, b, s0 = cpu_seconds(procs), cpu_seconds(shared), size()
        time.sleep(seconds)
        return cpu_seconds(procs) - a, cpu_seconds(shared) - b, size() - s0

    _, quiet, _ = window()
    time.sleep(max(0.0, t0 + seconds + 7 - time.monotonic()))  # the flood has begun
    own, busy, grew = window()
    end = size()
    h.clean()
    extra = max(0.0, busy - quiet)
    return [
        {
            "figure": f"a flooding agent: host CPU outside its cgroup ({engine}, {version.label})",
            "am": (own + extra) / seconds,
            "floor": None,
            "floor_what": "share of one core: am's and the engine's processes of the agent,"
            f" and what {'dockerd and ' if engine == 'docker' else ''}tmux's "
            "server spent more than before the flood",
            "target": None,
            "unit": "cores",
            "detail": f"{own / seconds:.2f} the agent's own processes, {extra / seconds:.2f} "
            f"shared ones; log grew {grew / seconds / 2**20:.1f} MiB/s, "
            f"{end / 2**20:.1f} MiB at the end",
        }
    ]


def idle_figures(
    work: Path,
    repo: Path,
    version: Version,
    engine: str,
    runs: int,
    n: int = 10,
    seconds: float = 60,
) -> list[dict]:
    """N idle container agents (``sleep``): am's host memory for them and its CPU over
    SECONDS, against the engine's own per-container process; then ``am list`` over them
    against ``python -c pass`` + ``tmux list-sessions``."""
    from bench import median_of

    h = Home(version, work / f"home-idle-{engine}-{version.label.split()[0]}")
    server = tmux_server()
    tmux_before = pss(server) if server else 0
    try:
        for _ in range(n):
            h(
                "spawn",
                repo,
                "--container",
                "--runtime",
                engine,
                "--memory",
                "64m",
                "--cmd",
                "sleep 3600",
            )
        mem = memory_figure(h, engine, n, tmux_before)
        mem["figure"] = (
            f"am's host memory per idle container agent, {n} agents ({engine}, {version.label})"
        )
        ours = am_processes(h.home) + ([server] if server else [])
        theirs = engine_processes(engine, container_ids(engine, h.home))
        used, engines_used = cpu_over([ours, theirs], seconds)
        floor = median_of(
            lambda _: (
                subprocess.run([sys.executable, "-c", "pass"]),
                subprocess.run(["tmux", "list-sessions"], capture_output=True),
            ),
            runs * 2,
        )
        listed = median_of(lambda _: h("list"), runs * 2)
        return [
            mem,
            {
                "figure": f"am's host CPU for {n} idle container agents ({engine}, "
                f"{version.label})",
                "am": used * 60 / seconds,
                "floor": engines_used * 60 / seconds,
                "floor_what": f"the engine's own {n} per-container processes",
                "target": None,
                "unit": "cpu",
                "detail": f"{len(ours) - bool(server)} am processes and tmux's server, "
                f"over {seconds:.0f} s",
            },
            {
                "figure": f"am list, {n} running container agents ({engine}, {version.label})",
                "am": listed,
                "floor": floor,
                "floor_what": "python -c pass + tmux list-sessions",
                "target": 2.0,
            },
        ]
    finally:
        h.clean()


def remote_figures(work: Path, repo: Path, engine: str, runs: int) -> list[dict]:
    """A remote engine against the same engine used locally: spawn (clone, tar stream into a
    volume), a running agent's diff, the bytes a spawn moves. The "remote" engine is this
    machine's, reached over tcp as tests/remote.py does (a relay to dockerd's socket, a
    podman service), so the figures are am's own added cost, without a network's."""
    from bench import median_of

    sys.path.insert(0, str(ROOT / "tests"))
    from remote import RemoteEngine

    remote = RemoteEngine(engine)
    try:
        local_home = Home(Version.current(), work / f"home-local-{engine}")
        remote_home = Home(Version.current(), work / f"home-remote-{engine}")
        remote_home.env.update(remote.env)
        out = {}
        for label, h in (("local", local_home), ("remote", remote_home)):
            spawn = median_of(
                lambda _, h=h: h(
                    "spawn",
                    repo,
                    "--container",
                    "--runtime",
                    engine,
                    "--cmd",
                    "echo x >> README; sleep 600",
                ),
                runs,
            )
            agent = h.agents()[0]["id"]
            diff = median_of(lambda _, h=h, a=agent: h("diff", a), runs)
            out[label] = (spawn, diff)
            h.clean()
        moved = len(
            subprocess.run(
                ["tar", "-c", "-f", "-", "-C", str(repo), "."], capture_output=True
            ).stdout
        )
    finally:
        remote.close()
    what = f"the same, {engine} used locally"
    return [
        {
            "figure": f"spawn on a remote engine ({engine} over tcp)",
            "am": out["remote"][0],
            "floor": out["local"][0],
            "floor_what": what,
            "target": None,
        },
        {
            "figure": f"am diff of a running agent on a remote engine ({engine} over tcp)",
            "am": out["remote"][1],
            "floor": out["local"][1],
            "floor_what": what,
            "target": None,
        },
        {
            "figure": "bytes a remote spawn streams into the volume (the clone as tar)",
            "am": moved,
            "floor": None,
            "floor_what": "a 20-commit, 50-file repository",
            "target": None,
            "unit": "bytes",
        },
    ]


def settle_disk(seconds: int = 61) -> None:
    """Let what was deleted before (earlier sections, other work) stop costing the rounds.
    On ext4 without a journal (this machine's disk) the inode allocator passes over an inode
    freed less than 60 s ago, or 360 s while its inode table block is dirty, looking each
    up (``recently_deleted`` in fs/ext4/ialloc.c): written out, then a minute, and none is."""
    print(f"letting the disk settle ({seconds} s) ...", file=sys.stderr)
    os.sync()
    time.sleep(seconds)


def run(
    work: Path,
    repo: Path,
    engines: list[str],
    runs: int,
    only: set[str],
    before: str | None,
    n: int = 50,
) -> list[dict]:
    from bench import engine_flags

    versions = [Version.current()]
    if before:
        versions.insert(0, Version.before(work, before))
    rows = []
    for e in engines if "remote" in only else ():
        print(f"remote engine, {e} ...", file=sys.stderr)
        rows += remote_figures(work, repo, e, runs)
    for e in engines if "idle" in only else ():
        for v in versions:
            print(f"{10} idle agents, {e}, {v.label} ...", file=sys.stderr)
            rows += idle_figures(work, repo, v, e, runs)
    for e in engines if "flood" in only else ():
        for v in versions:
            print(f"flood, {e}, {v.label} ...", file=sys.stderr)
            rows += flood_figure(work, repo, v, e)
    if "scale" in only and engines:
        settle_disk()
    for e in engines if "scale" in only else ():
        flags = engine_flags(e)
        for v in versions:
            print(f"{n} concurrent spawns, {e}, {v.label} ...", file=sys.stderr)
            extra = 50 if e == engines[0] else 0  # 100 agents for list and status
            rounds = max(1, min(runs, MAX_ROUNDS))
            got, h = spawn_figures(work, repo, v, e, n, flags, extra, rounds)
            rows += got
            if extra:
                print(f"list and status, {e}, {v.label} ...", file=sys.stderr)
                rows += list_status_figures(h, e, runs)
            h.halt(e)  # its files too stay till the end: the next engine's rounds follow
    return rows

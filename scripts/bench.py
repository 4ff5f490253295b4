#!/usr/bin/env python3
"""Benchmarks of am against the floor of what git, tmux and the engines cost anyway.

Each figure is the median of N runs after a warm-up, printed as a table and written to
docs/performance.md with the machine, the engine versions and each ratio against its floor,
measured in the same run. Run with ``make bench`` (root, engines up, image built).

    scripts/bench.py [--runs 5] [--quick] [--engines docker,podman] [--out docs/performance.md]
"""

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
# The command users run: the installed entry point beside this interpreter (make install).
AM = [str(Path(PY).parent / "am")] if (Path(PY).parent / "am").is_file() else [PY, "-m", "am"]
GIT_ID = {
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@localhost",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@localhost",
}


def sh(argv, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median_of(fn, runs: int, setup=None, teardown=None) -> float:
    """Median seconds of FN over RUNS runs after one warm-up run."""
    samples = []
    for i in range(runs + 1):
        ctx = setup(i) if setup else None
        t = timed(lambda ctx=ctx: fn(ctx))
        if teardown:
            teardown(ctx)
        if i:
            samples.append(t)
    return statistics.median(samples)


def paired(ours, floor, runs: int) -> tuple[float, float]:
    """Medians of OURS and FLOOR, run alternately (after one warm-up of each) with the disk
    flushed before every run, so both meet the same machine."""
    a, b = [], []
    for i in range(runs + 1):
        for fn, out in ((ours, a), (floor, b)):
            os.sync()
            t = timed(lambda fn=fn: fn(None))
            if i:
                out.append(t)
    return statistics.median(a), statistics.median(b)


def du(path: Path) -> int:
    """Bytes on disk under PATH (hard-linked files counted once, links not followed)."""
    return int(sh(["du", "-s", "--block-size=1", path]).stdout.split()[0])


def make_repo(path: Path, commits: int, files: int, blob_lines: int = 8) -> Path:
    """A generated repository: COMMITS commits touching FILES files, via fast-import."""
    path.mkdir(parents=True)
    sh(["git", "init", "-q", "-b", "main", path])
    chunks = []
    # The first commit creates every file; later ones each change a few.
    chunks.append(
        "commit refs/heads/main\nmark :1\ncommitter b <b@l> 1700000000 +0000\ndata 4\ninit\n"
    )
    for f in range(files):
        body = "".join(f"file {f} line {n}\n" for n in range(blob_lines))
        chunks.append(f"M 644 inline d{f % 50}/f{f}.txt\ndata {len(body)}\n{body}\n")
    for i in range(2, commits + 1):
        chunks.append(
            f"commit refs/heads/main\nmark :{i}\n"
            f"committer b <b@l> {1700000000 + i} +0000\ndata {len(str(i))}\n{i}\n"
            f"from :{i - 1}\n"
        )
        for k in range(3):
            f = (i * 7 + k * 131) % files
            body = f"file {f} changed in {i}\n"
            chunks.append(f"M 644 inline d{f % 50}/f{f}.txt\ndata {len(body)}\n{body}\n")
    subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=path, input="".join(chunks), text=True, check=True
    )
    sh(["git", "-C", path, "checkout", "-q", "-f", "main"])
    sh(["git", "-C", path, "gc", "-q"])
    return path


class Am:
    def __init__(self, home: Path):
        self.env = {**os.environ, "AM_HOME": str(home), **GIT_ID}
        self.home = home

    def __call__(self, *args, check=True):
        return subprocess.run(
            [*AM, *map(str, args)], env=self.env, capture_output=True, text=True, check=check
        )

    def ids(self):
        return [a["id"] for a in json.loads(self("list", "--json").stdout)]

    def stop_all(self):
        self("clean", "--containers", "--all", "--yes", check=False)
        out = sh(
            ["tmux", "list-sessions", "-F", "#{session_name}\t#{@am_home}"], check=False
        ).stdout
        for line in out.splitlines():
            name, _, home = line.partition("\t")
            if home == str(self.home):
                sh(["tmux", "kill-session", "-t", f"={name}:"], check=False)


def engine_flags(engine: str) -> list[str]:
    """The flags am gives an agent container, for the floor's plain run -d."""
    from am import paths
    from am import plan as planning
    from am.backends import for_runtime as get_engine
    from am.request import Request
    from am.valueclass import replace

    ns = Request(name="floor", container=True, cmd="sleep 600", runtime=engine)
    p = planning.build(ns, paths.layout(), "/x", {}, None, None)
    p = replace(p, workspace=Path("/tmp"))
    eng = get_engine(engine)
    eng.ensure_security()  # podman's seccomp profile, which the flags name, exists
    argv = eng.run_argv(p, "bench", os.getuid(), os.getgid())
    verb = next(i for i, a in enumerate(argv) if a in ("run", "create"))
    rest = argv[verb + 1 : argv.index("--")]
    flags, skip = [], False
    for a in rest:
        if skip:
            skip = False
        elif a in ("--name", "--hostname", "--mount", "--label", "--log-opt"):
            skip = True  # the floor names and mounts its own container
        elif a not in ("--interactive", "--tty", "--detach"):
            flags.append(a)
    return flags


# -- the figures ---------------------------------------------------------------------------


def bench_spawn_tmux(work: Path, repo: Path, runs: int) -> dict:
    am = Am(work / "home-tmux")
    n = iter(range(10**6))

    def floor(_):
        d = work / f"floor-{next(n)}"
        sh(["git", "clone", "-q", "--local", repo, d])
        sh(["git", "-C", d, "switch", "-q", "-c", "am/x"])
        sh(["tmux", "new-session", "-d", "-s", f"bench-{d.name}", "-c", d, "sleep 600"])

    def ours(_):
        am("spawn", repo, "--cmd", "sleep 600")

    o, f = paired(ours, floor, runs)
    for line in sh(["tmux", "list-sessions", "-F", "#{session_name}"], check=False).stdout.split():
        if line.startswith("bench-floor-"):
            sh(["tmux", "kill-session", "-t", f"={line}:"], check=False)
    am.stop_all()
    return {
        "figure": "spawn, tmux mode, local repository",
        "am": o,
        "floor": f,
        "floor_what": "git clone --local + git switch -c + tmux new-session -d",
        "target": 1.3,
    }


def bench_spawn_container(work: Path, repo: Path, runs: int, engine: str) -> dict:
    am = Am(work / f"home-{engine}")
    flags = engine_flags(engine)
    n = iter(range(10**6))

    def floor(_):
        d = work / f"cfloor-{engine}-{next(n)}"
        sh(["git", "clone", "-q", "--no-hardlinks", repo, d])
        sh(["git", "-C", d, "switch", "-q", "-c", "am/x"])
        sh(
            [
                engine,
                "run",
                "-d",
                "--name",
                f"bench-{d.name}",
                *flags,
                "--mount",
                f"type=bind,source={d},target=/workspace",
                "am-agent:latest",
                "sleep",
                "600",
            ]
        )

    def ours(_):
        am("spawn", repo, "--container", "--runtime", engine, "--cmd", "sleep 600")

    o, f = paired(ours, floor, runs)
    names = sh(
        [engine, "ps", "-a", "--filter", "name=bench-cfloor", "--format", "{{.Names}}"], check=False
    ).stdout.split()
    if names:
        sh([engine, "rm", "-f", *names], check=False)
    am.stop_all()
    return {
        "figure": f"spawn, container mode ({engine}), image present",
        "am": o,
        "floor": f,
        "floor_what": f"git clone + switch -c + plain {engine} run -d, same flags",
        "target": 1.3,
    }


def bench_repeat_spawn(work: Path, big: Path, runs: int) -> list[dict]:
    am = Am(work / "home-cache")
    url = f"file://{big}"
    am("spawn", url, "--cmd", "sleep 600")  # the first spawn fills the cache
    n = iter(range(10**6))
    extra: list[Path] = []

    def ours(_):
        out = am("spawn", url, "--cmd", "sleep 600").stdout.split()[-1]
        extra.append(am.home / "agents" / out)

    def worktree(_):
        d = work / f"wt-{next(n)}"
        sh(["git", "-C", big, "worktree", "add", "-q", "-b", f"b{d.name}", d])

    def full(_):
        sh(["git", "clone", "-q", "--no-local", big, work / f"full-{next(n)}"])

    o, w = paired(ours, worktree, runs)
    f = median_of(full, max(3, runs // 2))
    per_agent = statistics.median(du(p) for p in extra)
    checkout = du(big) - du(big / ".git")
    am.stop_all()
    return [
        {
            "figure": "repeat spawn from a URL through the cache",
            "am": o,
            "floor": w,
            "floor_what": "git worktree add",
            "target": 1.5,
        },
        {
            "figure": "repeat spawn vs a plain full clone",
            "am": o,
            "floor": f,
            "floor_what": "git clone --no-local (what users do without am)",
            "target": 0.1,
            "note": "target: at least 10x faster",
        },
        {
            "figure": "disk per extra agent vs one checkout",
            "am": per_agent,
            "floor": checkout,
            "floor_what": "size of one checkout (work tree only)",
            "target": 1.2,
            "unit": "bytes",
        },
    ]


def bench_workspace_ops(work: Path, repo: Path, runs: int, engine: str) -> list[dict]:
    """am diff, am snapshot and the unsaved-work check of a container agent, running and
    stopped, against what plain git and tar on the host cost for the same workspace."""
    am = Am(work / f"home-ops-{engine}")
    agent = am(
        "spawn",
        repo,
        "--container",
        "--runtime",
        engine,
        "--name",
        "ops",
        "--cmd",
        "echo edit >> d0/f0.txt && echo new > made.txt && echo READY && sleep 3600",
    ).stdout.split()[-1]
    ws = am.home / "agents" / agent
    deadline = time.monotonic() + 60
    while not (ws / "made.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    base = json.loads(am("info", agent, "--json").stdout)["base_commit"]
    snaps = am.home / "data" / "snapshots"
    index = work / f"floor-index-{engine}"
    g = ["git", "-c", "safe.directory=*", "-C", ws]  # the workspace is the agent's uid's

    def drop_snapshots(_=None):
        shutil.rmtree(snaps, ignore_errors=True)

    def git_diff(_):
        env = {**os.environ, "GIT_INDEX_FILE": str(index)}
        sh([*g, "read-tree", "HEAD"], env=env)
        sh([*g, "add", "--all", "--intent-to-add"], env=env)
        sh([*g, "diff", "--binary", base], env=env)

    def tar(_):
        sh(["tar", "-czf", work / f"floor-{engine}.tar.gz", "-C", ws, "."])

    def git_unsaved(_):
        sh([*g, "status", "--porcelain", "--untracked-files=all"])
        sh([*g, "rev-list", "--count", "HEAD", "--branches", "--not", "--remotes"])

    rows = []
    for state in ("running", "stopped"):
        if state == "stopped":
            am("stop", agent)
        o, f = paired(lambda _: am("diff", agent), git_diff, runs)
        rows.append(
            {
                "figure": f"am diff, {state} container agent ({engine})",
                "am": o,
                "floor": f,
                "floor_what": "git read-tree + add -N + diff on the host",
                "target": None,
            }
        )
        o = median_of(lambda _: am("snapshot", agent), runs, teardown=drop_snapshots)
        f = median_of(tar, runs)
        rows.append(
            {
                "figure": f"am snapshot, {state} container agent ({engine})",
                "am": o,
                "floor": f,
                "floor_what": "tar -czf of the workspace on the host",
                "target": None,
            }
        )
    # am rm refuses a stopped agent with unsaved work: the check alone, and nothing removed
    o, f = paired(lambda _: am("rm", agent, check=False), git_unsaved, runs)
    rows.append(
        {
            "figure": f"unsaved-work check (am rm refused), stopped agent ({engine})",
            "am": o,
            "floor": f,
            "floor_what": "git status + rev-list on the host",
            "target": None,
        }
    )
    am.stop_all()
    return rows


# A stand-in agent with ten commits of its own (three files each), then idle.
TEN_COMMITS = (
    "for i in 0 1 2 3 4 5 6 7 8 9; do for k in 1 2 3; do "
    'echo "agent $i" >> d$i/f$((i * 100 + k)).txt; done; '
    'git add -A && git -c user.name=a -c user.email=a@l commit -qm "agent $i"; '
    "done; echo COMMITTED; sleep 3600"
)


def bench_pull_push(work: Path, repo: Path, runs: int, engine: str | None) -> list[dict]:
    """am pull (running and stopped agent) and am push of an agent's ten commits, against
    plain git fetching from / pushing from the workspace, which runs its configuration."""
    mode = ["--container", "--runtime", engine] if engine else []
    label = engine or "tmux"
    am = Am(work / f"home-pull-{label}")
    remote = work / f"remote-{label}.git"
    sh(["git", "clone", "-q", "--bare", repo, remote])
    rows = []
    g = ["git", "-c", "safe.directory=*", "-C"]  # a container agent's workspace is its uid's
    try:
        for kind, source in (("pull", repo), ("push", f"file://{remote}")):
            agent = am(
                "spawn", source, *mode, "--name", f"{kind}-{label}", "--cmd", TEN_COMMITS
            ).stdout.split()[-1]
            ws = am.home / "agents" / agent
            deadline = time.monotonic() + 120
            while "COMMITTED" not in am("logs", agent).stdout:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{agent} made no commits")
                time.sleep(0.2)
            target = repo if kind == "pull" else remote
            branch = f"am/{agent}"

            def reset(_=None, target=target, branch=branch, g=g):
                for b in (branch, "floor"):
                    sh([*g, target, "branch", "-D", b], check=False)

            if kind == "pull":
                ours = lambda _, a=agent: am("pull", a)  # noqa: E731
                floor = lambda _, w=ws, g=g: sh(  # noqa: E731
                    [
                        *g,
                        repo,
                        "fetch",
                        "-q",
                        "--upload-pack=git -c safe.directory=* upload-pack",
                        w,
                        "HEAD:refs/heads/floor",
                    ]
                )
                what = "git fetch from the workspace into the source"
            else:
                ours = lambda _, a=agent: am("push", a)  # noqa: E731
                floor = lambda _, w=ws, g=g: sh(  # noqa: E731
                    [
                        *g,
                        w,
                        "push",
                        "-q",
                        f"file://{remote}",
                        "HEAD:refs/heads/floor",
                    ]
                )
                what = "git push from the workspace"
            for state in ("running", "stopped"):
                if state == "stopped":
                    if kind == "push":
                        break
                    am("stop", agent)
                o = median_of(ours, runs, setup=reset)
                f = median_of(floor, runs, setup=reset)
                rows.append(
                    {
                        "figure": f"am {kind}, ten commits, {state} agent ({label})",
                        "am": o,
                        "floor": f,
                        "floor_what": what,
                        "target": None,
                    }
                )
    finally:
        am.stop_all()
    return rows


# Inside the agent: on each trigger file am's bench writes (in .git, which git status skips),
# time one task there (a CPU-bound loop, or git status over the 5,000-file workspace) and print
# it; the runc and the gVisor agent take turns, so both meet the same load on a busy machine.
WORKLOAD = r"""exec python3 - <<'EOF'
import os, subprocess, time
n = 0
while True:
    go = f"/workspace/.git/bench-go-{n}"
    while not os.path.exists(go):
        time.sleep(0.01)
    task = open(go).read().strip()
    t = time.perf_counter()
    if task == "cpu":
        sum(i * i for i in range(10_000_000))
    else:
        subprocess.run(["git", "status", "--porcelain"], check=True, capture_output=True)
    print(f"BENCH-RESULT {n} {time.perf_counter() - t:.4f}", flush=True)
    n += 1
EOF"""


def cgroup_dir(engine: str, name: str, controller: str) -> Path:
    """The host's (v1) cgroup folder of a running container for CONTROLLER."""
    pid = sh([engine, "inspect", "--format", "{{.State.Pid}}", name]).stdout.strip()
    line = next(
        ln
        for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        if controller in ln.split(":")[1].split(",")
    )
    return Path("/sys/fs/cgroup") / controller / line.split(":", 2)[2].lstrip("/")


def container_memory(engine: str, name: str) -> tuple[int, int]:
    """Bytes an idle container costs the host: what its memory cgroup is charged (what
    --memory counts) and the proportional set size of every host process in it (gVisor's
    kernel and file proxy included)."""
    import psutil

    folder = cgroup_dir(engine, name, "memory")
    stat = dict(ln.split() for ln in (folder / "memory.stat").read_text().splitlines())
    # Anonymous and shared memory: what cannot be reclaimed (gVisor keeps the agent's memory
    # in a memfd, which counts as shared); file pages are the page cache of whoever read first.
    charged = int(stat["total_rss"]) + int(stat.get("total_shmem", 0))
    pss = 0
    for p in (folder / "cgroup.procs").read_text().split():
        try:
            pss += psutil.Process(int(p)).memory_full_info().pss
        except psutil.Error:
            pass
    return charged, pss


def bench_isolation(work: Path, repo: Path, runs: int, engine: str) -> list[dict]:
    """gVisor against runc on ENGINE: spawn, idle memory, a CPU-bound and a file-heavy task,
    each pair of samples taken in turn."""
    homes = {iso: Am(work / f"home-iso-{engine}-{iso}") for iso in ("gvisor", "runc")}

    def spawner(iso, cmd):
        argv = ["spawn", repo, "--container", "--runtime", engine, "--isolation", iso, "--cmd"]
        return lambda _: homes[iso](*argv, cmd).stdout.split()[-1]

    spawn_g, spawn_r = paired(spawner("gvisor", "sleep 600"), spawner("runc", "sleep 600"), runs)
    time.sleep(2)  # let the idle agents settle before their memory is read
    mem = {
        iso: [container_memory(engine, f"am-{i}") for i in am.ids()] for iso, am in homes.items()
    }
    agents = {iso: spawner(iso, WORKLOAD)(None) for iso in homes}
    cpuacct = {
        iso: cgroup_dir(engine, f"am-{a}", "cpuacct") / "cpuacct.usage" for iso, a in agents.items()
    }
    # per task and isolation: wall seconds inside the agent, and CPU seconds the host spent
    # on the whole container (gVisor's own work included), which a busy machine disturbs less
    samples = {
        (name, iso, k): [] for name in ("cpu", "status") for iso in homes for k in ("wall", "host")
    }
    trigger = 0
    for name in ("status", "cpu"):
        for i in range(runs + 1):
            for iso in ("gvisor", "runc") if i % 2 else ("runc", "gvisor"):
                am, agent = homes[iso], agents[iso]
                before = int(cpuacct[iso].read_text())
                (am.home / "agents" / agent / ".git" / f"bench-go-{trigger}").write_text(name)
                deadline = time.monotonic() + 600
                mark = f"BENCH-RESULT {trigger} "
                while mark not in (log := am("logs", agent).stdout):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no result from the {iso} agent:\n{log[-2000:]}")
                    time.sleep(0.05)
                if i:
                    samples[name, iso, "wall"].append(float(log.split(mark)[1].split()[0]))
                    samples[name, iso, "host"].append(
                        (int(cpuacct[iso].read_text()) - before) / 1e9
                    )
            trigger += 1
    for am in homes.values():
        am.stop_all()
    med = {k: statistics.median(v) for k, v in samples.items()}
    memory = {
        iso: (statistics.median(m[0] for m in ms), statistics.median(m[1] for m in ms))
        for iso, ms in mem.items()
    }
    what = f"the same under runc ({engine})"
    return [
        {
            "figure": f"gVisor: spawn ({engine})",
            "am": spawn_g,
            "floor": spawn_r,
            "floor_what": what,
            "target": None,
        },
        {
            "figure": f"gVisor: idle agent, memory charged to its cgroup ({engine})",
            "am": memory["gvisor"][0],
            "floor": memory["runc"][0],
            "floor_what": what,
            "target": None,
            "unit": "bytes",
        },
        {
            "figure": f"gVisor: idle agent, host processes' PSS ({engine})",
            "am": memory["gvisor"][1],
            "floor": memory["runc"][1],
            "floor_what": what,
            "target": None,
            "unit": "bytes",
        },
        *(
            {
                "figure": f"gVisor: {label}, {kind} ({engine})",
                "am": med[task, "gvisor", k],
                "floor": med[task, "runc", k],
                "floor_what": what,
                "target": None,
            }
            for task, label in (
                ("cpu", "CPU-bound loop (10M squares in Python)"),
                ("status", "git status over 5,000 files"),
            )
            for k, kind in (("wall", "time in the agent"), ("host", "host CPU time"))
        ),
    ]


def count_calls(work: Path, engine: str) -> tuple[dict, Path]:
    """A PATH in which ENGINE is a shim that counts its calls into a file."""
    shim_dir = work / "shim"
    shim_dir.mkdir(exist_ok=True)
    log = shim_dir / "calls.log"
    real = shutil.which(engine)
    shim = shim_dir / engine
    shim.write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    return {"PATH": f"{shim_dir}:{os.environ['PATH']}"}, log


def bench_list_status(work: Path, repo: Path, runs: int, engine: str, agents: int) -> list[dict]:
    am = Am(work / "home-list")
    live = agents // 2
    print(
        f"  spawning {live} container agents on {engine} and {agents - live} tmux agents",
        file=sys.stderr,
    )
    for _ in range(live):
        am(
            "spawn",
            repo,
            "--container",
            "--runtime",
            engine,
            "--cmd",
            "sleep 3600",
            "--memory",
            "64m",
        )
    for _ in range(agents - live):
        am("spawn", repo, "--cmd", "exit 0")

    def floor(_):
        sh([PY, "-c", "pass"])
        sh([engine, "ps"])
        # No server once the last 'exit 0' agent's session has ended: an answer all the same.
        sh(["tmux", "list-sessions"], check=False)

    f = median_of(floor, runs)
    o_list = median_of(lambda _: am("list"), runs)
    o_json = median_of(lambda _: am("list", "--json"), runs)
    rows = [
        {
            "figure": f"am list, {agents} agents ({live} live on {engine})",
            "am": o_list,
            "floor": f,
            "floor_what": f"python -c pass + {engine} ps + tmux list-sessions",
            "target": 4.0,
        },
        {
            "figure": f"am list --json, {agents} agents",
            "am": o_json,
            "floor": f,
            "floor_what": "same",
            "target": 4.0,
        },
    ]

    def stats_floor(_):
        sh([PY, "-c", "pass"])
        sh([engine, "stats", "--no-stream"])
        sh(["tmux", "list-sessions"], check=False)

    o_status, f_status = paired(lambda _: am("status", "--json"), stats_floor, runs)
    rows.append(
        {
            "figure": f"am status, {agents} agents",
            "am": o_status,
            "floor": f_status,
            "floor_what": f"python -c pass + {engine} stats --no-stream + tmux list-sessions",
            "target": 4.0,
        }
    )
    # engine calls per am list must not grow with the agent count
    env, log = count_calls(work, engine)
    calls = []
    for _ in range(2):
        log.write_text("")
        subprocess.run([*AM, "list"], env={**am.env, **env}, capture_output=True, check=True)
        calls.append(len(log.read_text().split()))
    rows.append(
        {
            "figure": f"{engine} calls per am list ({agents} agents)",
            "am": calls[0],
            "floor": None,
            "floor_what": "must not grow with the agent count",
            "target": None,
            "unit": "calls",
        }
    )
    am.stop_all()
    return rows


def bench_startup(work: Path, runs: int) -> tuple[list[dict], list[tuple[str, float]]]:
    am = Am(work / "home-empty")
    f = median_of(lambda _: sh([PY, "-c", "pass"]), runs * 4)
    v = median_of(lambda _: am("--version"), runs * 4)
    e = median_of(lambda _: am("list"), runs * 4)
    res = subprocess.run(
        [PY, "-X", "importtime", "-m", "am", "list"], env=am.env, capture_output=True, text=True
    )
    mods = []
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            try:
                mods.append((name.strip(), int(cumulative) / 1e6))
            except ValueError:
                pass
    top = [m for m in mods if "." not in m[0] or m[0].startswith("am")]
    top.sort(key=lambda m: -m[1])
    return [
        {
            "figure": "am --version",
            "am": v,
            "floor": f,
            "floor_what": "python -c pass",
            "target": 2.0,
        },
        {
            "figure": "am list, no agents",
            "am": e,
            "floor": f,
            "floor_what": "python -c pass",
            "target": None,
        },
    ], top[:8]


def bench_ui(work: Path, repo: Path, engines: list[str], seconds: float = 60) -> list[dict]:
    """CPU a minute of an idle ``am ui`` over 10 agents (its preview shown), against running
    ``am list`` every 2 seconds (watch(1)); the engine and tmux calls it makes a minute; and
    what the docker daemons spend on its stats calls (their CPU over ten calls, less the same
    time without: the only way to see it on a machine other work shares)."""
    import psutil

    am = Am(work / "home-ui")
    containers = [e for e in engines for _ in range(3)][:6]
    print(
        f"  spawning {10 - len(containers)} tmux agents and {len(containers)} container "
        f"agents ({', '.join(engines)})",
        file=sys.stderr,
    )
    for _ in range(10 - len(containers)):
        am("spawn", repo, "--cmd", "while :; do date; sleep 5; done")
    for e in containers:
        am("spawn", repo, "--container", "--runtime", e, "--cmd", "sleep 3600", "--memory", "64m")

    def cpu(procs) -> float:
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        return total

    children = os.times()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        began = time.monotonic()
        am("list")
        time.sleep(max(0.0, min(2.0 - (time.monotonic() - began), end - time.monotonic())))
    done = os.times()
    am_list = (
        (
            done.children_user
            + done.children_system
            - children.children_user
            - children.children_system
        )
        * 60
        / seconds
    )

    # Shims count the ui's calls of each engine and of tmux.
    shims = work / "ui-shims"
    shims.mkdir()
    log = shims / "calls.log"
    for name in ("docker", "podman", "tmux"):
        if shutil.which(name):
            (shims / name).write_text(
                f'#!/bin/sh\necho "{name} $1" >> {log}\nexec {shutil.which(name)} "$@"\n'
            )
            (shims / name).chmod(0o755)
    session = f"bench-ui-{os.getpid()}"
    sh(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "40",
            "--",
            "env",
            f"AM_HOME={am.home}",
            f"PATH={shims}:{os.environ['PATH']}",
            *AM,
            "ui",
        ]
    )
    try:
        # env execs am: the pane's process is the ui.
        ui = psutil.Process(
            int(sh(["tmux", "display-message", "-p", "-t", f"={session}:", "#{pane_pid}"]).stdout)
        )
        time.sleep(5)  # start-up, not the steady cost
        log.write_text("")
        before = cpu([ui])
        time.sleep(seconds)
        ui_cpu = (cpu([ui]) - before) * 60 / seconds
        calls = log.read_text().splitlines()
    finally:
        sh(["tmux", "kill-session", "-t", f"={session}:"], check=False)
    per_minute = {c: calls.count(c) * 60 / seconds for c in sorted(set(calls))}

    daemons = [
        p
        for p in psutil.process_iter(["name"])
        if (p.info["name"] or "").startswith(("dockerd", "containerd"))
    ]
    stats_cost = None
    if "docker" in engines and daemons:
        before, began = cpu(daemons), time.monotonic()
        for _ in range(10):
            sh(["docker", "stats", "--no-stream"])
        took, during = time.monotonic() - began, cpu(daemons) - before
        before = cpu(daemons)
        time.sleep(took)
        stats_cost = max(0.0, during - (cpu(daemons) - before)) / 10
    am.stop_all()
    mix = f"{10 - len(containers)} tmux + {len(containers)} container agents"
    rows = [
        {
            "figure": f"am ui, {mix}: its CPU a minute (with the engine clients it runs)",
            "am": ui_cpu,
            "floor": am_list,
            "floor_what": "am list every 2 s",
            "target": 1.0,
            "unit": "cpu",
        },
        {
            "figure": "am ui: calls a minute",
            "am": ", ".join(f"{v:.0f} {k}" for k, v in per_minute.items()),
            "floor": None,
            "floor_what": "counted by shims",
            "target": None,
            "unit": "text",
        },
    ]
    if stats_cost is not None:
        rows.append(
            {
                "figure": "am ui: CPU a minute of dockerd and containerd for its docker "
                "stats calls",
                "am": stats_cost * per_minute.get("docker stats", 0),
                "floor": None,
                "floor_what": f"{stats_cost * 1000:.0f} ms a call, measured over 10 calls",
                "target": None,
                "unit": "cpu",
            }
        )
    return rows


# -- report --------------------------------------------------------------------------------


def fmt(value, unit="s"):
    if value is None:
        return "-"
    if unit == "bytes":
        return f"{value / 1024**2:.2f} MiB"
    if unit == "cores":
        return f"{value:.2f} cores"
    if unit == "text":
        return value
    if unit == "cpu":  # CPU seconds a minute
        return f"{value:.2f} s/min ({value / 60 * 100:.1f}% of a core)"
    if value < 0.1:
        return f"{value * 1000:.1f} ms"
    if unit == "calls":
        return str(value)
    return f"{value * 1000:.0f} ms"


def verdict(row) -> str:
    if row.get("target") is None or row.get("floor") in (None, 0):
        return "-"
    ratio = row["am"] / row["floor"]
    return "met" if ratio <= row["target"] else "missed"


def machine() -> list[str]:
    def v(argv):
        r = sh(argv, check=False)
        return (r.stdout or r.stderr).strip().splitlines()[0] if r.returncode == 0 else "n/a"

    return [
        f"- CPU: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"memory {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024**3:.0f} GiB",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}, {v(['git', '--version'])}, {v(['tmux', '-V'])}",
        "- docker: "
        + v(
            [
                "docker",
                "version",
                "--format",
                "client {{.Client.Version}}, server {{.Server.Version}}",
            ]
        ),
        f"- podman: {v(['podman', '--version'])}; runc: {v(['runc', '--version'])}; "
        f"{v(['runsc', '--version'])} (gVisor, ptrace platform)",
    ]


def report(rows, imports, runs, args) -> str:
    lines = ["| figure | am | floor | ratio | target | result |", "|---|---|---|---|---|---|"]
    for r in rows:
        unit = r.get("unit", "s")
        ratio = f"{r['am'] / r['floor']:.2f}x" if r.get("floor") else "-"
        target = r.get("note") or (f"<= {r['target']}x" if r.get("target") else "-")
        detail = f" ({r['detail']})" if r.get("detail") else ""
        lines.append(
            f"| {r['figure']}{detail} | {fmt(r['am'], unit)} | {fmt(r['floor'], unit)}"
            f" ({r['floor_what']}) | {ratio} | {target} | {verdict(r)} |"
        )
    imp = ["| module | cumulative import |", "|---|---|"]
    imp += [f"| `{name}` | {sec * 1000:.1f} ms |" for name, sec in imports]
    return "\n".join(lines), "\n".join(imp)


def write_section(doc: Path, name: str, body: str) -> None:
    """Replace what lies between <!-- NAME --> and <!-- /NAME --> in DOC with BODY."""
    text = doc.read_text()
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if start not in text or end not in text:
        raise SystemExit(f"{doc} has no {start} ... {end} section")
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    doc.write_text(f"{head}{start}\n{body}\n{end}{tail}")
    print(f"\nwrote the {name} section of {doc}", file=sys.stderr)


def leave_nothing(work: Path, engines: list[str]) -> None:
    """What the agents of the homes under WORK still run when the bench ends, as it ends
    (one that failed halfway, say): their containers, keepers and sessions. Their files go
    with WORK."""
    import bench_scale

    homes = {p.parent.parent for p in work.glob("**/state/state.json")}
    for home in sorted(homes):
        h = bench_scale.Home(bench_scale.Version.current(), home)
        for engine in engines:  # each halt ends the home's processes first
            with contextlib.suppress(Exception):
                h.halt(engine)
        if not engines:
            with contextlib.suppress(Exception):
                h.end_processes()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small repositories and 40 agents")
    ap.add_argument("--engines", default="docker,podman")
    ap.add_argument("--list-engine", default="docker")
    ap.add_argument(
        "--only",
        default="spawn,container,isolation,repeat,ops,pull,list,startup,ui,scale,flood,remote,idle",
        help="comma-separated figures to run: all of them rewrite the whole report; "
        "only scale, flood and remote, or only idle, rewrite their own section of it (remote: "
        "docs/scale.md); any other part prints its table and writes nothing",
    )
    ap.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    ap.add_argument(
        "--before",
        metavar="REV",
        help="also measure am at git revision REV for the scale, idle and flood "
        "figures, in the same run",
    )
    # Not /tmp: on these machines its directory tree allocates new files several times slower
    # than the rest of the same disk (measured), which would drown am's own cost in the floor's.
    # (The disk is ext4 without a journal: its inode allocator passes over every inode freed in
    # the last minutes, looking each up, and the test suite frees many in /tmp.)
    ap.add_argument(
        "--work-dir",
        default="/var/tmp",
        help="where the repositories, workspaces and AM_HOMEs are made",
    )
    args = ap.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    only = set(args.only.split(","))
    if only - set(ap.get_default("only").split(",")):
        ap.error(f"--only takes {ap.get_default('only')}")
    sys.path.insert(0, str(ROOT))
    # Byte-compiled, as pip installs a package (PYTHONDONTWRITEBYTECODE would otherwise make
    # every run compile am's sources again).
    subprocess.run(
        [PY, "-m", "compileall", "-q", str(ROOT / "am")], check=True, stdout=subprocess.DEVNULL
    )
    work = Path(tempfile.mkdtemp(prefix="am-bench-", dir=args.work_dir))
    rows: list[dict] = []
    try:
        print("generating repositories ...", file=sys.stderr)
        medium = make_repo(
            work / "medium", 200 if args.quick else 2000, 500 if args.quick else 5000
        )
        big = (
            make_repo(work / "big", 2000 if args.quick else 20000, 1000 if args.quick else 5000)
            if "repeat" in only
            else None
        )
        if only & {"spawn", "container", "repeat"} and args.work_dir != "/dev/shm":
            import bench_scale

            # What was deleted just before (another run's clean-up) costs each new file's
            # inode: the floors took 1.5 s instead of 0.1-0.2 s in a run begun 20 s after one.
            bench_scale.settle_disk()
        if "spawn" in only:
            print("spawn, tmux mode ...", file=sys.stderr)
            rows.append(bench_spawn_tmux(work, medium, args.runs))
        for e in engines if "container" in only else ():
            print(f"spawn, container mode, {e} ...", file=sys.stderr)
            rows.append(bench_spawn_container(work, medium, args.runs, e))
        for e in engines if "isolation" in only else ():
            print(f"runc and gVisor, {e} ...", file=sys.stderr)
            rows += bench_isolation(work, medium, args.runs, e)
        if "repeat" in only:
            print("repeat spawn through the cache ...", file=sys.stderr)
            rows += bench_repeat_spawn(work, big, args.runs)
        for e in engines if "ops" in only else ():
            print(f"diff, snapshot and the unsaved-work check, {e} ...", file=sys.stderr)
            rows += bench_workspace_ops(work, medium, args.runs, e)
        for e in ([None] + engines) if "pull" in only else ():
            print(f"pull and push, {e or 'tmux'} ...", file=sys.stderr)
            rows += bench_pull_push(work, medium, args.runs, e)
        if "list" in only:
            print("list and status at scale ...", file=sys.stderr)
            rows += bench_list_status(
                work, medium, args.runs, args.list_engine, 40 if args.quick else 200
            )
        if "ui" in only:
            print("am ui over 10 agents, a minute each way ...", file=sys.stderr)
            rows += bench_ui(work, medium, engines)
        if only & {"scale", "flood", "remote", "idle"}:
            import bench_scale

            small = make_repo(work / "small", 20, 50)
            rows += bench_scale.run(work, small, engines, args.runs, only, args.before)
        imports = []
        if "startup" in only:
            print("start-up ...", file=sys.stderr)
            start, imports = bench_startup(work, args.runs)
            rows += start
    finally:
        leave_nothing(work, engines)
        shutil.rmtree(work, ignore_errors=True)
    table, imp = report(rows, imports, args.runs, args)
    print(table)
    print()
    print(imp)
    sizes = (
        "quick: 200 commits/500 files and 2,000 commits/1,000 files, 40 agents"
        if args.quick
        else "2,000 commits/5,000 files (spawn) and 20,000 commits/5,000 "
        "files (repeat spawn), 200 agents"
    )
    if only == {"remote"}:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        write_section(
            ROOT / "docs" / "scale.md",
            "remote",
            f"{when}, medians of {args.runs} "
            "runs after a warm-up.\n\n" + "\n".join(machine()) + "\n\n" + table,
        )
        return 0
    if only == {"idle"}:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        write_section(
            Path(args.out),
            "idle",
            f"{when}, one sample each (medians of "
            f"{args.runs * 2} runs for am list)."
            "\n\n" + "\n".join(machine()) + "\n\n" + table,
        )
        return 0
    if only <= {"scale", "flood", "remote"} and only:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        rounds = max(1, min(args.runs, bench_scale.MAX_ROUNDS))
        write_section(
            Path(args.out),
            "scale",
            f"{when}: medians of {rounds} rounds in turn with the floor "
            f"for the 50 separate spawns; one sample for --count 50 and memory; medians of "
            f"{args.runs * 4} alternating pairs with the floor for list, {args.runs} for status."
            "\n\n" + "\n".join(machine()) + "\n\n" + table,
        )
        return 0
    if only != set(ap.get_default("only").split(",")):
        return 0  # a partial run: the table above, no report
    doc = ROOT / "docs" / "performance.md"
    head = doc.read_text().split("<!-- bench -->")[0] if doc.exists() else ""
    Path(args.out).write_text(
        head + "<!-- bench -->\n## Latest run\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, medians of {args.runs} runs "
        f"after a warm-up; repositories: {sizes}.\n\n"
        + "\n".join(machine())
        + "\n\n"
        + table
        + "\n\nSlowest imports of `am list` (`python -X importtime`, cumulative):\n\n"
        + imp
        + "\n"
    )
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

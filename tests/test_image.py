"""The agent image and its CLIs on both engines: --agents with all four, am image ls, doctor,
the CLI check before a spawn, and an am installed from a wheel building its image."""

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from helpers import assert_am_error, assert_nothing_made

pytestmark = pytest.mark.container
REPO = Path(__file__).resolve().parents[1]
ALL = ["aider", "claude", "codex", "gemini"]


def run(argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)


def test_agents_all_four_answer_in_the_image(am, repo, engine):
    """The one test that builds every CLI (about 2 GB): fetched once into the checkout's
    build cache, then built offline; each answers --version as the agent, with no network."""
    fetch = run(
        ["bash", REPO / "scripts" / "fetch-agent-clis.sh", "--runtime", engine, *ALL], timeout=1800
    )
    assert fetch.returncode == 0, fetch.stderr[-3000:]
    tag = f"am-agent:all-clis-{uuid.uuid4().hex[:8]}"
    try:
        res = am(
            "image",
            "build",
            "--runtime",
            engine,
            "--agents",
            "claude,codex,gemini,aider",
            "--tag",
            tag,
            env={"AM_OFFLINE": "1"},
            timeout=1800,
        )
        assert "--network none" in res.stderr and "downloading" not in res.stderr
        assert res.stdout.strip() == tag
        out = run(
            [
                engine,
                "run",
                "--rm",
                "--network",
                "none",
                "--read-only",
                "--user",
                "1000:1000",
                "--tmpfs",
                "/home/agent:rw,mode=1777",
                tag,
                "sh",
                "-c",
                'for c in claude codex gemini aider; do echo "$c=$($c --version 2>&1 | '
                'tail -n 1)"; done; node --version',
            ],
            timeout=300,
        )
        lines = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        assert "Claude Code" in lines["claude"] and "codex-cli" in lines["codex"], out
        assert lines["gemini"][:1].isdigit() and lines["aider"].startswith("aider "), out
        assert out.stdout.strip().endswith("v18.20.4")  # the image's own node stays Debian's
        listed = [
            r
            for r in json.loads(am("image", "ls", "--runtime", engine, "--json").stdout)
            if r["image"].endswith(tag)
        ]
        assert listed and listed[0]["clis"] == ALL
        assert tag in am("image", "ls", "--runtime", engine).stdout
        # The check before a spawn lets each profile run on it.
        agent = am.spawn(
            repo,
            "--container",
            "--runtime",
            engine,
            "--image",
            tag,
            "--agent",
            "codex",
            "--cmd",
            "echo CODEX-IMAGE-OK; sleep 300",
        )
        am.wait_log(agent, "CODEX-IMAGE-OK")
        am("stop", agent)
    finally:
        run([engine, "rmi", "-f", tag])


def test_spawn_refuses_an_image_without_the_profiles_cli(am, repo, engine):
    # Control: the image really lacks codex; docker would start it and exit 127.
    probe = run([engine, "run", "--rm", "am-agent:latest", "sh", "-c", "command -v codex"])
    assert probe.returncode != 0
    for agent in ("codex", "gemini", "aider"):
        res = am("spawn", repo, "--container", "--runtime", engine, "--agent", agent, check=False)
        line = assert_am_error(res)
        assert f"am-agent:latest in {engine.capitalize()} has no {agent} CLI" in line, line
        want = ",".join(sorted({"claude", agent}))
        assert f"am image build --runtime {engine} --agents {want} --tag am-agent:latest" in line, (
            line
        )
        assert "Preparing workspace" not in res.stderr  # refused before anything was made
        assert_nothing_made(am.home)


def test_doctor_names_the_clis_of_the_image(am, engine):
    rows = {r["check"]: r for r in json.loads(am("doctor", "--json").stdout)["checks"]}
    assert rows[f"{engine} image"]["ok"] is True
    assert "agent CLIs: claude" in rows[f"{engine} image"]["detail"]
    rows = {
        r["check"]: r
        for r in json.loads(am("doctor", "--json", env={"AM_AGENT": "gemini"}).stdout)["checks"]
    }
    row = rows[f"{engine} image"]
    assert row["ok"] is None and "no gemini for the default agent" in row["detail"]
    assert "--agents claude,gemini" in row["detail"]


def test_installed_wheel_builds_the_image_without_a_checkout(am, tmp_path, engine):
    """pip install of a wheel into a fresh venv: its am carries the Containerfile and scripts
    and builds (claude, fetched into its own cache) from a folder that is no checkout."""
    dist = tmp_path / "dist"
    res = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, REPO], timeout=600
    )
    assert res.returncode == 0, res.stderr
    wheel = next(dist.glob("am-*.whl"))
    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", venv]).returncode == 0
    res = run([venv / "bin" / "pip", "install", "-q", wheel], timeout=600)
    assert res.returncode == 0, res.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AM_", "PYTHON"))}
    env["AM_HOME"] = str(am.home)
    where = run(
        [
            venv / "bin" / "python",
            "-c",
            "import am.image as i; print(i.data_root()); print(i.build_dir())",
        ],
        cwd=elsewhere,
        env=env,
    )
    root, build = where.stdout.split()
    assert root.startswith(str(venv)) and root.endswith("am/_image"), where
    assert build.startswith(str(am.home)), build
    tag = f"am-agent:wheel-{uuid.uuid4().hex[:8]}"
    try:
        res = run(
            [
                venv / "bin" / "am",
                "image",
                "build",
                "--runtime",
                engine,
                "--tag",
                tag,
                "--agents",
                "claude",
            ],
            cwd=elsewhere,
            env=env,
            timeout=1800,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        assert "downloading claude" in res.stderr  # its own cache, said before fetching
        labels = json.loads(
            run([engine, "image", "inspect", "--format", "{{json .Config.Labels}}", tag]).stdout
        )
        assert labels["am.agent-clis"] == "claude"
        out = run([engine, "run", "--rm", "--network", "none", tag, "claude", "--version"])
        assert "Claude Code" in out.stdout
    finally:
        run([engine, "rmi", "-f", tag])


def test_podman_labels_are_read_again_when_its_image_store_changes(tmp_path, monkeypatch):
    """A local podman's image labels are read once and kept while podman's image file is
    unchanged (am/imagecache.py): the second check asks no podman, and a retag of the same
    name to an image with other labels is seen at once, as is its removal."""
    from containers import engine_ready

    from am import proc
    from am.backends.podman import Podman
    from am.paths import Layout

    engine_ready("podman")
    monkeypatch.delenv("CONTAINER_HOST", raising=False)
    tag = f"localhost/am-labels:{uuid.uuid4().hex[:8]}"
    built = []
    for clis in ("claude", "codex"):
        ctx = tmp_path / clis
        ctx.mkdir()
        (ctx / "Containerfile").write_text(
            f"FROM localhost/am-base:bookworm\nLABEL am.agent-clis={clis}\n"
        )
        res = run(["podman", "build", "-q", "-t", f"{tag}-{clis}", ctx], timeout=300)
        assert res.returncode == 0, res.stderr
        built.append(f"{tag}-{clis}")
    calls = []
    real = proc.run

    def counting(argv, **kw):
        calls.append(list(argv))
        return real(argv, **kw)

    monkeypatch.setattr(proc, "run", counting)
    layout = Layout(tmp_path, tmp_path / "state", tmp_path / "agents", tmp_path / "data", tmp_path)
    try:
        assert run(["podman", "tag", built[0], tag]).returncode == 0
        engine = Podman(layout=layout)
        assert engine.image_labels(tag)["am.agent-clis"] == "claude"  # podman's default store
        asked = len(calls)
        assert asked == 1, calls  # the control: podman was asked
        assert Podman(layout=layout).image_labels(tag)["am.agent-clis"] == "claude"
        assert len(calls) == asked  # from the cache: no podman
        assert run(["podman", "tag", built[1], tag]).returncode == 0
        assert Podman(layout=layout).image_labels(tag)["am.agent-clis"] == "codex"
        assert len(calls) == asked + 1
        assert run(["podman", "untag", tag]).returncode == 0
        assert Podman(layout=layout).image_labels(tag) is None
        # Agents spawned at once into a new AM_HOME: one of them asks podman, and the others
        # wait for its answer (eight threads, each with its own lock file descriptor). The
        # untag took every name of the codex image: the claude one still has its own.
        assert run(["podman", "tag", built[0], tag]).returncode == 0
        cold = Layout(*(tmp_path / "cold" / n for n in ("h", "state", "agents", "data", "c")))
        gate = threading.Barrier(8)
        got = []

        def check():
            gate.wait()
            got.append(Podman(layout=cold).image_labels(tag)["am.agent-clis"])

        before = len(calls)
        threads = [threading.Thread(target=check) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert got == ["claude"] * 8
        inspects = [c for c in calls[before:] if c[1:3] == ["image", "inspect"]]
        assert len(inspects) == 1, calls[before:]
    finally:
        run(["podman", "rmi", "-f", tag, *built])

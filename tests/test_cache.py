"""The repository cache: one mirror per URL; later clones borrow its objects and fetch only news."""

import json
import subprocess

import pytest
from containers import ENGINES, engine_ready, remove_containers
from helpers import GIT_ID, git


def generate_repo(path, commits: int, files: int = 200):
    """A repository with COMMITS commits over FILES files, made quickly with fast-import."""
    path.mkdir()
    git("init", "-q", "-b", "main", cwd=path)
    lines = []
    for i in range(1, commits + 1):
        blob = f"line {i}\n" * 20
        lines += [
            "commit refs/heads/main",
            f"mark :{i}",
            f"committer t <t@example.invalid> {1700000000 + i} +0000",
            f"data {len(f'c{i}')}",
            f"c{i}",
        ]
        if i > 1:
            lines.append(f"from :{i - 1}")
        lines += [f"M 644 inline f{i % files}.txt", f"data {len(blob)}", blob.rstrip("\n")]
    data = "\n".join(lines) + "\n"
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=data, text=True, check=True)
    git("checkout", "-q", "main", cwd=path)
    return path


def pack_bytes(repo) -> int:
    out = git("count-objects", "-v", cwd=repo)
    stats = dict(line.split(": ") for line in out.splitlines())
    return int(stats["size-pack"]) + int(stats["size"])


def dir_bytes(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture
def big(tmp_path):
    return generate_repo(tmp_path / "big", 3000)


def test_second_spawn_reads_no_history(am, big):
    url = f"file://{big}"
    first = am.spawn(url, "--cmd", "sleep 300")
    mirrors = list((am.home / "data" / "cache" / "mirrors").glob("*.git"))
    assert len(mirrors) == 1
    mirror = mirrors[0]
    before = pack_bytes(mirror)

    second = am.spawn(url, "--cmd", "sleep 300")
    assert pack_bytes(mirror) == before  # nothing new upstream: nothing fetched
    ws = am.home / "agents" / second
    assert (ws / ".git" / "objects" / "info" / "alternates").read_text().strip() == str(
        mirror / "objects"
    )
    # The workspace's own object store holds none of the history.
    assert pack_bytes(ws) == 0
    assert dir_bytes(ws / ".git") < dir_bytes(mirror / "objects") / 5
    assert git("rev-list", "--count", "HEAD", cwd=ws).strip() == "3000"
    assert git("remote", "get-url", "origin", cwd=ws).strip() == url

    # One new commit upstream: the next spawn fetches just that into the mirror.
    (big / "news.txt").write_text("news\n")
    git("add", "news.txt", cwd=big)
    git("commit", "-qm", "news", cwd=big)
    third = am.spawn(url, "--cmd", "sleep 300")
    grown = pack_bytes(mirror) - before
    assert 0 < grown < before / 10, (grown, before)  # the one commit, not the history
    assert git("log", "-1", "--format=%s", cwd=am.home / "agents" / third).strip() == "news"
    am("stop", first)


def test_agents_do_not_share_objects_or_refs(am, big):
    url = f"file://{big}"
    a = am.spawn(
        url,
        "--cmd",
        "echo a > a.txt && git add a.txt && git commit -qm from-a && echo A-DONE && sleep 300",
        env=GIT_ID,
    )
    b = am.spawn(url, "--cmd", "sleep 300")
    am.wait_log(a, "A-DONE")
    head_a = git("rev-parse", "HEAD", cwd=am.home / "agents" / a).strip()
    ws_b = am.home / "agents" / b
    res = subprocess.run(["git", "cat-file", "-e", head_a], cwd=ws_b)
    assert res.returncode != 0  # a's commit exists only in a's workspace
    mirror = next((am.home / "data" / "cache" / "mirrors").glob("*.git"))
    assert subprocess.run(["git", "cat-file", "-e", head_a], cwd=mirror).returncode != 0
    assert "am/" not in git("for-each-ref", cwd=mirror)


@pytest.mark.container
@pytest.mark.parametrize("engine", ENGINES)
def test_mirror_is_read_only_inside_container(am, big, engine):
    engine_ready(engine)
    url = f"file://{big}"
    am.spawn(url, "--cmd", "true")  # makes the mirror
    mirror = next((am.home / "data" / "cache" / "mirrors").glob("*.git"))
    probe = (
        f"git --no-pager log --oneline -1 && echo x > x.txt && git add x.txt && "
        f"git -c user.name=a -c user.email=b commit -qm inside && echo COMMITTED; "
        f"touch {mirror}/objects/planted 2>&1 || echo MIRROR-READ-ONLY; "
        f"ls {mirror}/refs 2>&1 | head -1; echo PROBE-END; sleep 300"
    )
    try:
        agent = am.spawn(url, "--container", "--runtime", engine, "--cmd", probe)
        log = am.wait_log(agent, "PROBE-END")
        assert "COMMITTED" in log and "MIRROR-READ-ONLY" in log
        assert not (mirror / "objects" / "planted").exists()
        info = json.loads(am("info", agent, "--json").stdout)
        assert info["status"] == "running"
        am("stop", agent)
    finally:
        remove_containers(engine, str(am.home))

"""Property 16: am pull and am push run nothing of the workspace, and the trusted repository
takes one checked commit from the agent's bundle.

The attacks of property 1 (configuration, hooks, filters, layouts), and those aimed at a push
(a pre-push hook, the remote's receive-pack program, a URL rewrite), are planted in an agent's
workspace; each positive control shows plain git running them. Then am log, am diff --stat,
am pull and am push run, and no marker may appear. A bundle is also made hostile: extra refs
(the sandbox's git replaced, as a compromised sandbox could), and an object git's checks
refuse (a tree entry named .git), which git 2.39's fetch from a bundle takes unchecked.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import assert_am_error, git

from am import bundle

from .conftest import plain_git
from .test_host_git import ATTACKS, REFUSED, cfg, control_add, modify

PROPERTY = "16 pull and push take one checked commit"
COMMIT = (
    "echo work > work.txt && git add work.txt && git commit -qm work && "
    "echo COMMITTED-$((0+1)); sleep 300"
)


def committed_agent(am, source: str) -> tuple[str, Path]:
    """A tmux agent that made one commit, stopped: ready to be planted."""
    agent_id = am.spawn(source, "--cmd", COMMIT)
    am.wait_log(agent_id, "COMMITTED-1")
    am("stop", agent_id)
    return agent_id, am.home / "agents" / agent_id


@pytest.fixture
def remote(repo, tmp_path) -> Path:
    path = tmp_path / "remote.git"
    git("clone", "-q", "--bare", repo, path)
    return path


def plant_push_hooks(ws, m):
    folder = ws / ".git" / "hooks"
    folder.mkdir(exist_ok=True)
    for name in ("pre-push", "reference-transaction", "post-update", "pre-auto-gc"):
        (folder / name).write_text(f"#!/bin/sh\n{m.payload()}\n")
        (folder / name).chmod(0o755)


def control_push(ws):
    plain_git(ws, "push", "origin", "HEAD:refs/heads/control")


def plant_receivepack(ws, m):
    cfg(ws, "remote.origin.receivepack", m.payload())


PUSH_ATTACKS = {
    "hooks of a push": (plant_push_hooks, control_push, None),
    "remote.origin.receivepack": (plant_receivepack, control_push, None),
}


def head_of(am, agent_id) -> str:
    return am("log", agent_id, "--json").stdout.split('"commit": "')[1][:40]


@pytest.mark.parametrize("attack", list(ATTACKS) + list(PUSH_ATTACKS))
def test_planted_code_never_runs_in_pull_or_push(am, remote, markers, attack):
    plant, control, refusal = {**ATTACKS, **PUSH_ATTACKS}[attack]
    url = f"file://{remote}"
    agent_id, ws = committed_agent(am, url)
    plant(ws, markers)
    control(ws)
    markers.take()
    results = [
        am(*cmd, agent_id, check=False)
        for cmd in (("log",), ("diff", "--stat"), ("pull",), ("push",))
    ]
    assert markers.fired() == []
    if refusal:
        for res in results:
            line = assert_am_error(res)
            assert REFUSED in line and refusal in line, line
        assert git("for-each-ref", cwd=remote).count(f"am/{agent_id}") == 0
        return
    for res in results:
        assert res.returncode == 0, res.stderr
    head = head_of(am, agent_id)
    assert git("rev-parse", f"am/{agent_id}", cwd=remote).strip() == head
    assert markers.fired() == []


@pytest.mark.parametrize("attack", ["core.fsmonitor", "filter.clean", "hooks"])
def test_planted_code_never_runs_in_a_pull_into_the_source(am, repo, markers, attack):
    agent_id, ws = committed_agent(am, str(repo))
    if attack == "hooks":
        hooks = ws / ".git" / "hooks"
        for name in ("post-index-change", "reference-transaction", "post-checkout"):
            (hooks / name).write_text(f"#!/bin/sh\n{markers.payload()}\n")
            (hooks / name).chmod(0o755)
        modify(ws)
        control_add(ws)
    else:
        ATTACKS[attack][0](ws, markers)
        ATTACKS[attack][1](ws)
    markers.take()
    res = am("pull", agent_id)
    assert markers.fired() == []
    assert git("rev-parse", f"am/{agent_id}", cwd=repo).strip() == res.stdout.strip()
    assert "not pulled: see am diff" in res.stderr  # the planted edit stays behind
    am("rm", "--force", agent_id)
    assert markers.fired() == []


def test_a_push_never_follows_the_workspaces_url_rewrite(am, remote, tmp_path):
    """The agent's config sends its pushes elsewhere (url.<evil>.insteadOf): plain git obeys,
    am pushes to the URL the agent was spawned from."""
    url = f"file://{remote}"
    agent_id, ws = committed_agent(am, url)
    evil = tmp_path / "evil.git"
    git("init", "-q", "--bare", evil)
    cfg(ws, f"url.file://{evil}.insteadOf", url)
    control_push(ws)
    assert "control" in git("branch", cwd=evil)  # the control's push went to evil
    git("branch", "-D", "control", cwd=evil)
    am("push", agent_id)
    assert git("branch", cwd=evil).strip() == ""
    assert f"am/{agent_id}" in git("branch", cwd=remote)


def wrapped_git(folder: Path, copy: Path) -> dict:
    """A git first on PATH that adds refs to every bundle it makes, and keeps a copy of it:
    what a compromised sandbox could send."""
    folder.mkdir()
    real = shutil.which("git")
    script = folder / "git"
    script.write_text(f"""#!/bin/sh
case " $* " in
*" bundle create "*)
    head=$(cat "$GIT_DIR/refs/am/head")
    mkdir -p "$GIT_DIR/refs/heads/am" "$GIT_DIR/refs/tags"
    for ref in heads/main heads/am/planted tags/planted; do
        echo "$head" > "$GIT_DIR/refs/$ref"
    done
    revs=$(cat)
    printf '%s\\nrefs/heads/main\\nrefs/heads/am/planted\\nrefs/tags/planted\\n' "$revs" |
        {real} "$@" | tee {copy}
    ;;
*) exec {real} "$@" ;;
esac
""")
    script.chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}


def test_a_bundle_with_extra_refs_adds_only_the_agents_branch(am, repo, tmp_path):
    agent_id, _ws = committed_agent(am, str(repo))
    main = git("rev-parse", "main", cwd=repo).strip()
    refs = git("for-each-ref", "--format=%(refname)", cwd=repo).split()
    copy = tmp_path / "hostile.bundle"
    res = am("pull", agent_id, env=wrapped_git(tmp_path / "bin", copy))
    head = res.stdout.strip()
    assert (
        "the agent's bundle also carried 3 other ref(s)" in res.stderr
        and "none was taken" in res.stderr
    )
    assert git("rev-parse", "main", cwd=repo).strip() == main
    assert sorted(git("for-each-ref", "--format=%(refname)", cwd=repo).split()) == sorted(
        refs + [f"refs/heads/am/{agent_id}"]
    )
    assert git("rev-parse", f"am/{agent_id}", cwd=repo).strip() == head
    # control: a plain fetch of everything the bundle carries moves the user's main
    control = tmp_path / "control"
    git("clone", "-q", repo, control)
    git("switch", "-q", "--detach", cwd=control)
    git("fetch", "-q", copy, "+refs/*:refs/*", cwd=control)
    assert git("rev-parse", "main", cwd=control).strip() == head != main
    assert git("rev-parse", "planted", cwd=control).strip() == head


def hostile_commit(ws: Path, case: str) -> tuple[str, str]:
    """A commit on HEAD whose objects git's checks refuse; returns it and the bad object."""

    def hashed(kind: str, data: str) -> str:
        return subprocess.run(
            ["git", "hash-object", "-w", "--literally", "-t", kind, "--stdin"],
            cwd=ws,
            input=data,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    head = git("rev-parse", "HEAD", cwd=ws).strip()
    tree = git("rev-parse", "HEAD^{tree}", cwd=ws).strip()
    if case == "gitmodulesUrl":
        # a submodule URL read as an option: the CVE-2018-17456 kind
        modules = hashed("blob", '[submodule "x"]\n\tpath = x\n\turl = --upload-pack=id\n')
        entries = git("ls-tree", "HEAD", cwd=ws) + f"100644 blob {modules}\t.gitmodules\n"
        tree = subprocess.run(
            ["git", "mktree"], cwd=ws, input=entries, capture_output=True, text=True, check=True
        ).stdout.strip()
        bad = modules
        commit = git("commit-tree", tree, "-p", head, "-m", "submodule", cwd=ws).strip()
    else:  # badEmail: an author line git cannot parse
        commit = bad = hashed(
            "commit",
            f"tree {tree}\nparent {head}\nauthor x <x 1 +0000\ncommitter c <c@x> 1 +0000\n\nbad\n",
        )
    git("update-ref", "HEAD", commit, cwd=ws)
    return commit, bad


@pytest.mark.parametrize("case", ["gitmodulesUrl", "badEmail"])
def test_an_object_gits_checks_refuse_never_enters_the_source(am, repo, tmp_path, case):
    agent_id, ws = committed_agent(am, str(repo))
    commit, bad = hostile_commit(ws, case)
    refs = git("for-each-ref", cwd=repo)
    copy = tmp_path / "copy.bundle"
    line = assert_am_error(
        am("pull", agent_id, check=False, env=wrapped_git(tmp_path / "bin", copy))
    )
    assert "the agent's bundle was refused: its objects failed git's checks" in line
    assert case in line
    assert git("for-each-ref", cwd=repo) == refs
    assert subprocess.run(["git", "cat-file", "-e", bad], cwd=repo).returncode != 0
    # control: git 2.39's own fetch from that bundle, object checks asked for, takes it
    control = tmp_path / "control"
    git("clone", "-q", repo, control)
    git(
        "-c",
        "fetch.fsckObjects=true",
        "-c",
        "transfer.fsckObjects=true",
        "fetch",
        "-q",
        copy,
        "refs/am/head:refs/heads/taken",
        cwd=control,
    )
    assert git("rev-parse", "taken", cwd=control).strip() == commit


def make_bundle(tmp_path: Path, repo: Path, refs: list[tuple[str, str]]) -> Path:
    """A bundle of REPO's history with the ref lines REFS (name, commit), made by hand."""
    pack = subprocess.run(
        ["git", "pack-objects", "--revs", "--stdout", "-q"],
        cwd=repo,
        input=b"HEAD\n",
        capture_output=True,
        check=True,
    ).stdout
    header = "# v2 git bundle\n" + "".join(f"{oid} {name}\n" for name, oid in refs) + "\n"
    path = tmp_path / "hand.bundle"
    path.write_bytes(header.encode() + pack)
    return path


@pytest.mark.parametrize("case", ["twice", "another commit", "not a bundle", "bad line"])
def test_a_bundle_that_is_not_what_was_asked_is_refused(repo, tmp_path, case):
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    side = git("rev-parse", "side", cwd=repo).strip()
    target = tmp_path / "target"
    git("init", "-q", "--bare", target)
    refs = {
        "twice": [(bundle.REF, head), (bundle.REF, head)],
        "another commit": [(bundle.REF, side)],
        "not a bundle": [],
        "bad line": [(bundle.REF, "xyz")],
    }[case]
    path = make_bundle(tmp_path, repo, refs)
    if case == "not a bundle":
        path.write_bytes(b"PACK" + path.read_bytes())
    with pytest.raises(bundle.Bad):
        bundle.receive(target, path, head)
    assert git("count-objects", "-v", cwd=target).count("in-pack: 0") == 1
    # control: the same bundle with the one ref am asks for goes in
    good = make_bundle(tmp_path, repo, [(bundle.REF, head)])
    assert bundle.receive(target, good, head) == []
    assert subprocess.run(["git", "cat-file", "-e", head], cwd=target).returncode == 0


def test_a_partial_bundle_is_refused_before_git_reads_it(repo, tmp_path):
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    git("update-ref", bundle.REF, head, cwd=repo)
    partial = tmp_path / "partial.bundle"
    git("bundle", "create", "-q", partial, "--filter=blob:none", bundle.REF, cwd=repo)
    target = tmp_path / "target"
    git("init", "-q", "--bare", target)
    with pytest.raises(bundle.Bad, match="capability line am does not take"):
        bundle.receive(target, partial, head)
    assert list((target / "objects" / "pack").iterdir()) == []
    # control: git's own fetch of it fails too, but leaves a promisor pack of the agent's
    # objects in the repository
    res = subprocess.run(
        ["git", "fetch", "-q", partial, f"{bundle.REF}:refs/heads/taken"],
        cwd=target,
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0
    assert [p.suffix for p in (target / "objects" / "pack").iterdir()].count(".promisor") == 1


INSIDE = (
    "export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@x GIT_COMMITTER_NAME=a "
    "GIT_COMMITTER_EMAIL=a@x && echo work > work.txt && git add work.txt && "
    "git commit -qm work && "
    'git config core.fsmonitor "{fsmonitor}" && '
    'echo "* filter=evil" > .gitattributes && git config filter.evil.clean "{filter}" && '
    'git config remote.origin.receivepack "{receivepack}" && '
    'printf "#!/bin/sh\\n{prepush}\\n" > .git/hooks/pre-push && '
    "chmod +x .git/hooks/pre-push && echo edit >> README && echo PLANTED-$((0+1)); "
    "sleep 300"
)


@pytest.mark.container
def test_planted_from_inside_a_container_never_runs_in_pull_or_push(am, remote, engine, markers):
    names = ("fsmonitor", "filter", "receivepack", "prepush")
    agent_id = am.spawn(
        f"file://{remote}",
        "--container",
        "--runtime",
        engine,
        "--cmd",
        INSIDE.format(**{n: markers.payload(n) for n in names}),
    )
    am.wait_log(agent_id, "PLANTED-1", timeout=120)
    ws = am.home / "agents" / agent_id
    plain_git(ws, "status")
    plain_git(ws, "add", "--all")
    plain_git(ws, "push", "origin", "HEAD:refs/heads/control")
    plain_git(ws, "push", "--receive-pack=git-receive-pack", "origin", "HEAD:refs/heads/control")
    for name in names:
        markers.take(name)
    for state in ("running", "stopped"):  # read by exec, then in a throwaway container
        out = {
            cmd: am(*cmd, agent_id) for cmd in (("log",), ("diff", "--stat"), ("pull",), ("push",))
        }
        assert markers.fired() == [], f"a {state} agent"
        assert "work.txt" in out[("diff", "--stat")].stdout and "edit" not in out[("log",)].stdout
        am("stop", agent_id)
    head = head_of(am, agent_id)
    assert git("rev-parse", f"am/{agent_id}", cwd=remote).strip() == head
    assert markers.fired() == []

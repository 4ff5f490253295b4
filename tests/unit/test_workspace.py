"""Pure composition and checks of the workspace operations: sandbox command lines, the podman
seccomp rule, record checks, capped reads, and what wsops refuses (real git, no engine)."""

import os
import time
from pathlib import Path

import pytest
from helpers import git

from am import paths, proc, records, workspace
from am.backends.docker import Docker
from am.backends.podman import NEW_NAMESPACES, Podman, no_new_namespaces
from am.errors import AmError

LIMITS = {"memory": "1g", "cpus": "1", "pids": 50}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AM_HOME", str(tmp_path / "home"))
    return paths.layout()


@pytest.mark.parametrize("iso", ["runc", "gvisor"])
@pytest.mark.parametrize("eng", [Docker(), Podman()])
def test_sandbox_argv_has_the_agents_policy_and_a_read_only_workspace(eng, iso, home, tmp_path):
    from am import isolation

    if isinstance(eng, Podman) and not Path("/usr/share/containers/seccomp.json").is_file():
        pytest.fail("podman's default seccomp profile is missing: install containers-common")
    mounts = [(tmp_path / "ws", "/workspace", True)]
    argv = eng.sandbox_argv(
        "am_op-x-1",
        "img:1",
        str(home.root),
        "x",
        LIMITS,
        mounts,
        0,
        0,
        ["python3", "-I", "-c", "SRC", "diff"],
        iso,
    )
    head = argv[: argv.index("--")]
    start = isolation.run_head(eng.runtime, iso, "none")  # the agent's own kernel isolation
    assert argv[: len(start) + 1] == [*start, "--rm"]
    pids = isolation.pids_args(iso, 50, os.cpu_count() or 1)
    assert head[head.index("--pids-limit") + 1] == pids[1]
    from am.backends.engine import agent_uid

    uid = agent_uid()  # what a root am maps agents to (issue 18): never a real account
    for flag, value in (
        ("--network", "none"),
        ("--memory", "1g"),
        ("--cap-drop", "ALL"),
        ("--user", f"{uid}:{uid}"),
        ("--entrypoint", "python3"),
    ):
        assert head[head.index(flag) + 1] == value
    assert "--read-only" in head and "no-new-privileges" in head
    assert f"am.home={home.root}" in head
    assert f"type=bind,source={tmp_path / 'ws'},target=/workspace,readonly" in head
    assert argv[argv.index("--") + 1 :] == ["img:1", "-I", "-c", "SRC", "diff"]
    if isinstance(eng, Podman):
        assert any(a.startswith("seccomp=") for a in head)


def test_exec_argv_runs_as_the_agents_user():
    from am.backends.engine import agent_uid

    argv = Docker().exec_argv("am-x", 0, 0, ["python3"])
    uid = agent_uid()
    assert argv[:6] == ["docker", "exec", "--user", f"{uid}:{uid}", "--workdir", "/"]
    assert argv[-2:] == ["am-x", "python3"]
    assert argv[argv.index("--env") + 1].startswith("PATH=/usr/local/sbin:")  # not ~/.local
    assert Podman().exec_argv("am-x", 1234, 99, ["python3"])[2:4] == ["--user", "1234:99"]


def test_podman_profile_allows_no_new_namespace():
    default = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["read", "clone", "clone3", "unshare", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["unshare"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["X"]}},
        ],
    }
    out = no_new_namespaces(default)
    assert out["syscalls"][0]["names"] == ["read", "write"]
    for rule in out["syscalls"]:
        if set(rule["names"]) & {"clone", "unshare"} and rule["action"] == "SCMP_ACT_ALLOW":
            arg = rule["args"][0]
            assert (arg["value"], arg["valueTwo"], arg["op"]) == (
                NEW_NAMESPACES,
                0,
                "SCMP_CMP_MASKED_EQ",
            )
    clone3 = [r for r in out["syscalls"] if r["names"] == ["clone3"]]
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    assert default["syscalls"][0]["names"][1] == "clone"  # the input is not changed


def good_record(layout, agent_id="a1") -> dict:
    return {
        "id": agent_id,
        "mode": "container",
        "runtime": "docker",
        "workspace": str(layout.workspace(agent_id)),
        "log": str(layout.log_file(agent_id)),
        "session": f"am-{agent_id}",
        "container": f"am-{agent_id}",
        "base_commit": "a" * 40,
        "mirror": str(layout.cache / "mirrors" / "r-1.git"),
    }


@pytest.mark.parametrize(
    "change, what",
    [
        ({"workspace": "/etc"}, "workspace"),
        ({"workspace": "{ws}/../../other"}, "workspace"),
        ({"log": "/etc/shadow"}, "log"),
        ({"network_log": "/etc/shadow"}, "network log"),
        ({"session": "other"}, "session"),
        ({"container": "postgres"}, "container"),
        ({"runtime": "sh"}, "runtime"),
        ({"mode": "root"}, "mode"),
        ({"mirror": "/home/u/.ssh"}, "mirror"),
        ({"base_commit": "--evil"}, "base_commit"),
        ({"id": "../x"}, "id"),
        ({"worktree": True, "source": "{agents}/other"}, "agent's workspace"),
    ],
)
def test_record_checks(home, change, what):
    record = good_record(home)
    assert records.problems(record, home) == []
    for k, v in change.items():
        change[k] = (
            v.format(ws=record["workspace"], agents=home.workspaces) if isinstance(v, str) else v
        )
    record.update(change)
    found = records.problems(record, home)
    assert found and what in found[0], found
    with pytest.raises(records.Invalid) as e:
        records.check(record, home, "a1")
    assert "am rm --force a1" in e.value.hint
    assert records.problems(good_record(home), home, key="other")  # filed under another id


def test_capped_reads():
    with pytest.raises(proc.TooLarge):
        proc.run_bytes(["yes"], limit=1 << 16, timeout=30)
    started = time.monotonic()
    killed = []
    with pytest.raises(proc.TimedOut):
        proc.run_bytes(["sleep", "30"], limit=100, timeout=0.5, on_timeout=lambda: killed.append(1))
    assert time.monotonic() - started < 10 and killed == [1]
    code, out, err = proc.run_bytes(
        ["sh", "-c", "printf 'a\\0b'; echo oops >&2; exit 3"], limit=100, timeout=30
    )
    assert (code, out, err) == (3, b"a\0b", "oops\n")


def test_wsops_reads_only_a_layout_am_made(repo, tmp_path):
    ops = workspace.at_path(repo)
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    assert ops.head() == workspace.Head(head, "main")
    assert ops.unsaved() == ["2 commit(s) the source does not have"]  # it has no remote
    (repo / "new.txt").write_text("x\n")
    git("commit", "--allow-empty", "-qm", "local", cwd=repo)
    assert ops.unsaved() == [
        "1 uncommitted or untracked file(s)",
        "3 commit(s) the source does not have",
    ]
    # a .git file (a gitdir redirection) is refused before any git runs
    gitdir = tmp_path / "elsewhere"
    (repo / ".git").rename(gitdir)
    (repo / ".git").write_text(f"gitdir: {gitdir}\n")
    with pytest.raises(workspace.Refused, match="not the folder am cloned"):
        ops.unsaved()
    with pytest.raises(AmError, match="not a commit id"):
        ops.diff("HEAD")


def test_untrusted_answers_are_checked(monkeypatch, repo):
    ops = workspace.at_path(repo)
    answers = iter(
        [
            b'{"changed": -1, "submodules": 0, "ahead": 0}',
            b"[]",
            b'{"head": "../../etc", "branch": "x\\u001b[31m"}',
        ]
    )
    monkeypatch.setattr(proc, "run_bytes", lambda *a, **k: (0, next(answers), ""))
    with pytest.raises(AmError, match="not valid"):
        ops.unsaved()
    with pytest.raises(AmError, match="not valid"):
        ops.unsaved()
    assert ops.head() == workspace.Head(None, None)

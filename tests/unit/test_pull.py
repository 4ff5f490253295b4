"""The parts of pull, push and log that compose or parse: command lines, headers, answers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import git

from am import bundle, workspace
from am.commands.pull import Pulled
from am.errors import AmError

OID = "a" * 40


def test_the_fetch_names_one_ref_and_follows_nothing():
    argv = bundle.fetch_argv(Path("/r"), Path("/c/x.bundle"))
    refspecs = argv[argv.index("--") + 1 :]
    assert refspecs == ["/c/x.bundle", "refs/am/head"]  # no destination, no '+', no glob
    for flag in ("--no-tags", "--no-recurse-submodules", "--no-write-fetch-head"):
        assert flag in argv
    assert "fetch.fsckObjects=true" in argv and "transfer.fsckObjects=true" in argv
    assert bundle.index_pack_argv(Path("/r"), Path("/c/x.pack"))[-4:] == [
        "--stdin",
        "--fix-thin",
        "--strict",
        "/c/x.pack",
    ]


@pytest.mark.parametrize(
    "header, ok",
    [
        (
            b"# v2 git bundle\n-" + b"b" * 40 + b" base\n" + OID.encode() + b" refs/am/head\n\n",
            True,
        ),
        (b"# v3 git bundle\n@object-format=sha1\n" + OID.encode() + b" refs/am/head\n\n", True),
        (b"# v2 git bundle\n@object-format=sha1\n" + OID.encode() + b" refs/am/head\n\n", False),
        # a partial bundle would leave the commit's trees and blobs missing in the source
        (b"# v3 git bundle\n@filter=blob:none\n" + OID.encode() + b" refs/am/head\n\n", False),
        (b"# v3 git bundle\n@object-format=md5\n" + OID.encode() + b" refs/am/head\n\n", False),
        (b"# v2 git bundle\n" + OID.encode() + b" refs/am/head\n", False),  # no end of header
        (b"# v2 git bundle\nnot-an-id refs/am/head\n\n", False),
        (b"# v4 git bundle\n" + OID.encode() + b" refs/am/head\n\n", False),
    ],
)
def test_bundle_headers_are_parsed_as_untrusted_bytes(tmp_path, header, ok):
    path = tmp_path / "b"
    path.write_bytes(header + b"PACK")
    if not ok:
        with pytest.raises(bundle.Bad):
            bundle.read_header(path)
        return
    parsed = bundle.read_header(path)
    assert parsed.refs == (("refs/am/head", OID),)
    assert path.read_bytes()[parsed.pack_offset :] == b"PACK"


def test_excludes_are_commit_ids_only_and_bounded():
    many = [f"{i:040x}" for i in range(workspace.MAX_EXCLUDE + 10)]
    args = workspace.excludes(["--upload-pack=x", "HEAD", None, many[0], *many])
    assert args[:2] == ["--exclude", many[0]]
    assert args[1::2] == many[: workspace.MAX_EXCLUDE] and set(args[::2]) == {"--exclude"}


def test_a_commit_from_the_log_answer_is_checked():
    good = {
        "commit": OID,
        "parents": [OID],
        "author": {"name": "a", "email": "e", "date": None},
        "committer": None,
        "message": "m\n",
        "extra": "dropped",
    }
    assert workspace.checked_commit(good) == {k: v for k, v in good.items() if k != "extra"}
    for bad in (
        {**good, "parents": ["--x"]},
        {**good, "commit": "HEAD"},
        {**good, "message": 3},
        {**good, "author": {"name": 1, "email": "e"}},
    ):
        with pytest.raises((TypeError, KeyError)):
            workspace.checked_commit(bad)


def test_pull_summaries():
    base = dict(agent="x", repo="/src", path="/src", branch="am/x", head="c" * 40)
    assert (
        "Created am/x with 2 commit(s) in /src: now at cccccccccccc"
        == Pulled(**base, new="c" * 40, commits=2, since_base=2).summary()
    )
    assert (
        "Fast-forwarded am/x by 1 commit(s) in /src: now at cccccccccccc, 3 since its base"
        == Pulled(**base, old="b" * 40, new="c" * 40, commits=1, since_base=3).summary()
    )
    assert "up to date" in Pulled(**base, old="c" * 40, new="c" * 40).summary()
    assert "nothing to pull" in Pulled(**base, new=None).summary()


def wsops(*args: str, cwd: Path) -> bytes:
    src = Path(workspace.__file__).with_name("wsops.py")
    return subprocess.run(
        [sys.executable, "-I", str(src), *args], cwd=cwd, capture_output=True, check=True
    ).stdout


def test_the_bundle_op_sends_nothing_the_trusted_side_has(repo, tmp_path):
    ws = tmp_path / "ws"
    git("clone", "-q", repo, ws)
    base = git("rev-parse", "HEAD", cwd=ws).strip()
    (ws / "new.txt").write_text("x\n")
    git("add", "new.txt", cwd=ws)
    git("commit", "-qm", "one", cwd=ws)
    head = git("rev-parse", "HEAD", cwd=ws).strip()
    out = wsops("bundle", str(ws), "--exclude", base, "--exclude", "f" * 40, cwd=tmp_path)
    line, _, data = out.partition(b"\n")
    assert json.loads(line) == {
        "head": head,
        "branch": "main",
        "changed": 0,
        "submodules": 0,
        "commits": 1,
    }
    (tmp_path / "b.bundle").write_bytes(data)
    parsed = bundle.read_header(tmp_path / "b.bundle")
    assert parsed.refs == (("refs/am/head", head),) and parsed.prerequisites == (base,)
    # everything is there already: the JSON line alone
    out = wsops("bundle", str(ws), "--exclude", head, cwd=tmp_path)
    assert json.loads(out)["commits"] == 0 and out.count(b"\n") == 1
    # the log's JSON: parsed from the commit object
    commits = json.loads(wsops("log", str(ws), base, "--json", cwd=tmp_path))["commits"]
    assert [c["commit"] for c in commits] == [head] and commits[0]["parents"] == [base]
    assert workspace.checked_commit(commits[0])["author"]["email"] == "t@example.invalid"
    assert commits[0]["message"] == "one\n"


def test_log_refuses_a_base_that_is_not_a_commit_id():
    ops = workspace.at_path(Path("/nonexistent"))
    with pytest.raises(AmError):
        ops.log("HEAD~1")

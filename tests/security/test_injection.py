"""Property 3: no argument or mount injection, through the real CLI.

Values holding ':', ',', '=', a newline or a leading '-' are refused before anything is made, or
passed where they cannot become a flag or a mount option. NUL cannot be passed in an argument
list at all; the validators are checked with it directly.
"""

import pytest
from containers import engine_ready
from helpers import assert_am_error, assert_nothing_made, git

PROPERTY = "3 no argument or mount injection"

NASTY = [":x", "a:b", "a,b", "a=b", "a\nb", "-rf", "--help"]


def refused(am, *args, expect: str, env=None):
    line = assert_am_error(am("spawn", *args, check=False, env=env))
    assert expect in line, line
    assert_nothing_made(am.home)
    return line


@pytest.mark.parametrize("name", NASTY)
def test_names(am, repo, name):
    refused(am, repo, f"--name={name}", "--cmd", "true", expect="invalid agent name")


@pytest.mark.parametrize("branch", [":x", "a:b", "a\nb", "-rf", "--orphan", "a..b"])
def test_branches_refused(am, repo, branch):
    refused(am, repo, f"--branch={branch}", "--cmd", "true", expect="invalid branch name")


@pytest.mark.parametrize("branch", ["a,b", "a=b", "x,y=z"])
def test_branches_passed_safely(am, repo, branch):
    """',' and '=' are legal in git branch names; they only ever reach git as one argument."""
    agent_id = am.spawn(repo, f"--branch={branch}", "--cmd", "sleep 300")
    ws = am.home / "agents" / agent_id
    assert git("symbolic-ref", "--short", "HEAD", cwd=ws).strip() == branch
    assert am.info(agent_id)["branch"] == branch
    am("rm", "--force", agent_id)


@pytest.mark.parametrize("base", ["-x", "--output=/tmp/pwned", "main\n", "main:README"])
def test_base_refs(am, repo, base, tmp_path):
    line = assert_am_error(am("spawn", repo, f"--base={base}", "--cmd", "true", check=False))
    assert "base" in line
    assert_nothing_made(am.home)


@pytest.mark.parametrize("worktree", [False, True])
def test_base_option_never_reaches_git_as_option(am, repo, worktree, tmp_path):
    out = tmp_path / "pwned"
    args = ["--worktree"] if worktree else []
    assert_am_error(
        am("spawn", repo, *args, f"--base=--output={out}", "--cmd", "true", check=False)
    )
    assert not out.exists()


@pytest.mark.parametrize("source", ["-x", "--upload-pack=touch /tmp/am-pwned"])
def test_sources(am, source, tmp_path):
    res = am("spawn", "--cmd", "true", "--", source, check=False)
    assert "invalid source" in assert_am_error(res)
    assert_nothing_made(am.home)


def test_source_path_with_separators_is_passed_safely(am, repo, tmp_path):
    odd = tmp_path / "re,po:x=y"
    repo.rename(odd)
    agent_id = am.spawn(odd, "--cmd", "sleep 300")
    assert am.info(agent_id)["source"] == str(odd)
    am("rm", "--force", agent_id)


@pytest.mark.parametrize(
    "domain",
    [
        "a.com,b.com",
        "a.com:x",
        "a.com:443:1",
        "-x",
        "a.com\nb.com",
        "a=b",
        "127.0.0.1",
        "localhost",
    ],
)
def test_domains(am, repo, domain):
    refused(
        am,
        repo,
        "--container",
        f"--allow-domain={domain}",
        "--network",
        "none",
        "--cmd",
        "true",
        expect="invalid --allow-domain",
    )


@pytest.mark.parametrize("item", ["A:B", "A,B", "A\nB=1", "-x", "=x", "A-B=1", "1A=x"])
def test_env_names(am, repo, item):
    refused(am, repo, f"--env={item}", "--cmd", "true", expect="invalid --env name")


@pytest.mark.parametrize("image", ["--privileged", "-v/:/host", "img x", "img\n--privileged"])
def test_images(am, repo, image):
    refused(am, repo, "--container", f"--image={image}", "--cmd", "true", expect="invalid --image")


@pytest.mark.parametrize("gpus", ['"device=0', "0,--privileged", "all\n", "-1"])
def test_gpus(am, repo, gpus):
    refused(am, repo, "--container", f"--gpus={gpus}", "--cmd", "true", expect="invalid --gpus")


@pytest.mark.container
@pytest.mark.parametrize("home", ["am,home", "am:home", "am\nhome"])
def test_mount_sources_from_am_home(am, repo, tmp_path, home):
    """A workspace path that would add mount options is refused before a container starts."""
    engine_ready("docker")
    odd = tmp_path / home
    res = am(
        "spawn",
        repo,
        "--container",
        "--runtime",
        "docker",
        "--cmd",
        "true",
        check=False,
        env={"AM_HOME": str(odd)},
    )
    assert "cannot mount" in assert_am_error(res)
    assert not (odd / "agents").exists() or list((odd / "agents").iterdir()) == []


@pytest.mark.parametrize("value", ["a\0b", "a\0", "\0"])
def test_nul_is_refused_by_every_validator(value):
    from pathlib import Path

    from am import git, ids, plan
    from am.backends.engine import check_mount_path
    from am.errors import AmError

    for check in (
        ids.validate_name,
        git.check_branch,
        plan.check_domain,
        plan.check_image,
        plan.check_gpus,
        plan.check_base,
        git.check_source,
        lambda v: check_mount_path(Path("/tmp") / v),
        lambda v: plan.parse_env([v + "=1"], {}),
    ):
        with pytest.raises(AmError):
            check(value)

"""Property 1, planted for real: a container agent writes the attack into its own workspace.

The payload names a host path (the marker folder); it means nothing inside the container, but it
is what plain git on the host runs. am reads the workspace in the agent's sandbox with a git
folder of its own, and must run none of it: planted configuration is never read (am diff shows
the agent's work), a layout am did not make is refused.
"""

import pytest
from helpers import assert_am_error

from .conftest import plain_git
from .test_host_git import REFUSED, am_commands_leave_no_marker

PROPERTY = "1 host git runs no repository code"
pytestmark = pytest.mark.container


ATTACKS = {
    "core.fsmonitor": ('git config core.fsmonitor "{p}" && echo edit >> README', ("status",), None),
    "textconv": (
        'echo "* diff=evil" > .gitattributes && git config diff.evil.textconv "{p}" '
        "&& echo edit >> README",
        ("diff",),
        None,
    ),
    "gitdir redirection": (
        'mv .git .hidden && git --git-dir=.hidden config core.fsmonitor "{p}"'
        ' && echo "gitdir: $PWD/.hidden" > .git && echo edit >> README',
        ("status",),
        "its .git is not the folder am cloned",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_planted_from_inside(am, repo, engine, markers, attack):
    script, control, refusal = ATTACKS[attack]
    agent = am.spawn(
        repo,
        "--container",
        "--runtime",
        engine,
        "--cmd",
        script.format(p=markers.payload()) + " && echo PLANTED; sleep 300",
    )
    am.wait_log(agent, "PLANTED")
    am("stop", agent)
    ws = am.home / "agents" / agent
    if attack == "gitdir redirection":
        # inside, the .git file names /workspace/.hidden; on the host the agent would aim at
        # the host path: the same attack, as the agent would write it knowing where it lives
        (ws / ".git").write_text(f"gitdir: {ws / '.hidden'}\n")
    plain_git(ws, *control)
    markers.take()
    diff = am("diff", agent, check=False)
    if refusal:
        assert REFUSED in assert_am_error(diff)
    else:
        assert "+edit" in diff.stdout, diff.stderr
    am_commands_leave_no_marker(am, agent, ws, markers, refusal)

"""tmux's own server, as am's sessions meet it: real tmux, a server of the test's own."""

import subprocess

from am import session

GONE = "server exited unexpectedly"


def test_a_session_starts_while_the_servers_last_session_ends(tmp_path, monkeypatch):
    """tmux's server exits once its last session has ended (an agent that just finished). A
    new-session that reached it in that moment fails with 'server exited unexpectedly'
    (control: plain tmux, in the same loop); am's start tries again, on a new server."""
    monkeypatch.setenv("TMUX_TMPDIR", str(tmp_path))  # a server of this test's own
    monkeypatch.delenv("TMUX", raising=False)
    log = tmp_path / "logs" / "a.log"
    control, ours = 0, 0
    for i in range(2000):
        plain = subprocess.run(
            ["tmux", "new-session", "-d", "-s", f"plain{i}", "exit 0"],
            capture_output=True,
            text=True,
        )
        control += GONE in plain.stderr
        session.start(f"ours{i}", ["sh", "-c", "exit 0"], log, "/home-of-test")  # raises
        ours += 1
        if control >= 3 and ours >= 200:
            break
    assert control >= 1, "tmux never showed the race here: the test proves nothing"
    subprocess.run(["tmux", "kill-server"], capture_output=True)

"""A real terminal for tests: a private tmux server whose pane shows whether escape sequences
were obeyed (its title, its screen)."""

import shlex
import subprocess
import time
import uuid
from pathlib import Path

TITLE = "\x1b]2;PWNED\x07"  # sets the window (pane) title
CLEAR = "\x1b[2J\x1b[H"  # clears the screen


class Terminal:
    """A tmux server of the test's own, one pane at a time, running sh."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.sock = str(folder / "tmux.sock")
        self.env = env
        self.folder = folder
        self.pane = None

    def tmux(self, *args: str) -> str:
        res = subprocess.run(
            ["tmux", "-S", self.sock, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    def run(self, command: str) -> str:
        """COMMAND in a new pane (a clean title and screen); the screen once it is done."""
        name = self.start(command)
        return self.wait(lambda screen: f"DONE-{name}" in screen, f"{command!r} did not finish")

    def start(self, command: str) -> str:
        """COMMAND started in a new pane, as for run(); the pane's name, without waiting."""
        name = f"p{uuid.uuid4().hex[:6]}"
        script = self.folder / f"{name}.sh"
        script.write_text(f"echo BEFORE-{name}\n{command}\necho\necho DONE-{name}\nsleep 600\n")
        # The pane waits for a key before it runs the script, so the title is reset first (a
        # title survives a respawn).
        command_line = f"read go; sh {script}"
        if self.pane is None:
            self.tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "45", command_line)
        else:
            self.tmux("respawn-pane", "-k", "-t", "t", command_line)
        self.tmux("select-pane", "-t", "t", "-T", "clean")
        self.tmux("send-keys", "-t", "t", "Enter")
        self.pane = name
        return name

    def wait(self, done, what: str, timeout: float = 60) -> str:
        """The pane's screen once DONE(screen) holds."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.tmux("capture-pane", "-p", "-J", "-t", "t")
            if done(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}:\n{screen}")
            time.sleep(0.1)

    def title(self) -> str:
        return self.tmux("display-message", "-p", "-t", "t", "#{pane_title}").strip()

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True)


def am_cmd(am, *args: str) -> str:
    """A shell command line running the am of the test (fixture ``am``) with ARGS."""
    return " ".join(shlex.quote(a) for a in [*am.argv, *args])


def assert_obeyed(term: Terminal, raw: str | bytes, marker: str = "CONTROL") -> None:
    """The positive control: RAW printed as is in the pane retitles it and clears it."""
    path = term.folder / "raw.bin"
    path.write_bytes(raw.encode() if isinstance(raw, str) else raw)
    screen = term.run(f"cat {path}; echo {marker}")
    assert term.title() == "PWNED"
    assert "BEFORE-" not in screen and marker in screen  # the screen was cleared


def assert_shown(term: Terminal, screen: str) -> None:
    """The sequence arrived as visible text and did nothing."""
    assert term.title() != "PWNED", screen
    assert "BEFORE-" in screen, screen  # not cleared
    assert "\\x1b]2;PWNED\\x07" in screen, screen

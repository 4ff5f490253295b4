"""The README's promises about how am is set up and tested hold for what CI really runs."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fresh_machine_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("On a fresh Debian 12", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readmes_test_command():
    demo, test = fresh_machine_commands()
    assert demo == "sudo make setup && make demo"  # root's step, then the user's
    assert test.startswith("sudo ") and test.endswith("sudo make test")  # the suite creates a
    # user: it runs as root, as CI does
    ci = [
        line.split("#", 1)[0].strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert test.replace("sudo ", "") in ci, ci  # CI is root already


def test_readme_points_nowhere_outside_the_repository():
    text = (REPO / "README.md").read_text()
    assert not re.search(r"\]\((\.\./|/)", text) and "../" not in text
    for link in re.findall(r"\]\(([^)#]+)", text):
        if "://" not in link:
            assert (REPO / link).exists(), link

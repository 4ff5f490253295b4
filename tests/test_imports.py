"""What ``am list`` imports: its start-up stays cheap only while the spawn's modules stay out
(docs/performance.md). Run in a fresh interpreter, as a user runs it."""

import json
import os
import subprocess
import sys

# The spawn's modules and heavy third-party ones: none is needed to list agents.
NOT_FOR_LIST = {
    "am.plan",
    "am.git",
    "am.gitsafe",
    "am.cache",
    "am.backends.network",
    "am.snapshot",
    "am.workspace",
    "am.backends.docker",
    "am.backends.podman",
    "sh",
    "textual",
    "publicsuffixlist",
    "am.commands.spawn",
}

PROBE = """
import json, sys
from am.main import main
code = main(["list", "--json"])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def imported_by(args_env: dict) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", PROBE], env=args_env, capture_output=True, text=True, timeout=60
    )
    return json.loads(res.stderr.strip().splitlines()[-1])


def test_am_list_imports_no_plan_git_or_engine_modules(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AM_", "TMUX"))}
    (tmp_path / "config.toml").write_text("idle_after = 300\n[limits]\npids = 50\n")
    found = imported_by({**env, "AM_HOME": str(tmp_path)})
    assert found["code"] == 0
    modules = set(found["modules"])
    assert {"am.commands.list_", "am.config", "am.validate", "am.store"} <= modules  # it ran
    assert modules & NOT_FOR_LIST == set()

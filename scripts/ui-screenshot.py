#!/usr/bin/env python3
"""The screenshot of `am ui` in docs/usage.md: stand-in agents in a throwaway AM_HOME, the
dashboard driven by Textual's pilot at 80x24, saved as SVG.

    .venv/bin/python scripts/ui-screenshot.py [--out docs/ui.svg] [--engines docker,podman]
"""

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIT_ID = {
    "GIT_AUTHOR_NAME": "a",
    "GIT_AUTHOR_EMAIL": "a@localhost",
    "GIT_COMMITTER_NAME": "a",
    "GIT_COMMITTER_EMAIL": "a@localhost",
}
# A stand-in that draws what an agent's session looks like, in colour.
TRANSCRIPT = (
    "printf '\\033[1;35m> \\033[0mFix the failing tests in tests/api\\n\\n'; "
    "printf '\\033[36m* \\033[0mReading tests/api/test_orders.py\\n'; "
    "printf '\\033[36m* \\033[0mRunning \\033[1mpytest -q tests/api\\033[0m\\n'; "
    "printf '  \\033[31m2 failed\\033[0m, \\033[32m41 passed\\033[0m in 3.2s\\n'; "
    "printf '\\033[36m* \\033[0mEditing api/orders.py (+4 -1)\\n'; "
    "printf '  \\033[32m+    if not order.items:\\033[0m\\n'; "
    "printf '  \\033[32m+        raise EmptyOrder(order.id)\\033[0m\\n'; "
    "echo '    if not order.items: raise EmptyOrder(order.id)' >> README; "
    "printf '\\033[36m* \\033[0mRunning \\033[1mpytest -q tests/api\\033[0m\\n'; "
    "printf '  \\033[32m43 passed\\033[0m in 3.1s\\n\\n\\033[1;35m> \\033[0m'; sleep 3600"
)


def am(env, *args) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "am", *args], env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    return out[-1] if out else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "ui.svg"))
    ap.add_argument("--engines", default="docker,podman")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="am-shot-", dir="/var/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AM_", "TMUX"))}
    env.update(AM_HOME=str(work / "home"), **GIT_ID)
    try:
        src = work / "app"
        src.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "main", src], check=True)
        (src / "README").write_text("app\n")
        subprocess.run(["git", "-C", src, "add", "."], check=True)
        subprocess.run(["git", "-C", src, "commit", "-qm", "init"], check=True, env=env)
        first = am(
            env,
            "spawn",
            src,
            "--name",
            "api-tests",
            "--prompt",
            "Fix the failing tests in tests/api",
            "--cmd",
            TRANSCRIPT,
        )
        for name, engine, task in zip(
            ("docs", "search"),
            args.engines.split(","),
            ("Document the public API in docs/api.md", "Add full-text search to the orders page"),
            strict=False,
        ):
            am(
                env,
                "spawn",
                src,
                "--name",
                name,
                "--container",
                "--runtime",
                engine,
                "--prompt",
                task,
                "--cmd",
                "echo working; sleep 3600",
            )
        am(
            env,
            "spawn",
            src,
            "--name",
            "deps",
            "--prompt",
            "Update the pinned dependencies",
            "--cmd",
            "echo done",
        )
        stopped = am(
            env,
            "spawn",
            src,
            "--name",
            "login",
            "--prompt",
            "Rework the login form",
            "--cmd",
            "sleep 3600",
        )
        am(env, "stop", stopped)
        time.sleep(1)
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        from am import paths
        from am.ui.app import Dashboard

        async def shoot():
            app = Dashboard(
                paths.layout(), 600.0, {"agent": "claude", "runtime": "auto", "network": "none"}
            )
            async with app.run_test(size=(80, 24)) as pilot:
                deadline = time.monotonic() + 60
                screen = app.screen
                while (
                    screen.selected != first
                    or not screen.live_shown
                    or "43 passed" not in (screen.screen_raw or "")
                ):
                    if time.monotonic() > deadline:
                        raise SystemExit("the dashboard did not settle")
                    await pilot.pause(0.2)
                app.save_screenshot(args.out)

        asyncio.run(shoot())
        print(f"wrote {args.out}", file=sys.stderr)
    finally:
        for agent in ("api-tests", "docs", "search", "deps", "login"):
            subprocess.run(
                [sys.executable, "-m", "am", "stop", agent], env=env, capture_output=True
            )
        subprocess.run(
            [sys.executable, "-m", "am", "clean", "--all", "--containers"],
            env=env,
            capture_output=True,
        )
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Run the security suite and the container policy checks; print property, engine, result.

Usage: scripts/security_report.py [extra pytest args]. Exit status is pytest's.
Each security test records its property (tests/security/conftest.py); the container policy tests
of tests/test_container.py are mapped here by name. The engine is the test's [docker]/[podman]
parameter, else "host", with the isolation (runc/gvisor) where the test runs for each.
"""

import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

P4 = "4 container policy (no network, caps, read-only, limits)"
POLICY = {  # tests/test_container.py -> property
    "test_policy_inside_container": P4,
    "test_oom_kill_is_reported": P4,
    "test_fork_bomb_hits_pids_limit_and_stop_still_works": P4,
    "test_worktree_container_is_refused_and_the_repository_untouched": P4,
    "test_the_agent_sees_its_isolations_kernel": "7 kernel isolation (the agent's kernel)",
}
NETWORK = "15 limited network: names, addresses, ports"
TERMINAL = "13 agent text is escaped on the terminal"
NETWORK_TESTS = {  # tests/test_network.py -> property
    "test_limited_allows_only_the_allowlist": NETWORK,
    "test_private_addresses_only_for_names_allowed_so": NETWORK,
    "test_an_allowed_port_is_the_only_port": NETWORK,
    "test_proxy_container_holds_only_the_proxy": NETWORK,
    "test_killing_the_proxy_leaves_no_network": NETWORK,
    "test_network_log_never_reaches_the_terminal_raw": TERMINAL,
}
DISK = "18 disk: --disk caps a container agent's workspace"
DISK_TESTS = {  # tests/test_disk.py -> property
    "test_disk_caps_the_workspace_and_am_still_works": DISK,
    "test_a_lost_mount_comes_back_before_any_use": DISK,
    "test_sigkilled_disk_spawns_leave_nothing_doctor_cannot_clean": DISK,
    "test_non_root_users_are_refused_clearly": DISK,
    "test_tmux_agents_refuse_disk": DISK,
    "test_a_sparse_file_gets_no_room_past_the_cap": DISK,
    "test_the_publish_folder_is_no_way_past_the_cap": DISK,
    "test_a_host_without_loop_devices_is_refused_clearly": DISK,
}
POLICY.update(NETWORK_TESTS)
POLICY.update(DISK_TESTS)
TARGETS = (
    ["tests/security"]
    + [
        f"tests/test_container.py::{name}"
        for name in POLICY
        if name not in NETWORK_TESTS and name not in DISK_TESTS
    ]
    + [f"tests/test_network.py::{name}" for name in NETWORK_TESTS]
    + [f"tests/test_disk.py::{name}" for name in DISK_TESTS]
)


def rows(junit: Path) -> dict[tuple[str, str], list[tuple[str, bool]]]:
    table = defaultdict(list)
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        prop = next(
            (p.get("value") for p in case.iter("property") if p.get("name") == "property"), None
        )
        prop = prop or POLICY.get(name.split("[")[0], "?")
        m = re.search(r"\[(docker|podman)\b", name) or re.search(r"(docker|podman)\]", name)
        engine = m.group(1) if m else "host"
        iso = re.search(r"-(runc|gvisor)\]", name)
        engine += f"/{iso.group(1)}" if iso else ""
        failed = any(case.find(tag) is not None for tag in ("failure", "error", "skipped"))
        table[(prop, engine)].append((f"{case.get('classname')}::{name}", not failed))
    return table


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        code = subprocess.call(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-o",
                "junit_family=xunit1",
                f"--junitxml={junit}",
                *TARGETS,
                *argv,
            ]
        )
        if not junit.exists():
            return code or 1
        table = rows(junit)
    width = max([len(p) for p, _ in table] + [8])
    print(f"\n{'property':<{width}}  {'engine':<13} {'result':<6} tests")

    def order(item):  # by property number, then engine
        (prop, engine), _ = item
        number = prop.split()[0]
        return (int(number) if number.isdigit() else 99, prop, engine)

    for (prop, engine), cases in sorted(table.items(), key=order):
        ok = all(passed for _, passed in cases)
        print(
            f"{prop:<{width}}  {engine:<13} {'pass' if ok else 'FAIL':<6} "
            f"{sum(p for _, p in cases)}/{len(cases)}"
        )
        for name, passed in cases:
            if not passed:
                print(f"    failed: {name}")
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

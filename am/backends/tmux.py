"""tmux mode: the agent runs directly in its host session, in the workspace, as the user."""

import time

from am.backends.base import Backend
from am.errors import AmError
from am.launchspec import LaunchSpec

CPU_INTERVAL = 0.5  # seconds psutil samples tmux agents' CPU over, all processes at once


class TmuxBackend(Backend):
    mode = "tmux"

    def prepare(self, plan):
        from am import proc

        if plan.command[0] != "sh" and proc.which(plan.command[0]) is None:
            raise AmError(
                f"{plan.command[0]} not found in PATH",
                f"install the {plan.agent} CLI, or give the agent with --cmd",
            )
        return plan

    def launch_spec(self, plan) -> LaunchSpec:
        return LaunchSpec(
            argv=plan.agent_argv(),
            cwd=str(plan.workspace),
            env=dict(plan.env),
            clean_env=True,  # the caller's environment arrives through the FIFO
            log=str(plan.log),
            log_max=plan.log_max,
        )

    def figures(self, views: list[dict]) -> dict[str, tuple[dict | None, str | None]]:
        """From one ``tmux list-panes`` call and psutil, CPU sampled over one interval."""
        got = session_figures([v["session"] for v in views])
        return {v["id"]: self.figure(v, got) for v in views}

    @staticmethod
    def figure(view: dict, got: dict) -> tuple[dict | None, str | None]:
        """One agent's figures from those of every session (pure)."""
        live = got.get(view["session"])
        if not live or live.get("pids") is None:
            return None, "its tmux session's pane was not found"
        return live, None


def pane_pids() -> dict[str, int]:
    """Session name -> pid of its pane's process (the supervisor), in one tmux call."""
    from am import proc

    try:
        res = proc.run(["tmux", "list-panes", "-a", "-F", "#{session_name}\t#{pane_pid}"])
    except proc.NotFound:
        return {}
    out = {}
    for line in res.out.splitlines() if res.ok else []:
        name, _, pid = line.partition("\t")
        if pid.isdigit():
            out.setdefault(name, int(pid))
    return out


def session_figures(sessions: list[str], interval: float = CPU_INTERVAL) -> dict[str, dict]:
    """CPU, memory and process count of each session's agent: the descendants of the
    session's supervisor, with CPU sampled over one INTERVAL shared by all of them."""
    import psutil

    pids = pane_pids()
    trees = {}
    for name in sessions:
        try:
            trees[name] = psutil.Process(pids[name]).children(recursive=True)
        except (KeyError, psutil.Error):
            trees[name] = None
    for procs in filter(None, trees.values()):
        for p in procs:
            try:
                p.cpu_percent(None)  # the first call starts the sample
            except psutil.Error:
                pass
    if any(trees.values()):
        time.sleep(interval)
    out = {}
    for name, procs in trees.items():
        if procs is None:
            out[name] = {"cpu_percent": None, "memory": None, "memory_limit": None, "pids": None}
            continue
        cpu = mem = count = 0
        for p in procs:
            try:
                with p.oneshot():
                    cpu += p.cpu_percent(None)
                    mem += p.memory_info().rss
                count += 1
            except psutil.Error:
                pass  # it ended during the sample
        out[name] = {
            "cpu_percent": round(cpu, 1),
            "memory": mem,
            "memory_limit": None,
            "pids": count,
        }
    return out

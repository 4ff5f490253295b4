"""tmux mode: the agent runs directly in its host session, in the workspace, as the user."""

import shutil

from am.backends.base import Backend
from am.errors import AmError
from am.launchspec import LaunchSpec


class TmuxBackend(Backend):
    mode = "tmux"

    def prepare(self, plan):
        if plan.command[0] != "sh" and shutil.which(plan.command[0]) is None:
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

"""Agent profiles: how to run each known agent CLI, and what it needs to reach its model."""

from am.errors import AmError
from am.valueclass import field, value_class

PROMPT = "{prompt}"  # the placeholder in prompt_args


@value_class
class Profile:
    """An agent CLI am knows: its command, its flag that skips permission prompts, and the
    domains of its API."""

    name: str
    command: tuple[str, ...]
    skip_permissions_flag: str | None
    api_domains: tuple[str, ...] = ()
    env_names: tuple[str, ...] = field(default=())  # any one of these is enough to authenticate
    # The CLI's credential files, relative to the home folder: all --mount-agent-config exposes.
    config_paths: tuple[str, ...] = ()
    # How the CLI takes its first task and stays interactive: PROMPT in an element is replaced
    # by the prompt (one argument, never split or parsed); empty: it takes none.
    prompt_args: tuple[str, ...] = ()
    continue_args: tuple[str, ...] = ()  # how it resumes its last conversation (am start)

    def argv(self, skip_permissions: bool) -> list[str]:
        argv = list(self.command)
        if skip_permissions:
            if not self.skip_permissions_flag:
                raise AmError(f"agent {self.name!r} has no skip-permissions flag")
            argv.append(self.skip_permissions_flag)
        return argv


BUILTIN = {
    p.name: p
    for p in (
        Profile(
            "claude",
            ("claude",),
            "--dangerously-skip-permissions",
            ("api.anthropic.com", "statsig.anthropic.com", "sentry.io"),
            ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"),
            (".claude/.credentials.json",),  # not .claude.json: it keeps other projects' history
            # '--': a prompt starting with '-' is not read as an option.
            ("--", PROMPT),
            ("--continue",),
        ),
        Profile(
            "codex",
            ("codex",),
            "--dangerously-bypass-approvals-and-sandbox",
            ("api.openai.com", "chatgpt.com", "auth.openai.com"),
            ("OPENAI_API_KEY",),
            (".codex/auth.json",),
            ("--", PROMPT),
            ("resume", "--last"),
        ),
        Profile(
            "aider",
            ("aider",),
            "--yes-always",
            ("api.openai.com", "api.anthropic.com", "openrouter.ai"),
            ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY"),
            (".aider.conf.yml",),
            # aider has no first message that keeps it interactive: --message does the task,
            # then aider exits; 'am start --continue' reopens it with the chat restored.
            ("--message=" + PROMPT,),
            ("--restore-chat-history",),
        ),
        Profile(
            "gemini",
            ("gemini",),
            "--yolo",
            ("generativelanguage.googleapis.com", "oauth2.googleapis.com"),
            ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            (".gemini/oauth_creds.json", ".gemini/settings.json"),
            ("--prompt-interactive=" + PROMPT,),  # '=': yargs takes a leading '-' as text
            ("--resume", "latest"),
        ),
    )
}


def get(name: str, extra: dict[str, Profile] | None = None) -> Profile:
    profiles = {**BUILTIN, **(extra or {})}
    if name not in profiles:
        raise AmError(f"unknown agent {name!r}", f"choose one of: {', '.join(sorted(profiles))}")
    return profiles[name]


def prompt_argv(template, prompt: str) -> list[str]:
    """TEMPLATE (a profile's prompt_args) with the prompt in place of each PROMPT: one
    argument each, whatever the prompt holds."""
    return [a.replace(PROMPT, prompt) for a in template]


def command_argv(cmd: str) -> list[str]:
    """A user's --cmd, run by a shell exactly as typed (it is their command, not ours to parse)."""
    if not cmd.strip():
        raise AmError("--cmd is empty")
    return ["sh", "-c", cmd]

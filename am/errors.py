"""The one error type every command raises for a user-facing failure."""


class AmError(Exception):
    """A failure reported as one ``am: error:`` line, with an optional hint."""

    def __init__(self, message: str, hint: str | None = None, code: int = 1):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code

    def render(self) -> str:
        text = f"am: error: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


def raise_all(errors: list[AmError]) -> None:
    """Each of ERRORS on its own line, the last raised (as a command's error ends it): what
    was wrong with each of several ids at once."""
    import sys

    for e in errors[:-1]:
        print(e.render(), file=sys.stderr)
    if errors:
        raise errors[-1]


def each(ids, act, unfinished: str | None = None) -> None:
    """ACT(id) for every one of IDS, each refusal (AmError) named: see ``raise_all``. With
    UNFINISHED ("stopped", say), an OSError is named too, as that agent not fully
    UNFINISHED, and the others are still tried."""
    refused = []
    for agent_id in ids:
        try:
            act(agent_id)
        except AmError as e:
            refused.append(e)
        except OSError as e:
            if unfinished is None:
                raise
            refused.append(AmError(f"agent {agent_id} was not fully {unfinished}: {e}"))
    raise_all(refused)

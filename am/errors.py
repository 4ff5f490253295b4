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


def each(ids, check) -> None:
    """CHECK(id) for every one of IDS, each refusal (AmError) named: see ``raise_all``."""
    refused = []
    for agent_id in ids:
        try:
            check(agent_id)
        except AmError as e:
            refused.append(e)
    raise_all(refused)

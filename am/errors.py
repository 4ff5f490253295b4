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

"""The one error type that reaches the user, and the exit codes."""

from __future__ import annotations


class DualgitError(Exception):
    """An expected failure: shown as one `error:` line and an optional `hint:` line, exit 1."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


EXIT_ERROR = 1
EXIT_BUG = 3
EXIT_INTERRUPTED = 130

"""User-facing errors.

A `PlayworldError` is something the user can fix (a bad path, an unknown world, a dataset that
does not match a run). The CLI prints it as one short message, naming the thing and the fix,
and exits non-zero without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PlayworldError(Exception):
    """An error caused by the user's input; `fix` says what to do about it."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message

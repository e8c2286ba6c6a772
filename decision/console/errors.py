"""A page that cannot be shown: its HTTP status, and what to say (rendered by decision.console.app)."""

from __future__ import annotations

from decision.console.markup import Html


class PageError(Exception):
    """``status``: 400 bad input, 404 unknown, 409 nothing published, 413 too large, 502/503 a dependency down."""

    def __init__(self, status: int, title: str, message: str, hint: Html | str = "") -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.hint = hint

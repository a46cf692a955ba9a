"""The one exception the API's code raises for a request it refuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """A request the API refuses: answered as `{"error": {"status", "message", "problems"?}}`.

    `message` says what was wrong and what to do instead; `problems` lists `{loc, msg}` pairs
    when several fields are at fault; `headers` go on the response (e.g. Retry-After).
    """

    def __init__(
        self,
        status: int,
        message: str,
        problems: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems
        self.headers = dict(headers or {})

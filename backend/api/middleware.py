"""A request-body cap for upload routes and job submissions, enforced while the body streams in.

Multipart parsing spools a file to disk before a route runs, so a cap checked in the route
alone would still accept gigabytes. This middleware refuses a declared Content-Length over the
cap at once and stops reading a streamed body as soon as it passes the cap. The route then
applies the exact cap to the file itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.errors import error_response

MULTIPART_OVERHEAD = 64 * 1024
"""Allowance for multipart boundaries and headers on top of the file itself."""


class BodySizeLimit:
    """Refuse request bodies over `limit_for(path)` bytes (None: no limit) with a 413 JSON error."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], Awaitable[int | None]]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, counting body bytes against the path's limit."""
        uploading = scope["type"] == "http" and scope["method"] in ("POST", "PUT")
        limit = await self.limit_for(scope["path"]) if uploading else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        limit += MULTIPART_OVERHEAD
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await error_response(413, _too_large(limit))(scope, receive, send)
            return
        await self.app(scope, _counting(receive, limit), send)


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            # raised inside body parsing, which FastAPI re-raises for the exception handlers
            raise HTTPException(413, _too_large(limit))
        return message

    return counted


def _too_large(limit: int) -> str:
    return f"the request body is larger than the limit of {limit - MULTIPART_OVERHEAD} bytes"

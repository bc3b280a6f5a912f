"""ASGI middlewares of ``fintune serve``: bearer auth before anything is read, and the request body size limit."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

DOC_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")


class BearerAuth:
    """ASGI middleware: ``/v1/*`` (and the docs unless open) need ``Authorization: Bearer <token>``.

    It runs before routing, so no body is read or parsed for an unauthenticated request.
    """

    def __init__(self, app: Any, token: str | None, open_docs: bool = False) -> None:
        self.app, self.token, self.open_docs = app, token, open_docs

    def _protected(self, path: str) -> bool:
        return path.startswith("/v1/") or path == "/v1" or (not self.open_docs and path in DOC_PATHS)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Answer 401 for a protected path without the right token; pass everything else on."""
        if scope["type"] != "http" or not self.token or not self._protected(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode()):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "missing or wrong bearer token (Authorization: Bearer <token>)"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})


def _body_too_large(message: str) -> Exception:
    """An HTTPException(413): FastAPI turns any other exception raised while reading a body into a 400."""
    from starlette.exceptions import HTTPException

    return HTTPException(413, detail=message)


class BodySizeLimit:
    """ASGI middleware: 413 when ``Content-Length`` or the streamed body exceeds ``max_bytes``."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def _reject(self, send: Any, message: str, status: int = 413) -> None:
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Check the declared size, then count the bytes as they are read."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = f"request body larger than {self.max_bytes} bytes"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._reject(send, "invalid Content-Length header", 400)
                return
            if size > self.max_bytes:
                await self._reject(send, f"{limit} ({size} bytes)")
                return
        seen, started = 0, False

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _body_too_large(f"{limit} (streamed)")
            return message

        async def tracked(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        from starlette.exceptions import HTTPException

        try:
            await self.app(scope, counted, tracked)
        except HTTPException as exc:  # raised while a body was read outside a route (no handler caught it)
            if started or exc.status_code != 413:
                raise
            await self._reject(send, str(exc.detail))

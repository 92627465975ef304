"""Two ASGI middlewares around the whole admin face: security headers on every response,
and a bound on every request body (413 past it, checked as the body arrives too)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.admin.problems import problem_response

__all__ = ["MAX_BODY", "BodyLimit", "SecurityHeaders"]

MAX_BODY = 64 * 1024  # bytes of a request body; the API's requests are small JSON documents

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeaders:
    """Adds :data:`_HEADERS` to every HTTP response (HSTS too under TLS)."""

    def __init__(self, app: ASGIApp, *, tls: bool) -> None:
        self.app = app
        self.headers = dict(_HEADERS)
        if tls:
            self.headers["Strict-Transport-Security"] = "max-age=31536000"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuses a request whose body is larger than ``limit`` bytes: at once by its
    Content-Length, or as soon as the bytes received pass it (chunked bodies).
    ``wider`` gives the paths under a prefix a larger (still bounded) limit."""

    def __init__(
        self, app: ASGIApp, *, limit: int = MAX_BODY, wider: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.wider = dict(wider or {})

    def _limit(self, path: str) -> int:
        for prefix, limit in self.wider.items():
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await self._too_large(limit)(scope, receive, send)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # an HTTPException: FastAPI passes it on while it reads the body
                raise HTTPException(413, _detail(limit))
            return message

        await self.app(scope, counting_receive, send)

    def _too_large(self, limit: int) -> ASGIApp:
        return problem_response(413, _detail(limit), {"Connection": "close"})


def _detail(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"

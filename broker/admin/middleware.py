"""Two ASGI middlewares around the whole admin face: security headers on every response,
and a bound on every request body (413 past it, checked as the body arrives too)."""

from __future__ import annotations

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
    Content-Length, or as soon as the bytes received pass it (chunked bodies)."""

    def __init__(self, app: ASGIApp, *, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await self._too_large()(scope, receive, send)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                # an HTTPException: FastAPI passes it on while it reads the body
                raise HTTPException(413, self._detail())
            return message

        await self.app(scope, counting_receive, send)

    def _detail(self) -> str:
        return f"the request body is larger than {self.limit} bytes"

    def _too_large(self) -> ASGIApp:
        return problem_response(413, self._detail(), {"Connection": "close"})

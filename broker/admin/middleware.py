"""Two ASGI middlewares around the whole admin face: security headers on every response,
and bounds on every request: its target (414), its header fields (431) and its body (413
past it, checked as the body arrives too). uvicorn (h11) bounds only headers that arrive
incomplete (16 KiB, then its own 400, ``broker.admin.server``): whole ones of any size
reach the application, and are refused here."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.admin.problems import problem_response

__all__ = ["MAX_BODY", "MAX_HEADERS", "MAX_TARGET", "BodyLimit", "SecurityHeaders"]

MAX_BODY = 64 * 1024  # bytes of a request body; the API's requests are small JSON documents
MAX_TARGET = 8 * 1024  # bytes of a request's path and query string
MAX_HEADERS = 16 * 1024  # bytes of its header fields, names and values

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


def _oversized(scope: Scope) -> ASGIApp | None:
    """The answer to a request whose target or header fields are past their bounds."""
    target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    if target > MAX_TARGET:
        return problem_response(
            414, f"the request target is longer than {MAX_TARGET} bytes", {"Connection": "close"}
        )
    if sum(len(n) + len(v) + 4 for n, v in scope["headers"]) > MAX_HEADERS:
        return problem_response(
            431, f"the request's header fields take more than {MAX_HEADERS} bytes",
            {"Connection": "close"},
        )  # fmt: skip
    return None


class BodyLimit:
    """Refuses a request whose target or header fields are too large (:func:`_oversized`),
    or whose body is larger than its limit: at once by its Content-Length, or as soon as
    the bytes received pass it (chunked bodies). ``limit`` is the default; ``wider``
    gives the paths under a prefix a larger (still bounded) one."""

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
        if (refusal := _oversized(scope)) is not None:
            await refusal(scope, receive, send)
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

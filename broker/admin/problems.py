"""Every error of the API as ``application/problem+json`` (RFC 9457), from one handler.

A route raises :class:`ApiProblem` (or a service raises ``BrokerError``); starlette's
404 and 405, FastAPI's validation errors (422) and anything unexpected (500) go
through the same :func:`problem_handler`. A validation error names each field at
fault and why, never the value sent (it could be a password).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.common.jsontext import dumps
from broker.dicom.gate import BroadQueryBusy
from broker.errors import BrokerError, DicomServiceError, StoreError

__all__ = [
    "PROBLEM_JSON",
    "ApiProblem",
    "install_problem_handler",
    "problem_body",
    "problem_response",
]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_RETRY = {"Retry-After": "5"}


class ApiProblem(Exception):
    """An HTTP error with its RFC 9457 detail; ``headers`` go with the response, ``extra``
    members in the body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})  # more members of the problem (RFC 9457 §3.2)


def problem_body(status: int, detail: str, **extra: Any) -> str:
    """The problem+json document for ``status`` (``type`` about:blank, ``title`` its phrase)."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return dumps(body)


def problem_response(
    status: int, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> Response:
    """The problem+json response for ``status`` (:func:`problem_body`)."""
    body = problem_body(status, detail, **extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{where or 'body'}: {error.get('msg', 'invalid')}"


async def problem_handler(request: Request, exc: Exception) -> Response:
    """The one handler of every error (see the module docstring)."""
    if isinstance(exc, ApiProblem):
        return problem_response(exc.status, exc.detail, exc.headers, **exc.extra)
    if isinstance(exc, RequestValidationError):
        errors = [_field(e) for e in exc.errors()]
        return problem_response(422, "; ".join(errors), errors=errors)
    if isinstance(exc, HTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404:
            detail = "no such resource"
        elif exc.status_code == 405:
            detail = f"method {request.method} not allowed here"
        return problem_response(exc.status_code, detail, exc.headers)
    if isinstance(exc, BrokerError):
        return _broker_problem(request, exc)
    return _unexpected(f"{request.method} {request.url.path}", exc)


def _broker_problem(request: Request, exc: BrokerError) -> Response:
    """A service's refusal is the caller's fault (400) unless the broker cannot answer now:
    the store is down (503), or the query waits behind broad ones or is over the work
    budget (503, with ``Retry-After`` when waiting helps)."""
    if isinstance(exc, StoreError):
        return _store_unavailable(f"{request.method} {request.url.path}", exc)
    if isinstance(exc, BroadQueryBusy):
        wait: float = request.app.state.settings.dicom_broad_query_wait
        return problem_response(503, exc.comment, {"Retry-After": str(max(1, math.ceil(wait)))})
    if isinstance(exc, DicomServiceError) and exc.status == 0xA700:
        return problem_response(503, f"{exc.comment}; narrow the query")
    return problem_response(400, str(exc))


def _store_unavailable(request_line: str, exc: Exception) -> Response:
    """503 with ``Retry-After``: the store is down, which is not the caller's fault."""
    log.warning("admin API: %s: store unavailable (%s)", request_line, type(exc).__name__)
    return problem_response(503, "the broker's store is unavailable; try again", _RETRY)


def _unexpected(request_line: str, exc: Exception) -> Response:
    """The answer to an error no route turned into a problem: Redis gone is 503 (a store
    outage, not a defect); anything else is logged (its class only) and is 500."""
    if isinstance(exc, RedisError):
        return _store_unavailable(request_line, exc)
    log.error("admin API: %s failed: %s", request_line, type(exc).__name__)
    return problem_response(500, "internal error; see the broker's log")


class CatchAll:
    """Answers what escaped the routes and handlers (:func:`_unexpected`) and keeps the
    connection: Starlette's last-resort handler answers too, but then re-raises, and the
    server drops the keep-alive connection the client was about to reuse. Once the
    answer has started there is nothing left to say: logged, the connection ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if scope["type"] != "http":
                raise
            request_line = f"{scope.get('method')} {scope.get('path')}"
            if started:
                log.error("admin API: %s failed mid-answer: %s", request_line, type(exc).__name__)
                return
            await _unexpected(request_line, exc)(scope, receive, send)


def install_problem_handler(app: FastAPI) -> None:
    """Route every error class through :func:`problem_handler`, and what escapes them
    through :class:`CatchAll` (the innermost middleware: add it before the others)."""
    for kind in (ApiProblem, RequestValidationError, HTTPException, BrokerError, Exception):
        app.add_exception_handler(kind, problem_handler)
    app.add_middleware(CatchAll)

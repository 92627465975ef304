"""Every error of the API as ``application/problem+json`` (RFC 9457), from one handler.

A route raises :class:`ApiProblem` (or a service raises ``BrokerError``); starlette's
404 and 405, FastAPI's validation errors (422) and anything unexpected (500) go
through the same :func:`problem_handler`. A validation error names each field at
fault and why, never the value sent (it could be a password).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from broker.common.jsontext import dumps
from broker.errors import BrokerError

__all__ = ["PROBLEM_JSON", "ApiProblem", "install_problem_handler", "problem_response"]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


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


def problem_response(
    status: int, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> Response:
    """The problem+json response for ``status`` (``type`` about:blank, ``title`` its phrase)."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return Response(dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


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
        return problem_response(400, str(exc))
    log.error("admin API: %s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return problem_response(500, "internal error; see the broker's log")


def install_problem_handler(app: FastAPI) -> None:
    """Route every error class through :func:`problem_handler`."""
    for kind in (ApiProblem, RequestValidationError, HTTPException, BrokerError, Exception):
        app.add_exception_handler(kind, problem_handler)

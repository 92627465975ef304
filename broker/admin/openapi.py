"""``GET /api/openapi.json``: the API's OpenAPI document, for an authenticated caller.

The document is FastAPI's, made true about errors in one place: every operation may
answer ``application/problem+json`` (RFC 9457) with a 4xx or 5xx (its ``default``
response), and FastAPI's 422 is declared as the problem it really is. It is built once
per application and kept.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi

from broker.admin.problems import PROBLEM_JSON
from broker.admin.security import Caller, authenticated
from broker.common.jsontext import dumps

__all__ = ["PROBLEM_SCHEMA", "openapi_document", "router"]

router = APIRouter()

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "ProblemDetails",
    "type": "object",
    "description": "RFC 9457 problem details; 422 adds errors, a mapping publish problems",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "string"}},
        "problems": {"type": "array", "items": {"type": "object"}},
    },
}
_NAME = "ProblemDetails"
_REF = {"$ref": f"#/components/schemas/{_NAME}"}
_ERROR = {"description": "an error (4xx, 5xx)", "content": {PROBLEM_JSON: {"schema": _REF}}}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The application's OpenAPI document with the problem responses (see above)."""
    kept: dict[str, Any] | None = getattr(app.state, "openapi_document", None)
    if kept is not None:
        return kept
    document = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    if _NAME in components:
        raise RuntimeError(f"a response model is named {_NAME}: rename it")
    components[_NAME] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for item in document.get("paths", {}).values():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = {"description": "invalid request", **_ERROR}
            responses["default"] = _ERROR
    app.state.openapi_document = document
    return document


@router.get("/api/openapi.json", include_in_schema=False)
def openapi(request: Request, _: Annotated[Caller, Depends(authenticated())]) -> Response:
    return Response(dumps(openapi_document(request.app)), media_type="application/json")

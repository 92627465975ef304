"""``GET /api/status``: what the broker runs (version, listeners, mapping version, the
message log's counts)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from broker.admin.security import Caller, authenticated
from broker.services.application import Services
from broker.services.auth import Role

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["status"])


class MessageCounts(BaseModel):
    errors: int
    warnings: int


class Status(BaseModel):
    version: str
    ae_title: str
    listeners: dict[str, int | None]
    mapping_version: int | None
    messages: MessageCounts


def _version() -> str:
    try:
        return version("mwl-broker")
    except PackageNotFoundError:
        return "unknown"


@router.get("/status", summary="the broker's status")
def status(request: Request, _: Annotated[Caller, Depends(authenticated(Role.VIEWER))]) -> Status:
    services: Services = request.app.state.services
    log = services.messages
    return Status(
        version=_version(),
        ae_title=services.settings.ae_title,
        listeners=dict(request.app.state.listeners()),
        mapping_version=services.live_mappings.number,
        messages=MessageCounts(
            errors=log.count(errors_only=True), warnings=log.count(warnings_only=True)
        ),
    )

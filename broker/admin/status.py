"""``GET /api/status``: what the broker runs (version, listeners, mapping version, the
message log's counts); ``GET /api/users``: the console's users (admin only)."""

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


class User(BaseModel):
    name: str
    role: str
    disabled: bool
    created: float
    last_login: float | None


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


@router.get("/users", summary="the console's users (admin)")
def users(request: Request, _: Annotated[Caller, Depends(authenticated(Role.ADMIN))]) -> list[User]:
    services: Services = request.app.state.services
    return [
        User(
            name=u.name,
            role=u.role.value,
            disabled=u.disabled,
            created=u.created,
            last_login=u.last_login,
        )
        for u in services.auth.users()
    ]

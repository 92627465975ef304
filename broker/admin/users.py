"""``GET /api/users``: the console's users and their roles (admin only; never a hash).
Adding and changing users from the console comes with its pages; ``mwl-broker user`` does
it now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from broker.admin.security import Caller, authenticated
from broker.services.application import Services
from broker.services.auth import Role

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["users"])


class User(BaseModel):
    name: str
    role: str
    disabled: bool
    created: float
    last_login: float | None


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

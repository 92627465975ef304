"""Users and API tokens of the console (admin only; never a hash, a token's secret only
in the answer that created it): ``/api/users`` and ``/api/tokens``. Every change is on
the audit trail with the acting user (``broker.services.auth``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from broker.admin.problems import ApiProblem
from broker.admin.security import Caller, auth_of, authenticated
from broker.services.auth import MAX_PASSWORD, Role, TokenInfo

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["users"])
Admin = Annotated[Caller, Depends(authenticated(Role.ADMIN))]
UserName = Annotated[str, Path(min_length=1, max_length=64)]


class User(BaseModel):
    name: str
    role: str
    disabled: bool
    created: float
    last_login: float | None


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    role: Role
    password: str = Field(min_length=1, max_length=MAX_PASSWORD, repr=False)


class UserChange(BaseModel):
    """What to change; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(None, min_length=1, max_length=MAX_PASSWORD, repr=False)


class Token(BaseModel):
    id: str
    role: str
    label: str
    created: float
    by: str
    scanner: str | None


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role = Role.VIEWER
    label: str = Field("", max_length=64)
    scanner: str | None = Field(None, max_length=16)


class CreatedToken(Token):
    token: str  # the token's text: shown in this answer only


def _user(request: Request, name: str) -> User:
    for u in auth_of(request).users():
        if u.name == name:
            return User(
                name=u.name,
                role=u.role.value,
                disabled=u.disabled,
                created=u.created,
                last_login=u.last_login,
            )
    raise ApiProblem(404, f"no user {name!r}")


def _token(t: TokenInfo) -> Token:
    return Token(
        id=t.id, role=t.role.value, label=t.label, created=t.created, by=t.by, scanner=t.scanner
    )


@router.get("/users", summary="the console's users (admin)")
def users(request: Request, _: Admin) -> list[User]:
    return [_user(request, u.name) for u in auth_of(request).users()]


@router.post("/users", status_code=201, summary="add a user (admin)")
def add_user(body: NewUser, request: Request, caller: Admin) -> User:
    auth_of(request).add_user(body.name, body.password, body.role, by=caller.principal.name)
    return _user(request, body.name)


@router.patch("/users/{name}", summary="change a user's role, state or password (admin)")
def change_user(name: UserName, body: UserChange, request: Request, caller: Admin) -> User:
    _user(request, name)  # 404 before any change
    auth, by = auth_of(request), caller.principal.name
    if body.disabled and name == by:
        raise ApiProblem(409, "you cannot disable yourself")
    if body.role is not None and body.role is not Role.ADMIN and name == by:
        raise ApiProblem(409, "you cannot take the admin role from yourself")
    if body.password is not None:
        auth.set_password(name, body.password, by=by)
    if body.role is not None:
        auth.set_role(name, body.role, by=by)
    if body.disabled is not None:
        auth.set_disabled(name, body.disabled, by=by)
    return _user(request, name)


@router.get("/tokens", summary="the API tokens (admin; never a secret)")
def tokens(request: Request, _: Admin) -> list[Token]:
    return [_token(t) for t in auth_of(request).tokens()]


@router.post("/tokens", status_code=201, summary="create an API token; its text is shown once")
def create_token(body: NewToken, request: Request, caller: Admin) -> CreatedToken:
    text, info = auth_of(request).create_token(
        body.role, label=body.label, by=caller.principal.name, scanner=body.scanner
    )
    return CreatedToken(token=text, **_token(info).model_dump())


@router.delete("/tokens/{token_id}", status_code=204, summary="revoke an API token (admin)")
def revoke_token(
    token_id: Annotated[str, Path(min_length=1, max_length=32)], request: Request, caller: Admin
) -> None:
    if not any(t.id == token_id for t in auth_of(request).tokens()):
        raise ApiProblem(404, f"no token {token_id!r}")
    auth_of(request).revoke_token(token_id, by=caller.principal.name)

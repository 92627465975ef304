"""``/api/session``: log in (POST), who am I (GET), log out (DELETE).

Logging in sets the session cookie (HttpOnly, SameSite=Strict, Path=/, Secure under
TLS) and answers the session's CSRF token, which every later change must carry in
``X-CSRF-Token``. A refused login answers 401 with one message for every cause, or 429
with ``Retry-After`` once throttled (``broker.services.auth``); each is one log line
that never holds the password, and a line of the audit trail.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from broker.admin.problems import ApiProblem
from broker.admin.security import Caller, CookiePolicy, auth_of, authenticated
from broker.common.logsafety import printable
from broker.services.auth import MAX_PASSWORD, LoginRefused, LoginThrottled

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/session", tags=["session"])


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD, repr=False)


class SessionInfo(BaseModel):
    user: str
    role: str
    kind: Literal["session", "token"]
    csrf: str | None = None
    expires: float | None = None
    scanner: str | None = None


def _address(request: Request) -> str:
    return request.client.host if request.client else "-"


@router.post("", summary="log in: sets the session cookie, answers the CSRF token")
def login(body: Login, request: Request, response: Response) -> SessionInfo:
    address = _address(request)
    try:
        session = auth_of(request).login(body.user, body.password, address)
    except LoginThrottled as e:
        log.warning("admin: login from %s refused: too many failed logins", address)
        raise ApiProblem(
            429, f"{e}; retry in {e.retry_after} s", headers={"Retry-After": str(e.retry_after)}
        ) from None
    except LoginRefused as e:
        who = f"user {printable(body.user)!r}" if e.user_known else "an unknown user name"
        log.warning("admin: login refused for %s from %s", who, address)
        raise ApiProblem(401, str(e)) from None
    policy: CookiePolicy = request.app.state.cookie
    response.set_cookie(
        policy.name,
        session.id,
        path="/",
        secure=policy.secure,
        httponly=True,
        samesite="strict",
    )
    p = session.principal
    return SessionInfo(
        user=p.name, role=p.role.value, kind=p.kind, csrf=session.csrf, expires=session.expires
    )


@router.get("", summary="who is calling")
def whoami(caller: Annotated[Caller, Depends(authenticated())]) -> SessionInfo:
    p, s = caller.principal, caller.session
    return SessionInfo(
        user=p.name,
        role=p.role.value,
        kind=p.kind,
        csrf=s.csrf if s else None,
        expires=s.expires if s else None,
        scanner=p.scanner,
    )


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current: str = Field(min_length=1, max_length=MAX_PASSWORD, repr=False)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD, repr=False)


@router.post("/password", status_code=204, summary="change your own password (ends your sessions)")
def change_password(
    body: PasswordChange,
    request: Request,
    response: Response,
    caller: Annotated[Caller, Depends(authenticated())],
) -> None:
    if caller.session is None:
        raise ApiProblem(400, "a bearer token has no password to change")
    try:
        auth_of(request).change_password(caller.principal.name, body.current, body.password)
    except LoginRefused:
        raise ApiProblem(400, "the current password is wrong") from None
    log.info("admin: user %s changed their password", printable(caller.principal.name))
    _forget_cookie(request, response)


def _forget_cookie(request: Request, response: Response) -> None:
    policy: CookiePolicy = request.app.state.cookie
    response.delete_cookie(
        policy.name, path="/", secure=policy.secure, httponly=True, samesite="strict"
    )


@router.delete("", status_code=204, summary="log out: ends the session")
def logout(
    request: Request, response: Response, caller: Annotated[Caller, Depends(authenticated())]
) -> None:
    if caller.session is None:
        raise ApiProblem(400, "a bearer token has no session to end (revoke the token instead)")
    auth_of(request).logout(caller.session.id)
    _forget_cookie(request, response)

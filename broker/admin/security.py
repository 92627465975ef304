"""Who is calling the API, and whether they may: the one authentication dependency.

A request is authenticated by the session cookie (the console) or by
``Authorization: Bearer <token>`` (scripts, systems); without either, 401. A role
below the route's is 403. A request that changes something (POST, PUT, PATCH,
DELETE) and is authenticated by the cookie must carry the session's CSRF token in
``X-CSRF-Token`` (403 otherwise): a page of another site can make the browser send
the cookie, never read the token. Bearer tokens are exempt: a browser never adds
them by itself. The checks run in a worker thread (the routes are plain functions),
so Redis and Argon2 never hold the event loop.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from broker.admin.problems import ApiProblem
from broker.services.auth import AuthService, Principal, Role, Session

__all__ = [
    "CSRF_HEADER",
    "Caller",
    "CookiePolicy",
    "auth_of",
    "authenticated",
    "cookie_policy",
]

CSRF_HEADER = "X-CSRF-Token"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mwl-broker"'}


@dataclass(frozen=True)
class CookiePolicy:
    """The session cookie: its name and whether it is ``Secure`` (under TLS: then with
    the ``__Host-`` prefix, so no other host or path can set it). It has no Max-Age: the
    browser drops it when it closes, and the broker ends the session after
    ``admin_session_minutes`` unused (a Max-Age would not slide with the session)."""

    name: str
    secure: bool


def cookie_policy(*, tls: bool) -> CookiePolicy:
    name = "__Host-mwlb_session" if tls else "mwlb_session"
    return CookiePolicy(name, tls)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller, and their session when it came by cookie."""

    principal: Principal
    session: Session | None = None


def auth_of(request: Request) -> AuthService:
    auth: AuthService = request.app.state.services.auth
    return auth


def _identify(request: Request) -> Caller:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        principal = None
        if scheme.lower() == "bearer":
            principal = auth_of(request).token_principal(token.strip())
        if principal is None:
            raise ApiProblem(401, "invalid or revoked bearer token", headers=_CHALLENGE)
        return Caller(principal)
    policy: CookiePolicy = request.app.state.cookie
    session_id = request.cookies.get(policy.name)
    session = auth_of(request).session(session_id) if session_id else None
    if session is None:
        raise ApiProblem(
            401, "log in first (POST /api/session) or send a bearer token", headers=_CHALLENGE
        )
    if request.method in _UNSAFE:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise ApiProblem(403, f"missing or wrong {CSRF_HEADER} header for this session")
    return Caller(session.principal, session)


def authenticated(role: Role = Role.VIEWER) -> Callable[[Request], Caller]:
    """The dependency of a route that needs ``role`` (or above)."""

    def dependency(request: Request) -> Caller:
        caller = _identify(request)
        if not caller.principal.role.allows(role):
            raise ApiProblem(
                403,
                f"this needs the {role.value} role; {caller.principal.role.value} is not enough",
            )
        request.state.caller = caller
        return caller

    return dependency

"""The values of ``broker.services.auth``: roles, principals, sessions, users and tokens as
the faces see them, and the two refusals of a login."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = [
    "LoginRefused",
    "LoginThrottled",
    "Principal",
    "Role",
    "Session",
    "TokenInfo",
    "UserInfo",
]

_REFUSED = "invalid user name or password"


class Role(StrEnum):
    """What a principal may do; ordered: viewer < editor < admin."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what needs ``needed``."""
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Principal:
    """Who is calling; never holds a secret."""

    name: str  # user name, or "token:<token id>"
    role: Role
    kind: Literal["session", "token"]
    scanner: str | None = None  # a token bound to a scanner profile: its AE title


@dataclass(frozen=True)
class Session:
    """A logged-in user's session; ``id`` is the cookie's value."""

    id: str
    csrf: str
    principal: Principal
    expires: float

    def __repr__(self) -> str:
        return f"Session(principal={self.principal!r}, expires={self.expires!r})"


@dataclass(frozen=True)
class UserInfo:
    name: str
    role: Role
    disabled: bool
    created: float
    last_login: float | None


@dataclass(frozen=True)
class TokenInfo:
    id: str
    role: Role
    label: str
    created: float
    by: str
    scanner: str | None = None


class LoginRefused(Exception):
    """Wrong user name or password, or a disabled user: one message for all.
    ``user_known`` (for the log, never the answer): whether the name is a user's; a name
    that is not may be a password typed in the wrong field, so it is not written down."""

    def __init__(self, *, user_known: bool = False) -> None:
        super().__init__(_REFUSED)
        self.user_known = user_known


class LoginThrottled(Exception):
    """Too many failed logins for this name or from this address."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many failed logins; try again later")
        self.retry_after = max(1, int(retry_after + 0.999))

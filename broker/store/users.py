"""Users, API tokens, sessions and failed-login counters of the admin console, in Redis.

The records only: who may do what is decided by ``broker.services.auth``, which also
hashes passwords and tokens (this module never sees a password or a token's secret).
Key names: ``broker.store.keys`` (``{p}:auth:*``). Every record is JSON through
``broker.common.jsontext``; sessions and failure counters expire by Redis TTL, so
their number is bounded by what a window lets in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis

from broker.common.jsontext import dumps, loads
from broker.store.keys import KeySchema

__all__ = ["SessionRecord", "TokenRecord", "UserRecord", "UserStore", "digest"]


def digest(text: str) -> str:
    """SHA-256 of ``text``, in hexadecimal (session ids and names in key names)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class UserRecord:
    """One console user; ``epoch`` changes when the user's sessions must end."""

    name: str
    role: str
    hash: str
    disabled: bool = False
    created: float = 0.0
    last_login: float | None = None
    epoch: int = 0

    def __repr__(self) -> str:  # the hash stays out of logs and tracebacks
        return f"UserRecord(name={self.name!r}, role={self.role!r}, disabled={self.disabled!r})"


@dataclass(frozen=True)
class TokenRecord:
    """One API token: its secret is kept only as ``digest`` (SHA-256)."""

    id: str
    role: str
    label: str
    digest: str
    created: float
    by: str
    scanner: str | None = None

    def __repr__(self) -> str:
        return f"TokenRecord(id={self.id!r}, role={self.role!r}, label={self.label!r})"


@dataclass(frozen=True)
class SessionRecord:
    """What a session id stands for; ``started``: when its login was."""

    user: str
    csrf: str
    expires: float
    epoch: int
    started: float = 0.0

    def __repr__(self) -> str:
        return f"SessionRecord(user={self.user!r}, expires={self.expires!r})"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(record: Any, *, drop: str) -> str:
    data = asdict(record)
    data.pop(drop)
    return dumps(data)


class UserStore:
    """The ``{p}:auth:*`` keys on one Redis client."""

    def __init__(self, client: redis.Redis, keys: KeySchema) -> None:
        self._redis = client
        self._keys = keys

    def __repr__(self) -> str:
        return f"UserStore(prefix={self._keys.prefix!r})"

    # -- users -------------------------------------------------------------

    def user(self, name: str) -> UserRecord | None:
        raw = self._redis.hget(self._keys.users(), name)
        return None if raw is None else UserRecord(name=name, **loads(raw))

    def users(self) -> list[UserRecord]:
        stored = self._redis.hgetall(self._keys.users())
        records = [UserRecord(name=_text(n), **loads(v)) for n, v in stored.items()]
        return sorted(records, key=lambda r: r.name)

    def add_user(self, record: UserRecord) -> bool:
        """Store a new user; False when the name is taken."""
        return bool(
            self._redis.hsetnx(self._keys.users(), record.name, _fields(record, drop="name"))
        )

    def update_user(
        self, name: str, change: Callable[[UserRecord], UserRecord]
    ) -> UserRecord | None:
        """Apply ``change`` to the user's record as one transaction (WATCH, retried when
        another write came first), so that a login's ``last_login`` never undoes a
        concurrent disable; the new record, or None for an unknown user."""
        key = self._keys.users()
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    raw = pipe.hget(key, name)
                    if raw is None:
                        return None
                    new = change(UserRecord(name=name, **loads(raw)))
                    pipe.multi()
                    pipe.hset(key, name, _fields(new, drop="name"))
                    pipe.execute()
                    return new
                except redis.WatchError:
                    continue  # another write to the users came first: read again

    def has_users(self) -> bool:
        return bool(self._redis.hlen(self._keys.users()))

    # -- tokens ------------------------------------------------------------

    def token(self, token_id: str) -> TokenRecord | None:
        raw = self._redis.hget(self._keys.tokens(), token_id)
        return None if raw is None else TokenRecord(id=token_id, **loads(raw))

    def tokens(self) -> list[TokenRecord]:
        stored = self._redis.hgetall(self._keys.tokens())
        records = [TokenRecord(id=_text(i), **loads(v)) for i, v in stored.items()]
        return sorted(records, key=lambda r: (r.created, r.id))

    def add_token(self, record: TokenRecord) -> None:
        self._redis.hset(self._keys.tokens(), record.id, _fields(record, drop="id"))

    def remove_token(self, token_id: str) -> bool:
        return bool(self._redis.hdel(self._keys.tokens(), token_id))

    # -- sessions ----------------------------------------------------------

    def session(self, session_id: str) -> SessionRecord | None:
        raw = self._redis.get(self._keys.session(digest(session_id)))
        return None if raw is None else SessionRecord(**loads(raw))

    def put_session(self, session_id: str, record: SessionRecord, ttl_seconds: float) -> None:
        key = self._keys.session(digest(session_id))
        self._redis.set(key, dumps(asdict(record)), px=max(1, int(ttl_seconds * 1000)))

    def remove_session(self, session_id: str) -> None:
        self._redis.delete(self._keys.session(digest(session_id)))

    # -- failed logins -----------------------------------------------------

    def failures(self, name: str, address: str) -> tuple[int, int, float]:
        """Failures counted for ``name`` and for ``address``, and the seconds until the
        longer-lived of the two counters that exist ends (0 without any)."""
        by_user, by_addr = self._failure_keys(name, address)
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(by_user)
        pipe.get(by_addr)
        pipe.pttl(by_user)
        pipe.pttl(by_addr)
        user_n, addr_n, user_ttl, addr_ttl = pipe.execute()
        left = max(int(user_ttl or 0), int(addr_ttl or 0), 0) / 1000
        return int(user_n or 0), int(addr_n or 0), left

    def count_failure(self, name: str, address: str, window_seconds: float) -> None:
        """One more failure for ``name`` and ``address``; each counter lives for the window
        from its first failure."""
        ms = max(1, int(window_seconds * 1000))
        pipe = self._redis.pipeline(transaction=False)
        for key in self._failure_keys(name, address):
            pipe.set(key, 0, px=ms, nx=True)  # the window starts at the first failure
            pipe.incr(key)  # INCR keeps the TTL (PEXPIRE NX would need Redis 7)
        pipe.execute()

    def clear_failures(self, name: str) -> None:
        """A successful login forgets the name's failures (not the address's)."""
        self._redis.delete(self._failure_keys(name, "")[0])

    def _failure_keys(self, name: str, address: str) -> tuple[str, str]:
        return (
            self._keys.login_failures_by_user(digest(name.casefold())),
            self._keys.login_failures_by_address(address or "-"),
        )

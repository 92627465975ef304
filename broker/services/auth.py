"""Who may use the admin console and API: users, sessions, API tokens, roles.

Passwords are kept as Argon2id hashes (argon2-cffi's defaults, RFC 9106's second
recommended option), never in clear, never logged. An API token reads
``mwlb_<id>_<secret>``: the id finds its record, the secret (256 random bits) is
kept only as its SHA-256, which is enough for a secret that is random and long.
A session id is 256 random bits, with a CSRF token of its own; it ends after
``admin_session_minutes`` without use (each use starts the time again), at the
latest :data:`SESSION_LIFETIME` after its login, at logout, and when its user's
password changes or the user is disabled (the user record's ``epoch`` moves on).

Failed logins are counted per login name and per source address (an IPv6 address
by its /64, which one host usually holds whole) for
:data:`FAILURE_WINDOW` seconds (counters with a TTL in Redis, so their number is
bounded by what the window lets in); past :data:`USER_FAILURES` for a name or
:data:`ADDRESS_FAILURES` from an address, logins are refused unchecked until the
window ends. An unknown name costs as much time as a known one (a dummy hash is
verified), and every refusal says the same thing.

Every change (user added, password set, user disabled or enabled, token created or
revoked), every login, refused login and logout is on the audit trail with the
acting user (``by``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from broker.audit.events import AuditEvent, AuditType, Outcome
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.common.netaddr import peer_ip
from broker.errors import BrokerError
from broker.services.auth_model import (
    LoginRefused,
    LoginThrottled,
    Principal,
    Role,
    Session,
    TokenInfo,
    UserInfo,
)
from broker.store.users import SessionRecord, TokenRecord, UserRecord, UserStore

__all__ = [
    "ADDRESS_FAILURES",
    "FAILURE_WINDOW",
    "MIN_PASSWORD",
    "SESSION_LIFETIME",
    "USER_FAILURES",
    "AuthService",
    "LoginRefused",
    "LoginThrottled",
    "Principal",
    "Role",
    "Session",
    "TokenInfo",
    "UserInfo",
]

USER_FAILURES = 5  # failed logins for one name within the window, then refused unchecked
ADDRESS_FAILURES = 20  # failed logins from one address within the window
FAILURE_WINDOW = 900.0  # seconds
SESSION_LIFETIME = 12 * 3600.0  # seconds a session may last, however busy: a new login then
MIN_PASSWORD = 12  # characters
MAX_PASSWORD = 1024  # characters: Argon2 takes any length, a request body should not
TOKEN_PREFIX = "mwlb_"  # noqa: S105 - the marker of a token, not one
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_TOKEN = re.compile(r"^mwlb_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_LABEL = re.compile(r"^[\x20-\x7e]{0,64}$")
_AE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise BrokerError(
            f"user name {name[:64]!r}: 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )


def check_password(password: str) -> None:
    """A new password's rules (BrokerError says which)."""
    if len(password) < MIN_PASSWORD:
        raise BrokerError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise BrokerError(f"the password must have at most {MAX_PASSWORD} characters")


def _source(address: str) -> str:
    """What failed logins are counted by: the address, an IPv6 address's /64."""
    ip = peer_ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip) if ip is not None else address[:64]


def _why(record: UserRecord | None) -> str:
    if record is None:
        return "unknown user"
    return "disabled user" if record.disabled else "wrong password"


def _secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class AuthService:
    """Users, sessions and tokens on one :class:`UserStore` (see the module docstring)."""

    def __init__(
        self,
        store: UserStore,
        *,
        session_seconds: float,
        audit: AuditSink = NO_AUDIT,
        clock: Clock = SYSTEM_CLOCK,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._store = store
        self._session_seconds = session_seconds
        self._audit = audit
        self._clock = clock
        self._hasher = hasher or PasswordHasher()

    def __repr__(self) -> str:
        return f"AuthService({self._store!r})"

    @functools.cached_property
    def _dummy_hash(self) -> str:
        """What an unknown name's password is checked against (built at the first one)."""
        return self._hasher.hash(secrets.token_urlsafe(16))

    # -- logging in --------------------------------------------------------

    def login(self, user: str, password: str, address: str) -> Session:
        """A new session for ``user``; LoginRefused or LoginThrottled otherwise."""
        by_user, by_addr, left = self._store.failures(user, _source(address))
        if by_user >= USER_FAILURES or by_addr >= ADDRESS_FAILURES:
            self._login_refused("", address, "throttled: too many failed logins")
            raise LoginThrottled(left)
        record = self._store.user(user) if _NAME.match(user) else None
        if not self._verify(record, password) or record is None or record.disabled:
            self._store.count_failure(user, _source(address), FAILURE_WINDOW)
            known = record is not None
            self._login_refused(user if known else "", address, _why(record))
            raise LoginRefused(user_known=known)
        self._store.clear_failures(user)
        now = self._clock.now()
        self._store.update_user(record.name, self._after_login(record, password, now))
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            principal=Principal(record.name, Role(record.role), "session"),
            expires=now + self._session_seconds,
        )
        stored = SessionRecord(record.name, session.csrf, session.expires, record.epoch, now)
        self._store.put_session(session.id, stored, self._session_seconds)
        self._audit.record(AuditEvent(AuditType.LOGIN, address=address, user=record.name))
        return session

    def _after_login(
        self, verified: UserRecord, password: str, now: float
    ) -> Callable[[UserRecord], UserRecord]:
        """The change a login makes to its user: ``last_login``, and a new hash when the
        hasher's parameters changed (unless the password changed meanwhile)."""
        new_hash = verified.hash
        if self._hasher.check_needs_rehash(verified.hash):
            new_hash = self._hasher.hash(password)

        def change(current: UserRecord) -> UserRecord:
            rehashed = new_hash if current.hash == verified.hash else current.hash
            return dataclasses.replace(current, hash=rehashed, last_login=now)

        return change

    def _verify(self, record: UserRecord | None, password: str) -> bool:
        """Whether ``password`` is the user's; as slow for an unknown user as for a known one."""
        if len(password) > MAX_PASSWORD:
            return False
        try:
            return self._hasher.verify(record.hash if record else self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _login_refused(self, user: str, address: str, reason: str) -> None:
        """Audited with the name only when it is a user's (see :class:`LoginRefused`)."""
        name = user or "(not a user)"
        self._audit.record(
            AuditEvent(
                AuditType.LOGIN, Outcome.REFUSED, address=address, target=name, reason=reason
            )
        )

    def session(self, session_id: str) -> Session | None:
        """The live session ``session_id`` names, its expiry moved on; None otherwise."""
        if not session_id or len(session_id) > 64:
            return None
        stored = self._store.session(session_id)
        if stored is None:
            return None
        now = self._clock.now()
        record = self._store.user(stored.user)
        if (
            stored.expires <= now
            or now - stored.started >= SESSION_LIFETIME
            or record is None
            or record.disabled
            or record.epoch != stored.epoch
        ):
            self._store.remove_session(session_id)
            return None
        expires = min(now + self._session_seconds, stored.started + SESSION_LIFETIME)
        renewed = dataclasses.replace(stored, expires=expires)
        self._store.put_session(session_id, renewed, self._session_seconds)
        principal = Principal(record.name, Role(record.role), "session")
        return Session(session_id, stored.csrf, principal, expires)

    def logout(self, session_id: str) -> None:
        """End the session (audited when it was one)."""
        stored = self._store.session(session_id) if session_id else None
        if stored is None:
            return
        self._store.remove_session(session_id)
        self._audit.record(AuditEvent(AuditType.LOGOUT, user=stored.user))

    def token_principal(self, token: str) -> Principal | None:
        """Who an API token ``mwlb_<id>_<secret>`` stands for; None if it stands for no one."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        token_id, secret = match.groups()
        record = self._store.token(token_id)
        if record is None or not hmac.compare_digest(record.digest, _secret_digest(secret)):
            return None
        return Principal(f"token:{token_id}", Role(record.role), "token", record.scanner)

    # -- administration ----------------------------------------------------

    def add_user(self, name: str, password: str, role: Role, *, by: str) -> None:
        """A new user (BrokerError: a bad name or password, a name taken)."""
        _check_name(name)
        check_password(password)
        record = UserRecord(
            name, Role(role).value, self._hasher.hash(password), False, self._clock.now()
        )
        if not self._store.add_user(record):
            raise BrokerError(f"user {name!r} exists already")
        self._audit.record(
            AuditEvent(AuditType.USER_ADD, user=by, target=name, details={"role": role.value})
        )

    def set_password(self, name: str, password: str, *, by: str) -> None:
        """A new password; the user's sessions end."""
        self._known(name)
        check_password(password)
        new_hash = self._hasher.hash(password)
        self._store.update_user(
            name, lambda r: dataclasses.replace(r, hash=new_hash, epoch=r.epoch + 1)
        )
        self._audit.record(AuditEvent(AuditType.USER_PASSWORD, user=by, target=name))

    def set_disabled(self, name: str, disabled: bool, *, by: str) -> None:
        """Disable (the user's sessions end) or enable a user."""
        self._known(name)
        self._store.update_user(
            name, lambda r: dataclasses.replace(r, disabled=disabled, epoch=r.epoch + 1)
        )
        kind = AuditType.USER_DISABLE if disabled else AuditType.USER_ENABLE
        self._audit.record(AuditEvent(kind, user=by, target=name))

    def set_role(self, name: str, role: Role, *, by: str) -> None:
        """A new role (the user's sessions end, so the next login has it)."""
        self._known(name)
        role = Role(role)
        self._store.update_user(
            name, lambda r: dataclasses.replace(r, role=role.value, epoch=r.epoch + 1)
        )
        self._audit.record(
            AuditEvent(AuditType.USER_ROLE, user=by, target=name, details={"role": role.value})
        )

    def change_password(self, name: str, current: str, new: str) -> None:
        """The user's own change: ``current`` must be their password (LoginRefused
        otherwise); their sessions end, this one too."""
        record = self._known(name)
        if not self._verify(record, current):
            self._audit.record(
                AuditEvent(
                    AuditType.USER_PASSWORD,
                    Outcome.REFUSED,
                    user=name,
                    target=name,
                    reason="wrong current password",
                )
            )
            raise LoginRefused(user_known=True)
        self.set_password(name, new, by=name)

    def is_live(self, session_id: str) -> bool:
        """Whether the session still stands, without moving its expiry on."""
        stored = self._store.session(session_id) if session_id else None
        if stored is None:
            return False
        record = self._store.user(stored.user)
        now = self._clock.now()
        return (
            stored.expires > now
            and now - stored.started < SESSION_LIFETIME
            and record is not None
            and not record.disabled
            and record.epoch == stored.epoch
        )

    def users(self) -> list[UserInfo]:
        return [
            UserInfo(r.name, Role(r.role), r.disabled, r.created, r.last_login)
            for r in self._store.users()
        ]

    def has_users(self) -> bool:
        return self._store.has_users()

    def create_token(
        self, role: Role, *, label: str, by: str, scanner: str | None = None
    ) -> tuple[str, TokenInfo]:
        """A new API token: its text (shown once, kept nowhere) and what it is."""
        if not _LABEL.match(label):
            raise BrokerError("--label: at most 64 printable ASCII characters")
        if scanner is not None and (not _AE.match(scanner) or not scanner.strip()):
            raise BrokerError("--scanner: an AE title, 1 to 16 printable ASCII characters")
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = self._clock.now()
        role = Role(role)
        record = TokenRecord(token_id, role.value, label, _secret_digest(secret), now, by, scanner)
        self._store.add_token(record)
        details = {"role": role.value, **({"scanner": scanner} if scanner else {})}
        self._audit.record(
            AuditEvent(AuditType.TOKEN_CREATE, user=by, target=token_id, details=details)
        )
        return f"{TOKEN_PREFIX}{token_id}_{secret}", TokenInfo(
            token_id, role, label, now, by, scanner
        )

    def tokens(self) -> list[TokenInfo]:
        return [
            TokenInfo(r.id, Role(r.role), r.label, r.created, r.by, r.scanner)
            for r in self._store.tokens()
        ]

    def revoke_token(self, token_id: str, *, by: str) -> None:
        """The token no longer works (BrokerError for an unknown id)."""
        if not self._store.remove_token(token_id):
            raise BrokerError(f"no token {token_id[:32]!r} (see 'mwl-broker token list')")
        self._audit.record(AuditEvent(AuditType.TOKEN_REVOKE, user=by, target=token_id))

    def _known(self, name: str) -> UserRecord:
        record = self._store.user(name) if _NAME.match(name) else None
        if record is None:
            raise BrokerError(f"no user {name[:64]!r} (see 'mwl-broker user list')")
        return record

"""The auth service on a real redis-server: users, sessions, tokens, throttling, audit."""

from __future__ import annotations

from typing import Literal

import pytest
import redis
from argon2 import PasswordHasher

from broker.audit.events import AuditType, Outcome
from broker.common.clock import ManualClock
from broker.errors import BrokerError
from broker.services.auth import (
    ADDRESS_FAILURES,
    FAILURE_WINDOW,
    SESSION_LIFETIME,
    USER_FAILURES,
    AuthService,
    LoginRefused,
    LoginThrottled,
    Role,
)
from broker.store.keys import KeySchema
from broker.store.users import UserStore
from tests.integration.admin_helpers import Recorded

PASSWORD = "correct horse battery"
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # Argon2id, cheap for tests


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def auth(redis_client: redis.Redis, audit: Recorded, clock: ManualClock) -> AuthService:
    store = UserStore(redis_client, KeySchema("mwl"))
    service = AuthService(store, session_seconds=600, audit=audit, clock=clock, hasher=FAST)
    service.add_user("alice", PASSWORD, Role.ADMIN, by="root")
    return service


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.VIEWER) and Role.EDITOR.allows(Role.EDITOR)
    assert not Role.VIEWER.allows(Role.EDITOR) and not Role.EDITOR.allows(Role.ADMIN)


def test_login_gives_a_session_that_slides_and_ends(auth: AuthService, clock: ManualClock) -> None:
    session = auth.login("alice", PASSWORD, "10.0.0.1")
    assert session.principal.name == "alice" and session.principal.role is Role.ADMIN
    assert len(session.id) >= 43 and session.csrf != session.id
    assert "PASSWORD" not in repr(session) and session.id not in repr(session)
    clock.advance(500)
    assert auth.session(session.id) is not None  # used: another 600 s from now
    clock.advance(500)
    assert auth.session(session.id) is not None
    clock.advance(601)
    assert auth.session(session.id) is None
    assert auth.session("made-up") is None


def test_a_busy_session_still_ends_after_its_lifetime(
    auth: AuthService, clock: ManualClock
) -> None:
    session = auth.login("alice", PASSWORD, "10.0.0.1")
    start = clock.now()
    while clock.now() + 500 < start + SESSION_LIFETIME:  # used every 500 s of 600 allowed
        clock.advance(500)
        renewed = auth.session(session.id)
        assert renewed is not None and renewed.expires <= start + SESSION_LIFETIME
    clock.advance(500)
    assert auth.session(session.id) is None


def test_password_is_stored_as_argon2id_only(auth: AuthService, redis_client: redis.Redis) -> None:
    stored = redis_client.hget("mwl:auth:users", "alice")
    assert stored is not None and b"$argon2id$" in stored and PASSWORD.encode() not in stored


def test_wrong_password_unknown_user_disabled_user_are_one_refusal(auth: AuthService) -> None:
    auth.add_user("bob", PASSWORD, Role.VIEWER, by="alice")
    auth.set_disabled("bob", True, by="alice")
    for user, password in (("alice", "wrong password!"), ("nobody", PASSWORD), ("bob", PASSWORD)):
        with pytest.raises(LoginRefused, match="invalid user name or password"):
            auth.login(user, password, f"10.0.0.{len(user)}")


def test_password_change_and_disable_end_sessions(auth: AuthService) -> None:
    first = auth.login("alice", PASSWORD, "10.0.0.1")
    auth.set_password("alice", PASSWORD + "!", by="alice")
    assert auth.session(first.id) is None
    second = auth.login("alice", PASSWORD + "!", "10.0.0.1")
    auth.set_disabled("alice", True, by="root")
    assert auth.session(second.id) is None
    auth.set_disabled("alice", False, by="root")
    assert auth.session(second.id) is None  # ended, not suspended
    assert auth.login("alice", PASSWORD + "!", "10.0.0.1").principal.name == "alice"


def test_logout_ends_the_session_and_is_audited(auth: AuthService, audit: Recorded) -> None:
    session = auth.login("alice", PASSWORD, "10.0.0.1")
    auth.logout(session.id)
    assert auth.session(session.id) is None
    kinds = [(e.type, e.outcome, e.user) for e in audit.events]
    assert (AuditType.LOGIN, Outcome.SUCCESS, "alice") in kinds
    assert (AuditType.LOGOUT, Outcome.SUCCESS, "alice") in kinds


def test_failures_per_user_are_throttled(auth: AuthService, clock: ManualClock) -> None:
    for n in range(USER_FAILURES):
        with pytest.raises(LoginRefused):
            auth.login("alice", "wrong password!", f"10.0.1.{n}")
    with pytest.raises(LoginThrottled) as throttled:
        auth.login("alice", PASSWORD, "10.0.2.1")  # even the right password
    assert 0 < throttled.value.retry_after <= FAILURE_WINDOW


def test_failures_per_address_are_throttled(auth: AuthService) -> None:
    for n in range(ADDRESS_FAILURES):
        with pytest.raises(LoginRefused):
            auth.login(f"guess{n}", "wrong password!", "10.0.3.1")
    with pytest.raises(LoginThrottled):
        auth.login("alice", PASSWORD, "10.0.3.1")
    assert auth.login("alice", PASSWORD, "10.0.3.2").principal.name == "alice"


def test_an_ipv6_host_is_counted_by_its_64(auth: AuthService) -> None:
    for n in range(ADDRESS_FAILURES):
        with pytest.raises(LoginRefused):
            auth.login(f"guess{n}", "wrong password!", f"2001:db8:1:2::{n + 1:x}")
    with pytest.raises(LoginThrottled):
        auth.login("alice", PASSWORD, "2001:db8:1:2:ffff::1")
    assert auth.login("alice", PASSWORD, "2001:db8:1:3::1").principal.name == "alice"


def test_failure_counters_expire_in_redis(auth: AuthService, redis_client: redis.Redis) -> None:
    with pytest.raises(LoginRefused):
        auth.login("x" * 200, "wrong password!", "10.0.4.1")
    keys = list(redis_client.scan_iter(match="mwl:auth:fail:*"))
    assert len(keys) == 2
    for key in keys:
        assert 0 < redis_client.pttl(key) <= FAILURE_WINDOW * 1000
        assert b"x" * 200 not in key


def test_tokens_work_until_revoked(auth: AuthService, redis_client: redis.Redis) -> None:
    text, info = auth.create_token(Role.VIEWER, label="ris", by="alice", scanner="CT1")
    assert text.startswith(f"mwlb_{info.id}_")
    principal = auth.token_principal(text)
    assert principal is not None
    assert (principal.name, principal.role, principal.kind) == (
        f"token:{info.id}",
        "viewer",
        "token",
    )
    assert principal.scanner == "CT1"
    secret = text.split("_", 2)[2]
    assert secret.encode() not in (redis_client.hget("mwl:auth:tokens", info.id) or b"")
    assert auth.token_principal(text[:-1] + ("A" if text[-1] != "A" else "B")) is None
    assert [t.id for t in auth.tokens()] == [info.id]
    auth.revoke_token(info.id, by="alice")
    assert auth.token_principal(text) is None
    with pytest.raises(BrokerError, match="no token"):
        auth.revoke_token(info.id, by="alice")


def test_bad_input_is_refused_clearly(auth: AuthService) -> None:
    with pytest.raises(BrokerError, match="exists already"):
        auth.add_user("alice", PASSWORD, Role.ADMIN, by="root")
    with pytest.raises(BrokerError, match="at least 12"):
        auth.add_user("carol", "short", Role.ADMIN, by="root")
    with pytest.raises(BrokerError, match="user name"):
        auth.add_user("bad name", PASSWORD, Role.ADMIN, by="root")
    with pytest.raises(BrokerError, match="no user"):
        auth.set_password("nobody", PASSWORD, by="root")
    with pytest.raises(BrokerError, match="--scanner"):
        auth.create_token(Role.VIEWER, label="", by="root", scanner="A" * 17)


def test_every_change_is_audited_with_the_actor(auth: AuthService, audit: Recorded) -> None:
    auth.add_user("bob", PASSWORD, Role.EDITOR, by="alice")
    auth.set_password("bob", PASSWORD + "?", by="alice")
    auth.set_disabled("bob", True, by="alice")
    auth.set_disabled("bob", False, by="alice")
    _, info = auth.create_token(Role.ADMIN, label="x", by="alice")
    auth.revoke_token(info.id, by="alice")
    changes = [(e.type, e.user, e.target) for e in audit.events[1:]]
    assert changes == [
        (AuditType.USER_ADD, "alice", "bob"),
        (AuditType.USER_PASSWORD, "alice", "bob"),
        (AuditType.USER_DISABLE, "alice", "bob"),
        (AuditType.USER_ENABLE, "alice", "bob"),
        (AuditType.TOKEN_CREATE, "alice", info.id),
        (AuditType.TOKEN_REVOKE, "alice", info.id),
    ]
    assert all(PASSWORD not in repr(e) for e in audit.events)
    users = {u.name: u for u in auth.users()}
    assert users["bob"].role is Role.EDITOR and not users["bob"].disabled
    assert auth.has_users()


class DisablingHasher(PasswordHasher):
    """Verifies, then has ``alice`` disabled by an admin before the login goes on."""

    def __init__(self, service: list[AuthService]) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.service = service

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        ok = super().verify(hash, password)
        self.service[0].set_disabled("alice", True, by="root")
        return ok


def test_a_login_never_undoes_a_disable_made_meanwhile(redis_client: redis.Redis) -> None:
    holder: list[AuthService] = []
    store = UserStore(redis_client, KeySchema("mwl"))
    service = AuthService(store, session_seconds=600, hasher=DisablingHasher(holder))
    holder.append(service)
    service.add_user("alice", PASSWORD, Role.ADMIN, by="root")
    session = service.login("alice", PASSWORD, "10.0.0.1")  # verified before the disable
    assert [u.disabled for u in service.users()] == [True]
    assert service.session(session.id) is None

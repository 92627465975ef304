"""The admin API's refusals over real HTTP: problem+json for every bad input, body bound,
login refusals and throttling, what is logged and audited."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest
import redis

from broker.admin.middleware import MAX_BODY
from broker.audit.events import AuditType, Outcome
from broker.services.auth import USER_FAILURES, Role
from broker.store.connection import EmbeddedRedis
from tests.integration.admin_helpers import (
    PASSWORD,
    Api,
    Recorded,
    admin_settings,
    running_api,
    services_for,
)


@pytest.fixture
def api(redis_client: redis.Redis, audit: Recorded) -> Iterator[Api]:
    services = services_for(admin_settings(), redis_client, audit)
    with running_api(services) as running:
        yield running


def problem(answer: httpx.Response, status: int) -> str:
    """The answer is ``status`` as problem+json (RFC 9457); its detail."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["type"] == "about:blank" and body["status"] == status and body["title"]
    detail: str = body["detail"]
    return detail


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"user": "admin"}, "password: Field required"),
        ({"user": "admin", "password": 12}, "password"),
        ({"user": "admin", "password": PASSWORD, "role": "admin"}, "role: Extra inputs"),
        ({"user": "", "password": PASSWORD}, "user"),
        ({"user": "x" * 65, "password": PASSWORD}, "user"),
        ([], "Input should be a valid dictionary"),
    ],
)
def test_bad_login_bodies_are_422_naming_the_field(api: Api, body: object, named: str) -> None:
    with api.client() as client:
        detail = problem(client.post("/api/session", json=body), 422)
    assert named in detail
    assert PASSWORD not in detail and "x" * 65 not in detail  # no value sent back


def test_not_json_unknown_route_wrong_method(api: Api) -> None:
    with api.client() as client:
        problem(client.post("/api/session", content=b"{not json", headers={"content-type":
                "application/json"}), 422)  # fmt: skip
        # what a form of another site can send (no CORS preflight): not taken as JSON
        form = b'{"user": "admin", "password": "a long enough password"}'
        problem(client.post("/api/session", content=form, headers={"content-type":
                "text/plain"}), 422)  # fmt: skip
        assert problem(client.get("/api/nothing-here"), 404) == "no such resource"
        assert "PUT" in problem(client.put("/api/status"), 405)


def test_a_body_over_the_bound_is_413(api: Api) -> None:
    big = b'{"user": "admin", "password": "' + b"x" * MAX_BODY + b'"}'
    with api.client() as client:
        assert "larger than" in problem(client.post("/api/session", content=big), 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield big[: MAX_BODY // 2]
            yield big[MAX_BODY // 2 :]

        chunked = client.post(
            "/api/session", content=chunks(), headers={"content-type": "application/json"}
        )
        assert "larger than" in problem(chunked, 413)


def test_refused_logins_say_one_thing_and_log_no_password(
    api: Api, audit: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    api.services.auth.set_disabled("editor", True, by="test")
    caplog.set_level(logging.WARNING, logger="broker.admin")
    with api.client() as client:
        details = {
            problem(client.post("/api/session", json={"user": u, "password": p}), 401)
            for u, p in (("admin", "wrong password!"), ("nobody", PASSWORD), ("editor", PASSWORD))
        }
    assert details == {"invalid user name or password"}
    logged = caplog.text
    assert "login refused for user 'admin' from 127.0.0.1" in logged
    assert "login refused for an unknown user name from 127.0.0.1" in logged
    assert "nobody" not in logged and PASSWORD not in logged and "wrong password!" not in logged
    refused = [e for e in audit.events if e.type is AuditType.LOGIN]
    assert [e.outcome for e in refused] == [Outcome.REFUSED] * 3
    assert [e.target for e in refused] == ["admin", "(not a user)", "editor"]


def test_throttled_after_failures_with_retry_after(api: Api) -> None:
    with api.client() as client:
        for _ in range(USER_FAILURES):
            bad = {"user": "admin", "password": "wrong password!"}
            problem(client.post("/api/session", json=bad), 401)
        good = {"user": "admin", "password": PASSWORD}
        detail = problem(client.post("/api/session", json=good), 429)
        throttled = client.post("/api/session", json=good)
    assert "too many failed logins" in detail
    assert 0 < int(throttled.headers["retry-after"]) <= 900
    api.services.client.delete(*api.services.client.scan_iter(match="mwl:auth:fail:*"))
    with api.client() as client:
        assert client.post("/api/session", json=good).status_code == 200


def test_login_and_logout_are_audited(api: Api, audit: Recorded) -> None:
    client, csrf = api.login("viewer")
    with closing(client):
        assert client.delete("/api/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    sessions = [e for e in audit.events if e.type in (AuditType.LOGIN, AuditType.LOGOUT)]
    kinds = [(e.type, e.outcome, e.user) for e in sessions]
    assert kinds == [
        (AuditType.LOGIN, Outcome.SUCCESS, "viewer"),
        (AuditType.LOGOUT, Outcome.SUCCESS, "viewer"),
    ]
    assert sessions[0].address == "127.0.0.1"


def test_a_store_outage_is_503_with_retry_after_never_400_or_500(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    services = services_for(admin_settings(), redis_client)
    services.live_mappings.load()
    token, _ = services.auth.create_token(Role.VIEWER, label="t", by="test")
    bearer = {"Authorization": f"Bearer {token}"}
    with running_api(services) as api, api.client(headers=bearer) as client:
        assert client.get("/api/messages").status_code == 200
        redis_server.stop()
        answers = [
            client.get("/api/messages"),
            client.post("/api/worklist/search", json={"criteria": {}}),
        ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"].isdigit()
        assert "store is unavailable" in answer.json()["detail"]

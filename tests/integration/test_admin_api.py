"""The admin API over real HTTP (uvicorn on port 0, a real redis-server): every route for
every kind of caller, CSRF, cookies, logout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import pytest
import redis

from broker.services.auth import Role
from tests.integration.admin_helpers import (
    CALLERS,
    PASSWORD,
    Api,
    admin_settings,
    check_route,
    running_api,
    services_for,
)

# route -> expected status per caller, in the order of CALLERS
MATRIX = {
    ("GET", "/healthz"): (200, 200, 200, 200, 200),
    ("GET", "/readyz"): (200, 200, 200, 200, 200),
    ("GET", "/metrics"): (401, 200, 200, 200, 200),  # any role; metrics_allow is empty
    ("GET", "/api/session"): (401, 200, 200, 200, 200),
    ("GET", "/api/status"): (401, 200, 200, 200, 200),
    ("GET", "/api/users"): (401, 403, 403, 200, 403),
    ("DELETE", "/api/session"): (401, 204, 204, 204, 400),
}


@pytest.fixture
def api(redis_client: redis.Redis) -> Iterator[Api]:
    services = services_for(admin_settings(), redis_client)
    services.live_mappings.load()
    with running_api(services) as running:
        yield running


@pytest.mark.parametrize(("method", "path"), list(MATRIX))
@pytest.mark.parametrize("who", CALLERS)
def test_every_route_for_every_caller(api: Api, method: str, path: str, who: str) -> None:
    check_route(api, who, method, path, MATRIX[(method, path)][CALLERS.index(who)])


def test_login_answers_who_and_the_csrf_token_and_sets_a_strict_cookie(api: Api) -> None:
    with api.client() as client:
        answer = client.post("/api/session", json={"user": "editor", "password": PASSWORD})
        assert answer.status_code == 200
        body = answer.json()
        assert (body["user"], body["role"], body["kind"]) == ("editor", "editor", "session")
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("mwlb_session=")
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert "secure" not in flags  # plain HTTP on loopback: Secure comes with TLS
        assert not any(f.startswith(("max-age", "expires")) for f in flags)  # the broker ends it
        me = client.get("/api/session").json()
        assert me["user"] == "editor" and me["csrf"] == body["csrf"]


def test_a_change_by_cookie_needs_the_csrf_token(api: Api) -> None:
    client, csrf = api.login("admin")
    with closing(client):
        for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
            refused = client.delete("/api/session", headers=headers)
            assert refused.status_code == 403
            assert "X-CSRF-Token" in refused.json()["detail"]
        assert client.get("/api/session").status_code == 200  # still logged in
        assert client.delete("/api/session", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert client.get("/api/session").status_code == 401  # the session is over
    other, _ = api.login("admin")
    with closing(other):
        assert other.get("/api/session").status_code == 200  # only that session ended


def test_status_says_what_runs(api: Api) -> None:
    client, _ = api.login("viewer")
    with closing(client):
        status = client.get("/api/status").json()
    assert status["listeners"] == {"hl7": 1, "dicom": 2}
    assert status["mapping_version"] == 1
    assert status["messages"] == {"errors": 0, "warnings": 0}
    assert status["version"] and status["ae_title"] == "MWL_BROKER"


def test_users_lists_names_and_roles_never_hashes(api: Api) -> None:
    client, _ = api.login("admin")
    with closing(client):
        answer = client.get("/api/users")
    users = {u["name"]: u for u in answer.json()}
    assert users["viewer"]["role"] == "viewer" and users["admin"]["last_login"] is not None
    assert "argon2" not in answer.text and "hash" not in answer.text


def test_revoked_token_and_disabled_user_are_refused_at_once(api: Api) -> None:
    text, info = api.services.auth.create_token(Role.ADMIN, label="x", by="test")
    bearer = {"Authorization": f"Bearer {text}"}
    client, _ = api.login("editor")
    with api.client() as anonymous, closing(client):
        assert anonymous.get("/api/users", headers=bearer).status_code == 200
        api.services.auth.revoke_token(info.id, by="test")
        assert anonymous.get("/api/users", headers=bearer).status_code == 401
        api.services.auth.set_disabled("editor", True, by="test")
        assert client.get("/api/session").status_code == 401
        basic = {"Authorization": "Basic YWRtaW46eA=="}
        assert anonymous.get("/api/session", headers=basic).status_code == 401


def test_security_headers_on_every_answer(api: Api) -> None:
    with api.client() as client:
        for answer in (client.get("/healthz"), client.get("/api/status"), client.get("/nope")):
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["x-content-type-options"] == "nosniff"
            csp = answer.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "server" not in answer.headers


def test_openapi_is_served_to_a_logged_in_caller_and_no_docs_ui(api: Api) -> None:
    with api.client() as client:
        assert client.get("/api/openapi.json").status_code == 401
        assert client.get("/docs").status_code == 404
    client, _ = api.login("viewer")
    with closing(client):
        spec = client.get("/api/openapi.json")
    assert spec.status_code == 200 and spec.headers["content-type"] == "application/json"
    document = spec.json()
    assert "/api/session" in document["paths"] and "/api/openapi.json" not in document["paths"]
    for item in document["paths"].values():
        for operation in item.values():  # every error is declared as the problem it is
            problem = operation["responses"]["default"]["content"]["application/problem+json"]
            assert problem["schema"] == {"$ref": "#/components/schemas/ProblemDetails"}
            if "422" in operation["responses"]:
                assert "application/problem+json" in operation["responses"]["422"]["content"]


def test_readyz_says_what_is_down(redis_client: redis.Redis) -> None:
    services = services_for(admin_settings(), redis_client)  # no mapping version loaded
    listeners = {"hl7": None, "dicom": 11112}
    with running_api(services, listeners=lambda: listeners) as api, api.client() as client:
        answer = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    detail = answer.json()["detail"]
    assert "the hl7 listener is not up" in detail and "no mapping version" in detail
    assert "dicom" not in detail

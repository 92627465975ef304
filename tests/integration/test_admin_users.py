"""Users and API tokens over real HTTP (uvicorn on port 0, a real redis-server): every
route for every caller, then what each change does, its audit record and its problems."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import pytest
import redis

from broker.audit.events import AuditType, Outcome
from tests.integration.admin_helpers import (
    CALLERS,
    PASSWORD,
    Api,
    Recorded,
    admin_settings,
    check_route,
    running_api,
    services_for,
)

NEW_PASSWORD = "another long password"
NEW_USER = {"name": "carol", "role": "editor", "password": PASSWORD}
# route -> (body, expected status per caller in the order of CALLERS)
MATRIX: dict[tuple[str, str], tuple[object, tuple[int, ...]]] = {
    ("GET", "/api/users"): (None, (401, 403, 403, 200, 403)),
    ("POST", "/api/users"): (NEW_USER, (401, 403, 403, 201, 403)),
    ("PATCH", "/api/users/viewer"): ({"disabled": False}, (401, 403, 403, 200, 403)),
    ("GET", "/api/tokens"): (None, (401, 403, 403, 200, 403)),
    ("POST", "/api/tokens"): ({"label": "ris"}, (401, 403, 403, 201, 403)),
    ("DELETE", "/api/tokens/0123456789abcdef"): (None, (401, 403, 403, 404, 403)),
    ("POST", "/api/session/password"): (
        {"current": "not it at all", "password": NEW_PASSWORD},
        (401, 400, 400, 400, 400),
    ),
}


@pytest.fixture
def api(redis_client: redis.Redis, audit: Recorded) -> Iterator[Api]:
    with running_api(services_for(admin_settings(), redis_client, audit)) as running:
        yield running


@pytest.mark.parametrize(("method", "path"), list(MATRIX))
@pytest.mark.parametrize("who", CALLERS)
def test_every_route_for_every_caller(api: Api, method: str, path: str, who: str) -> None:
    body, expected = MATRIX[(method, path)]
    kwargs = {} if body is None else {"json": body}
    check_route(api, who, method, path, expected[CALLERS.index(who)], **kwargs)


@pytest.mark.parametrize(("method", "path"), [k for k in MATRIX if k[0] != "GET"])
def test_a_change_by_cookie_needs_the_csrf_token(api: Api, method: str, path: str) -> None:
    client, _ = api.login("admin")
    body = MATRIX[(method, path)][0]
    with closing(client):
        answer = client.request(method, path, json=body)
    assert answer.status_code == 403 and "X-CSRF-Token" in answer.json()["detail"]


def test_an_added_user_logs_in_with_the_role_given(api: Api, audit: Recorded) -> None:
    client, csrf = api.login("admin")
    with closing(client):
        answer = client.post("/api/users", json=NEW_USER, headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 201
        assert answer.json()["name"] == "carol" and answer.json()["role"] == "editor"
        assert "hash" not in answer.text and PASSWORD not in answer.text
    carol, _ = api.login("carol")
    with closing(carol):
        assert carol.get("/api/session").json()["role"] == "editor"
    added = [e for e in audit.events if e.type is AuditType.USER_ADD and e.target == "carol"]
    assert [(e.user, e.details["role"]) for e in added] == [("admin", "editor")]


def test_role_disable_and_reset_end_the_users_sessions(api: Api, audit: Recorded) -> None:
    admin, csrf = api.login("admin")
    headers = {"X-CSRF-Token": csrf}
    with closing(admin):
        for change in ({"role": "admin"}, {"disabled": True}, {"password": NEW_PASSWORD}):
            viewer, _ = api.login("viewer")
            with closing(viewer):
                answer = admin.patch("/api/users/viewer", json=change, headers=headers)
                assert answer.status_code == 200, answer.text
                assert viewer.get("/api/session").status_code == 401
            if change.get("disabled"):
                assert answer.json()["disabled"] is True
                enabled = admin.patch(
                    "/api/users/viewer", json={"disabled": False}, headers=headers
                )
                assert enabled.json()["disabled"] is False
    viewer, _ = api.login("viewer", NEW_PASSWORD)
    with closing(viewer):
        assert viewer.get("/api/session").json()["role"] == "admin"
    kinds = [e.type for e in audit.events if e.target == "viewer" and e.user == "admin"]
    assert kinds == [
        AuditType.USER_ROLE, AuditType.USER_DISABLE, AuditType.USER_ENABLE, AuditType.USER_PASSWORD,
    ]  # fmt: skip


def test_a_token_is_shown_once_listed_without_its_secret_and_revoked(
    api: Api, audit: Recorded
) -> None:
    admin, csrf = api.login("admin")
    headers = {"X-CSRF-Token": csrf}
    with closing(admin):
        made = admin.post("/api/tokens", json={"label": "ris", "role": "editor"}, headers=headers)
        assert made.status_code == 201
        text, token_id = made.json()["token"], made.json()["id"]
        listed = admin.get("/api/tokens").json()
        assert [t["id"] for t in listed] == [token_id] and text not in str(listed)
        with api.client(headers={"Authorization": f"Bearer {text}"}) as bearer:
            assert bearer.get("/api/session").json()["role"] == "editor"
            assert admin.delete(f"/api/tokens/{token_id}", headers=headers).status_code == 204
            assert bearer.get("/api/session").status_code == 401
        assert admin.get("/api/tokens").json() == []
    kinds = [(e.type, e.user) for e in audit.events if e.target == token_id]
    assert kinds == [(AuditType.TOKEN_CREATE, "admin"), (AuditType.TOKEN_REVOKE, "admin")]


def test_a_scanner_token_names_its_ae_title(api: Api) -> None:
    admin, csrf = api.login("admin")
    with closing(admin):
        body = {"label": "ct1", "scanner": "CT_ROOM_1"}
        made = admin.post("/api/tokens", json=body, headers={"X-CSRF-Token": csrf}).json()
        assert made["scanner"] == "CT_ROOM_1" and made["role"] == "viewer"


def test_you_change_your_own_password_with_the_current_one(api: Api, audit: Recorded) -> None:
    client, csrf = api.login("editor")
    headers = {"X-CSRF-Token": csrf}
    with closing(client):
        wrong = {"current": "not the password", "password": NEW_PASSWORD}
        answer = client.post("/api/session/password", json=wrong, headers=headers)
        assert answer.status_code == 400 and "current password" in answer.json()["detail"]
        short = {"current": PASSWORD, "password": "short"}
        answer = client.post("/api/session/password", json=short, headers=headers)
        assert answer.status_code == 400 and "12 characters" in answer.json()["detail"]
        right = {"current": PASSWORD, "password": NEW_PASSWORD}
        assert client.post("/api/session/password", json=right, headers=headers).status_code == 204
        assert client.get("/api/session").status_code == 401  # its sessions ended
    again, _ = api.login("editor", NEW_PASSWORD)
    again.close()
    changes = [e for e in audit.events if e.type is AuditType.USER_PASSWORD]
    assert [(e.outcome, e.user) for e in changes] == [
        (Outcome.REFUSED, "editor"), (Outcome.SUCCESS, "editor"),
    ]  # fmt: skip
    assert NEW_PASSWORD not in repr(changes) and PASSWORD not in repr(changes)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("POST", "/api/users", {**NEW_USER, "name": "bad name"}, 400, "user name"),
        ("POST", "/api/users", {**NEW_USER, "password": "short"}, 400, "12 characters"),
        ("POST", "/api/users", {**NEW_USER, "name": "viewer"}, 400, "exists"),
        ("POST", "/api/users", {**NEW_USER, "role": "root"}, 422, "role"),
        ("POST", "/api/users", {**NEW_USER, "extra": 1}, 422, "extra"),
        ("PATCH", "/api/users/nobody", {"disabled": True}, 404, "no user 'nobody'"),
        ("PATCH", "/api/users/admin", {"disabled": True}, 409, "yourself"),
        ("PATCH", "/api/users/admin", {"role": "viewer"}, 409, "yourself"),
        ("PATCH", "/api/users/viewer", {"password": "short"}, 400, "12 characters"),
        ("POST", "/api/tokens", {"label": "\u00e9"}, 400, "label"),
        ("POST", "/api/tokens", {"scanner": "BAD\\AE"}, 400, "scanner"),
        ("DELETE", "/api/tokens/nope", None, 404, "no token 'nope'"),
    ],
)
def test_each_bad_input_gets_a_problem_naming_it(
    api: Api, method: str, path: str, body: object, status: int, says: str
) -> None:
    client, csrf = api.login("admin")
    with closing(client):
        answer = client.request(method, path, headers={"X-CSRF-Token": csrf}, json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert says in answer.json()["detail"]

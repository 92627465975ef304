"""Adding and deleting mapping files through ``/api/mappings`` (``add`` and ``delete`` beside
``files``), over real HTTP with a real Redis: every route with the new fields for every
caller, a site file added, previewed, published, deleted and rolled back (history, diff,
export and the audit trail each step), and each refusal naming its field."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
import redis

from broker.audit.events import AuditType
from tests.broker_runner import MAPPINGS
from tests.integration.admin_helpers import (
    CALLERS,
    Api,
    Recorded,
    admin_settings,
    check_route,
    running_api,
    services_for,
)
from tests.integration.mapping_site import CARDIO_ORDER, SITE_FILE, SITE_NAME

ORDERS = (MAPPINGS / "orders.yaml").read_text(encoding="utf-8")
SHIPPED = ["adt.yaml", "orders.yaml", "outbound.yaml"]
ADD = {"add": {SITE_NAME: SITE_FILE}}
DELETE = {"delete": ["outbound.yaml"]}
V = "/api/mappings/versions"

# route, body -> expected status per caller in the order of CALLERS
MATRIX: dict[tuple[str, str], tuple[int, ...]] = {
    ("/api/mappings/validate", "add"): (401, 200, 200, 200, 200),
    ("/api/mappings/validate", "delete"): (401, 200, 200, 200, 200),
    ("/api/mappings/preview", "add"): (401, 200, 200, 200, 200),
    ("/api/mappings/diff", "delete"): (401, 200, 200, 200, 200),
    ("/api/mappings/publish", "add"): (401, 403, 201, 201, 403),
    ("/api/mappings/publish", "delete"): (401, 403, 201, 201, 403),
}
BODIES: dict[str, dict[str, Any]] = {"add": ADD, "delete": DELETE}


def body_for(path: str, kind: str) -> dict[str, Any]:
    extra = {"message": CARDIO_ORDER} if path.endswith("preview") else {}
    return {**BODIES[kind], **extra}


@pytest.fixture
def api(redis_client: redis.Redis, audit: Recorded) -> Iterator[Api]:
    services = services_for(admin_settings(), redis_client, audit)
    services.live_mappings.load()  # seeds version 1 from the mappings directory
    with running_api(services) as running:
        yield running


@pytest.mark.parametrize(("path", "kind"), list(MATRIX))
@pytest.mark.parametrize("who", CALLERS)
def test_adding_and_deleting_for_every_caller(api: Api, path: str, kind: str, who: str) -> None:
    expected = MATRIX[(path, kind)][CALLERS.index(who)]
    check_route(api, who, "POST", path, expected, json=body_for(path, kind))


@pytest.mark.parametrize(("path", "kind"), list(MATRIX))
def test_adding_or_deleting_by_cookie_needs_the_csrf_token(api: Api, path: str, kind: str) -> None:
    client, _ = api.login("editor")
    with closing(client):
        refused = client.post(path, json=body_for(path, kind))
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    assert api.services.mapping_versions.active_number() == 1


def files_of(editor: Any, number: int) -> list[str]:
    return sorted(editor.get(f"{V}/{number}").json()["files"])


def audited(audit: Recorded, number: int) -> dict[str, Any]:
    (event,) = [e for e in audit.events if e.target == f"v{number}"]
    return {"type": event.type, "user": event.user, **event.details}


def test_a_site_file_is_added_previewed_published_deleted_and_rolled_back(
    editor: Any, audit: Recorded
) -> None:
    assert editor.post("/api/mappings/validate", json=ADD).json() == {
        "valid": True,
        "problems": [],
    }
    trial = editor.post("/api/mappings/preview", json={"message": CARDIO_ORDER, **ADD}).json()
    assert trial["mappings"] == f"v1 with new {SITE_NAME}" and trial["refused"] == 0
    (message,) = trial["messages"]
    assert (message["message_type"], message["mapping_name"]) == ("OML^O21", "cardiology")
    assert message["changes"][0]["action"] == "schedule"
    trace = {r["attribute"]: r["value"] for r in message["changes"][0]["entries"][0]["trace"]}
    assert trace["ScheduledProcedureStepSequence > Modality"] == ["US"]
    before = editor.post("/api/mappings/preview", json={"message": CARDIO_ORDER}).json()
    assert before["refused"] == 1  # the active set has no mapping for OML^O21
    edited = editor.post("/api/mappings/diff", json=ADD).json()["text"]
    assert f"--- /dev/null\n+++ edited/{SITE_NAME}\n" in edited

    added = editor.post("/api/mappings/publish", json={**ADD, "comment": "cardio", "expect": 1})
    assert added.status_code == 201, added.text
    assert added.json()["version"]["files"] == sorted([*SHIPPED, SITE_NAME])
    assert audited(audit, 2)["added"] == [SITE_NAME] and "deleted" not in audited(audit, 2)
    history = editor.get("/api/mappings/history").json()
    assert history["active"] == 2 and history["versions"][0]["comment"] == "cardio"
    assert SITE_NAME in history["versions"][0]["files"]
    with zipfile.ZipFile(io.BytesIO(editor.get(f"{V}/2/export").content)) as archive:
        assert archive.read(SITE_NAME).decode() == SITE_FILE
    after = editor.post("/api/mappings/preview", json={"message": CARDIO_ORDER}).json()
    assert after["mappings"] == "v2" and after["refused"] == 0

    gone = editor.post("/api/mappings/publish", json={"delete": [SITE_NAME], "expect": 2})
    assert gone.status_code == 201 and files_of(editor, 3) == SHIPPED
    assert audited(audit, 3)["deleted"] == [SITE_NAME] and "added" not in audited(audit, 3)
    text = editor.post("/api/mappings/diff", json={"from": 2, "to": 3}).json()["text"]
    assert f"--- v2/{SITE_NAME}\n+++ /dev/null\n" in text
    with zipfile.ZipFile(io.BytesIO(editor.get(f"{V}/3/export").content)) as archive:
        assert sorted(archive.namelist()) == SHIPPED

    back = editor.post(f"{V}/2/rollback", json={"comment": "cardio again", "expect": 3})
    assert back.status_code == 201 and files_of(editor, 4) == sorted([*SHIPPED, SITE_NAME])
    record = audited(audit, 4)
    assert (record["type"], record["restores"], record["added"]) == (
        AuditType.MAPPING_ROLLBACK,
        2,
        [SITE_NAME],
    )
    assert editor.post(f"{V}/1/rollback", json={"expect": 4}).status_code == 201
    assert files_of(editor, 5) == SHIPPED and audited(audit, 5)["deleted"] == [SITE_NAME]


def test_one_version_changes_adds_and_deletes_at_once(editor: Any, audit: Recorded) -> None:
    changed = ORDERS + "\n# Site: checked.\n"
    body = {"files": {"orders.yaml": changed}, **ADD, **DELETE, "comment": "all three"}
    diff = editor.post("/api/mappings/diff", json=body).json()["text"]
    assert "+# Site: checked." in diff and f"+++ edited/{SITE_NAME}" in diff
    assert "--- v1/outbound.yaml\n+++ /dev/null" in diff
    trial = editor.post("/api/mappings/preview", json={"message": CARDIO_ORDER, **body}).json()
    assert trial["mappings"] == f"v1 with orders.yaml, new {SITE_NAME}, without outbound.yaml"
    published = editor.post("/api/mappings/publish", json=body)
    assert published.status_code == 201, published.text
    assert files_of(editor, 2) == ["adt.yaml", SITE_NAME, "orders.yaml"]
    assert editor.get(f"{V}/2").json()["files"]["orders.yaml"] == changed
    record = audited(audit, 2)
    assert (record["user"], record["added"], record["deleted"]) == (
        "editor",
        [SITE_NAME],
        ["outbound.yaml"],
    )


BAD_NAMES = [
    "../evil.yaml",
    "sub/x.yaml",
    ".hidden.yaml",
    "x.yml",
    "x y.yaml",
    "ü.yaml",
    "orders.yaml\n",
    "a" * 101 + ".yaml",
    "",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_new_file_name_that_is_not_a_plain_yaml_name_is_refused(editor: Any, name: str) -> None:
    for path in ("/api/mappings/validate", "/api/mappings/publish"):
        refused = editor.post(path, json={"add": {name: SITE_FILE}})
        assert refused.status_code == 422, (path, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        detail = refused.json()["detail"]
        assert detail.startswith("add: mapping file name") and "not allowed" in detail
    assert editor.get("/api/mappings").json()["number"] == 1


REFUSALS = [
    ({"add": {"orders.yaml": ORDERS}}, "add: v1 already has a file 'orders.yaml'"),
    ({"add": {SITE_NAME: SITE_FILE}, "files": {SITE_NAME: SITE_FILE}}, "add: 'orders-card"),
    ({"delete": ["nope.yaml"]}, "delete: v1 has no file 'nope.yaml' to delete"),
    ({"delete": ["../adt.yaml"]}, "delete: v1 has no file '../adt.yaml'"),
    ({"delete": ["adt.yaml", "adt.yaml"]}, "delete: 'adt.yaml' is named twice"),
    ({"delete": ["adt.yaml"], "files": {"adt.yaml": "x"}}, "delete: 'adt.yaml' is under 'files'"),
    ({"delete": SHIPPED}, "delete: a mapping set keeps at least one file"),
]


@pytest.mark.parametrize(("body", "start"), REFUSALS)
def test_an_edit_that_cannot_be_applied_is_refused_naming_the_field(
    editor: Any, body: dict[str, Any], start: str
) -> None:
    for path in ("validate", "preview", "diff", "publish"):
        extra = {"message": CARDIO_ORDER} if path == "preview" else {}
        refused = editor.post(f"/api/mappings/{path}", json={**body, **extra})
        assert refused.status_code == 422, (path, refused.text)
        assert refused.json()["detail"].startswith(start), (path, refused.json())
    assert editor.get("/api/mappings").json()["number"] == 1


def test_a_set_that_no_longer_validates_is_refused_with_its_errors(editor: Any) -> None:
    clash = {"add": {"orders-copy.yaml": ORDERS}}
    checked = editor.post("/api/mappings/validate", json=clash).json()
    (found,) = checked["problems"]
    assert found["file"] is None and "claimed by both" in found["message"]
    refused = editor.post("/api/mappings/publish", json=clash)
    assert refused.status_code == 422 and "claimed by both" in refused.json()["detail"]

    broken = {"add": {SITE_NAME: SITE_FILE.replace("  PatientName: PID-5", "  PatientNam: PID-5")}}
    (found,) = editor.post("/api/mappings/validate", json=broken).json()["problems"]
    line = SITE_FILE[: SITE_FILE.index("PatientName")].count("\n") + 1
    assert (found["file"], found["line"]) == (SITE_NAME, line) and "PatientName" in found["message"]
    syntax = {"add": {SITE_NAME: "a: [1\nb: 2\n"}}
    (found,) = editor.post("/api/mappings/validate", json=syntax).json()["problems"]
    assert (found["file"], found["line"], found["column"]) == (SITE_NAME, 2, 2)
    refused = editor.post("/api/mappings/publish", json=broken)
    assert refused.status_code == 422 and refused.json()["problems"][0]["line"] == line

    too_long = editor.post("/api/mappings/publish", json={"delete": ["x" * 201]})
    assert too_long.status_code == 422 and too_long.json()["detail"].startswith("delete.0:")
    nothing = editor.post("/api/mappings/publish", json={"files": {}, "add": {}, "delete": []})
    assert nothing.status_code == 400 and nothing.json()["detail"].startswith("files: ")
    assert editor.get("/api/mappings").json()["number"] == 1

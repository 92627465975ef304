"""``/api/mappings`` over real HTTP with a real Redis: every route for every caller, then
publish → history → diff → rollback → export, a stale ``expect``, line errors, the preview's
trace, and the wider body cap of these routes."""

from __future__ import annotations

import http.client
import io
import zipfile
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
import redis
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.admin.mappings import MAX_MAPPINGS_BODY
from broker.admin.middleware import MAX_BODY
from broker.audit.events import Outcome
from tests.broker_runner import DATA, MAPPINGS
from tests.integration.admin_helpers import (
    CALLERS,
    Api,
    Recorded,
    admin_settings,
    check_route,
    running_api,
    services_for,
)

ORDERS = (MAPPINGS / "orders.yaml").read_text(encoding="utf-8")
ORM = (DATA / "orm_o01_nw_latin1.hl7").read_text(encoding="latin-1")
VALID = {"files": {"orders.yaml": ORDERS}}
V = "/api/mappings/versions"

# route -> (expected status per caller in the order of CALLERS, JSON body)
MATRIX: dict[tuple[str, str], tuple[tuple[int, ...], Any]] = {
    ("GET", "/api/mappings"): ((401, 200, 200, 200, 200), None),
    ("GET", "/api/mappings/history"): ((401, 200, 200, 200, 200), None),
    ("GET", f"{V}/1"): ((401, 200, 200, 200, 200), None),
    ("GET", f"{V}/1/export"): ((401, 200, 200, 200, 200), None),
    ("POST", "/api/mappings/validate"): ((401, 200, 200, 200, 200), VALID),
    ("POST", "/api/mappings/preview"): ((401, 200, 200, 200, 200), {"message": ORM}),
    ("POST", "/api/mappings/diff"): ((401, 200, 200, 200, 200), {}),
    ("POST", "/api/mappings/publish"): ((401, 403, 200, 200, 403), VALID),  # 200: unchanged
    ("POST", f"{V}/1/rollback"): ((401, 403, 200, 200, 403), {}),
}


def edited(old: str, new: str) -> str:
    assert old in ORDERS
    return ORDERS.replace(old, new)


@pytest.fixture
def api(redis_client: redis.Redis, audit: Recorded) -> Iterator[Api]:
    services = services_for(admin_settings(), redis_client, audit)
    services.live_mappings.load()  # seeds version 1 from the mappings directory
    with running_api(services) as running:
        yield running


@pytest.mark.parametrize(("method", "path"), list(MATRIX))
@pytest.mark.parametrize("who", CALLERS)
def test_every_route_for_every_caller(api: Api, method: str, path: str, who: str) -> None:
    expected, body = MATRIX[(method, path)]
    check_route(api, who, method, path, expected[CALLERS.index(who)], json=body)


@pytest.mark.parametrize(("method", "path"), [k for k in MATRIX if k[0] == "POST"])
def test_a_change_or_computation_by_cookie_needs_the_csrf_token(
    api: Api, method: str, path: str
) -> None:
    client, _ = api.login("editor")
    with closing(client):
        refused = client.post(path, json=MATRIX[(method, path)][1])
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]


def test_publish_history_diff_rollback_export(api: Api, editor: Any, audit: Recorded) -> None:
    first = editor.get("/api/mappings").json()
    assert first["number"] == 1 and "orders.yaml" in first["files"]
    changed = {"orders.yaml": edited("AdmissionID: PV1-19", "AdmissionID: PV1-50")}
    body = {"files": changed, "comment": "visit number", "expect": 1}
    published = editor.post("/api/mappings/publish", json=body)
    assert published.status_code == 201, published.text
    version = published.json()["version"]
    assert (version["number"], version["author"], version["based_on"]) == (2, "editor", 1)
    assert [e.user for e in audit.events if e.target == "v2"] == ["editor"]

    stale = editor.post("/api/mappings/publish", json={**body, "expect": 1})
    assert stale.status_code == 409 and "v2" in stale.json()["detail"]
    assert audit.events[-1].outcome is Outcome.REFUSED and audit.events[-1].user == "editor"

    history = editor.get("/api/mappings/history", params={"limit": 10}).json()
    assert history["active"] == 2 and [v["number"] for v in history["versions"]] == [2, 1]
    assert history["versions"][0]["comment"] == "visit number"
    page = editor.get("/api/mappings/history", params={"limit": 1}).json()
    assert [v["number"] for v in page["versions"]] == [2] and page["next_before"] == 2
    rest = editor.get("/api/mappings/history", params={"limit": 1, "before": 2}).json()
    assert [v["number"] for v in rest["versions"]] == [1] and rest["next_before"] is None

    text = editor.post("/api/mappings/diff", json={"from": 1, "to": 2}).json()["text"]
    assert "-  AdmissionID: PV1-19" in text and "+  AdmissionID: PV1-50" in text
    assert editor.post("/api/mappings/diff", json={}).json()["text"] == text
    undo = {"files": {"orders.yaml": ORDERS}}
    against = editor.post("/api/mappings/diff", json=undo).json()
    assert (against["old"], against["new"]) == ("v2", "edited")
    assert "-  AdmissionID: PV1-50" in against["text"]

    rolled = editor.post(f"{V}/1/rollback", json={"comment": "wrong", "expect": 2})
    assert rolled.status_code == 201
    assert rolled.json()["version"]["comment"] == "rollback to v1: wrong"
    assert editor.post(f"{V}/1/rollback", json={"expect": 2}).status_code == 409
    assert editor.get(f"{V}/3").json()["files"]["orders.yaml"] == ORDERS

    export = editor.get(f"{V}/2/export")
    assert export.headers["content-type"] == "application/zip"
    assert 'filename="mappings-v2.zip"' in export.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
        assert archive.read("orders.yaml").decode() == changed["orders.yaml"]
        assert sorted(archive.namelist()) == ["adt.yaml", "orders.yaml", "outbound.yaml"]


def test_bad_yaml_gives_the_line_and_publishes_nothing(editor: Any) -> None:
    broken = {"orders.yaml": edited("PatientSex:", "PatientSx:")}
    checked = editor.post("/api/mappings/validate", json={"files": broken}).json()
    assert checked["valid"] is False
    (found,) = checked["problems"]
    assert found["file"] == "orders.yaml" and "did you mean PatientSex" in found["message"]
    line = ORDERS[: ORDERS.index("PatientSex:")].count("\n") + 1
    assert found["line"] == line
    syntax = editor.post("/api/mappings/validate", json={"files": {"x.yaml": "a: [1\nb: 2\n"}})
    (found,) = syntax.json()["problems"]
    assert (found["file"], found["line"], found["column"]) == ("x.yaml", 2, 2)
    refused = editor.post("/api/mappings/publish", json={"files": broken})
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["problems"][0]["line"] == line
    assert editor.get("/api/mappings").json()["number"] == 1


def test_a_set_that_clashes_with_the_active_version_is_named_as_a_set(editor: Any) -> None:
    checked = editor.post("/api/mappings/validate", json={"files": {"copy.yaml": ORDERS}})
    (found,) = checked.json()["problems"]
    assert found["file"] is None and "claimed by both" in found["message"]
    bad_name = editor.post("/api/mappings/validate", json={"files": {"../x.yaml": ORDERS}})
    assert bad_name.json()["problems"][0]["rule"] == "file name"


def test_preview_of_an_order_gives_the_trace(editor: Any) -> None:
    answer = editor.post("/api/mappings/preview", json={"message": ORM})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["mappings"] == "v1" and body["refused"] == 0
    (message,) = body["messages"]
    assert message["mapping_name"] == "orders" and message["outcome"].startswith("AA")
    (entry,) = message["changes"][0]["entries"]
    rows = {row["attribute"]: row for row in entry["trace"]}
    assert (rows["AdmissionID"]["source"], rows["AdmissionID"]["value"]) == ("PV1-19", ["V-5001"])
    assert {"path": "AdmissionID", "tag": "(0038,0010)", "vr": "LO", "value": "V-5001"} in entry[
        "attributes"
    ]
    assert "AdmissionID" in message["rendered"]
    fixed = {"orders.yaml": edited("AdmissionID: PV1-19", 'AdmissionID: {value: "FIXED"}')}
    trial = editor.post("/api/mappings/preview", json={"message": ORM, "files": fixed}).json()
    assert trial["mappings"] == "v1 with orders.yaml"
    rows = {r["attribute"]: r for r in trial["messages"][0]["changes"][0]["entries"][0]["trace"]}
    assert (rows["AdmissionID"]["source"], rows["AdmissionID"]["value"]) == ("constant", ["FIXED"])


def test_preview_of_a_refused_message_gives_the_err_location(editor: Any) -> None:
    text = (DATA / "orm_o01_missing_pid3.hl7").read_text(encoding="latin-1")
    body = editor.post("/api/mappings/preview", json={"message": text}).json()
    assert body["refused"] == 1
    refusal = body["messages"][0]["refusal"]
    assert (refusal["ack_code"], refusal["err_code"], refusal["location"]) == ("AE", "101", "PID-3")
    batch = "\r".join([ORM.strip("\r\n")] * 101)
    many = editor.post("/api/mappings/preview", json={"message": batch})
    assert many.status_code == 400 and "at most 100" in many.json()["detail"]
    nothing = editor.post("/api/mappings/preview", json={"message": "not a message"})
    assert nothing.status_code == 400 and "not an HL7 message" in nothing.json()["detail"]


def test_unknown_versions_are_404_and_bad_numbers_422(editor: Any) -> None:
    for path in (f"{V}/99", f"{V}/99/export"):
        answer = editor.get(path)
        assert answer.status_code == 404 and "99" in answer.json()["detail"]
    assert editor.post(f"{V}/99/rollback", json={}).status_code == 404
    assert editor.post("/api/mappings/diff", json={"from": 99}).status_code == 404
    assert editor.get(f"{V}/0").status_code == 422
    assert editor.get("/api/mappings/history", params={"limit": 501}).status_code == 422


def announced(api: Api, path: str, length: int) -> tuple[int, str]:
    """POST ``path`` announcing a body of ``length`` bytes, sending none: the bound is checked
    on the Content-Length before the body is read (no unread megabyte to reset the socket)."""
    host, port = api.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


def test_these_routes_take_a_larger_but_bounded_body(api: Api, editor: Any) -> None:
    padding = "#" + "x" * (2 * MAX_BODY) + "\n"
    large = {"files": {"orders.yaml": padding + ORDERS}}
    assert editor.post("/api/mappings/validate", json=large).json()["valid"] is True
    status, text = announced(api, "/api/mappings/validate", MAX_MAPPINGS_BODY + 1)
    assert status == 413 and str(MAX_MAPPINGS_BODY) in text
    status, text = announced(api, "/api/session", MAX_BODY + 1)
    assert status == 413 and f"larger than {MAX_BODY} bytes" in text


YAMLISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mapping_texts(draw: st.DrawFn) -> str:
    """Any text, YAML of any shape, or the shipped orders.yaml with lines cut or changed."""
    kind = draw(st.sampled_from(("text", "yaml", "cut")))
    if kind == "text":
        return draw(st.text(max_size=300))
    if kind == "yaml":
        return yaml.safe_dump(draw(YAMLISH), allow_unicode=True)
    lines = ORDERS.splitlines(keepends=True)
    start = draw(st.integers(0, len(lines) - 1))
    end = draw(st.integers(start, min(len(lines), start + 5)))
    return "".join([*lines[:start], draw(st.text(max_size=40)), *lines[end:]])


def test_validate_and_preview_never_fail_on_any_text(editor: Any) -> None:
    names = st.sampled_from(("orders.yaml", "adt.yaml", "new.yaml")) | st.text(max_size=12)

    @settings(max_examples=40, derandomize=True, deadline=None, database=None)
    @given(st.dictionaries(names, mapping_texts(), min_size=1, max_size=2))
    def check(files: dict[str, str]) -> None:
        checked = editor.post("/api/mappings/validate", json={"files": files})
        assert checked.status_code == 200, checked.text
        assert checked.json()["valid"] is not bool(checked.json()["problems"])
        trial = editor.post("/api/mappings/preview", json={"message": ORM, "files": files})
        assert trial.status_code in (200, 400, 422), trial.text

    check()

"""``/api/messages`` over real HTTP on a real redis-server: every route for every caller,
then listing, filters, paging, the record, the raw bytes, reprocess and dismiss."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import redis

from broker.mllp.client import MLLPClient, split_messages, summarize_ack
from broker.services.application import Services
from broker.services.auth import Role
from tests.broker_runner import DATA, MAPPINGS, broker_settings, running_broker
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

NW = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
NO_PID3 = split_messages((DATA / "orm_o01_missing_pid3.hl7").read_bytes())[0]

# route -> expected status per caller, in the order of CALLERS; message 2 is on the error list
MATRIX = {
    ("GET", "/api/messages"): (401, 200, 200, 200, 200),
    ("GET", "/api/messages/2"): (401, 200, 200, 200, 200),
    ("GET", "/api/messages/2/raw"): (401, 200, 200, 200, 200),
    ("POST", "/api/messages/2/reprocess"): (401, 403, 200, 200, 403),
    ("POST", "/api/messages/2/dismiss"): (401, 403, 200, 200, 403),
}


def seed(services: Services) -> None:
    """1: accepted, 2: refused (no PID-3), 3: a resend of 1 (duplicate)."""
    for raw in (NW, NO_PID3, NW):
        services.intake.handle(raw, "10.0.0.1:4000")


@pytest.fixture
def api(redis_client: redis.Redis, audit: Recorded) -> Iterator[Api]:
    services = services_for(admin_settings(), redis_client, audit)
    services.live_mappings.load()
    seed(services)
    with running_api(services) as running:
        yield running


@pytest.fixture
def viewer(api: Api) -> Iterator[httpx.Client]:
    client, _ = api.login("viewer")
    with closing(client):
        yield client


@pytest.mark.parametrize(("method", "path"), list(MATRIX))
@pytest.mark.parametrize("who", CALLERS)
def test_every_route_for_every_caller(api: Api, method: str, path: str, who: str) -> None:
    check_route(api, who, method, path, MATRIX[(method, path)][CALLERS.index(who)])


@pytest.mark.parametrize("action", ["reprocess", "dismiss"])
def test_a_change_by_cookie_needs_the_csrf_token(api: Api, action: str) -> None:
    client, _ = api.login("editor")
    with closing(client):
        refused = client.post(f"/api/messages/2/{action}")
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    assert api.services.messages.get("2").summary.on_error_list


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [row["id"] for row in answer.json()["items"]]


def test_listing_filters_and_paging(viewer: httpx.Client) -> None:
    everything = viewer.get("/api/messages").json()
    assert [r["id"] for r in everything["items"]] == ["3", "2", "1"] and everything["next"] is None
    refused = everything["items"][1]
    assert (refused["outcome"], refused["ack_code"], refused["on_error_list"]) == (
        "error",
        "AE",
        True,
    )
    assert refused["error"]["location"] == "PID-3" and refused["error"]["code"] == "101"
    assert (refused["sending_application"], refused["message_type"]) == ("RIS", "ORM^O01")
    assert refused["received"].endswith("Z") and not refused["dismissed"]
    assert ids(viewer.get("/api/messages", params={"errors_only": "true"})) == ["2"]
    assert ids(viewer.get("/api/messages", params={"outcome": "duplicate"})) == ["3"]
    assert ids(viewer.get("/api/messages", params={"control_id": "ORM-1001"})) == ["3", "1"]
    assert ids(viewer.get("/api/messages", params={"sender": "RIS", "facility": "NOPE"})) == []
    assert ids(viewer.get("/api/messages", params={"type": "ADT^A08"})) == []
    first = viewer.get("/api/messages", params={"limit": "2"}).json()
    assert [r["id"] for r in first["items"]] == ["3", "2"] and first["next"] == 2
    second = viewer.get("/api/messages", params={"limit": "2", "before": first["next"]})
    assert ids(second) == ["1"] and second.json()["next"] is None
    when = everything["items"][0]["received_at"]
    assert ids(viewer.get("/api/messages", params={"since": str(when + 3600)})) == []
    assert ids(viewer.get("/api/messages", params={"until": "2001-01-01T00:00:00Z"})) == []
    later = {"since": "2001-01-01T00:00", "until": str(int(when) + 3600)}
    assert ids(viewer.get("/api/messages", params=later)) == ["3", "2", "1"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"before": "-1"}, "before"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "nan"}, "since"),
        ({"since": "2026-01-02", "until": "2026-01-01"}, "since"),
        ({"errors_only": "maybe"}, "errors_only"),
        ({"outcome": "lost"}, "outcome"),
        ({"sendr": "RIS"}, "sendr"),
        ({"sender": "x" * 300}, "sender"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(
    viewer: httpx.Client, query: dict[str, str], named: str
) -> None:
    answer = viewer.get("/api/messages", params=query)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"].startswith(f"{named}: ")
    assert "x" * 40 not in answer.json()["detail"]


def test_a_repeated_filter_is_refused(viewer: httpx.Client) -> None:
    answer = viewer.get("/api/messages?limit=1&limit=2")
    assert answer.status_code == 400 and answer.json()["detail"].startswith("limit: ")


def test_the_record_of_a_refused_and_of_an_accepted_message(viewer: httpx.Client) -> None:
    refused = viewer.get("/api/messages/2").json()
    assert refused["ack"][0].startswith("MSH|") and refused["ack"][1].startswith("MSA|AE|")
    assert any(line.startswith("ERR|") for line in refused["ack"])
    assert refused["text"][0].startswith("MSH|") and refused["text"][1].startswith(
        "PID|||||Müller^Jürgen"
    )
    assert refused["charset"].startswith("iso8859") and refused["entries"] == []
    assert refused["raw_size"] == refused["kept_bytes"] == len(NO_PID3)
    assert refused["reprocess_of"] is None
    accepted = viewer.get("/api/messages/1").json()
    assert accepted["mapping_name"] == "orders" and accepted["created"] == 1
    (entry,) = accepted["entries"]
    assert entry["on_worklist"] and entry["status"] == "SCHEDULED"
    raw = viewer.get("/api/messages/1/raw")
    assert raw.status_code == 200 and raw.content == NW
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["content-disposition"] == 'attachment; filename="message-1.hl7"'


@pytest.mark.parametrize("path", ["/api/messages/42", "/api/messages/42/raw", "/api/messages/x1"])
def test_an_unknown_message_is_a_404(viewer: httpx.Client, path: str) -> None:
    answer = viewer.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("action", ["reprocess", "dismiss"])
def test_a_change_to_an_unknown_message_is_a_404(editor: httpx.Client, action: str) -> None:
    assert editor.post(f"/api/messages/42/{action}").status_code == 404


def test_dismiss_takes_it_off_the_error_list_once_and_is_audited(
    api: Api, editor: httpx.Client, audit: Recorded
) -> None:
    done = editor.post("/api/messages/2/dismiss")
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["dismissed"] and not body["on_error_list"]
    assert body["resolution"].startswith("dismissed")
    again = editor.post("/api/messages/2/dismiss")
    assert again.status_code == 409 and "not on the error list" in again.json()["detail"]
    never = editor.post("/api/messages/1/dismiss")  # accepted: never on the list
    assert never.status_code == 409
    assert editor.get("/api/messages", params={"errors_only": "1"}).json()["items"] == []
    (event,) = [e for e in audit.events if e.type == "message-dismiss"]
    assert (event.user, event.target) == ("editor", "2")


def test_reprocess_of_a_message_kept_only_in_part_is_a_409(api: Api, editor: httpx.Client) -> None:
    big = NW.replace(b"PID|", b"ZZZ|" + b"x" * 70_000 + b"\rPID|", 1)
    api.services.intake.reject(big, "frame too large", "10.0.0.1:4000")
    record = editor.get("/api/messages/4").json()
    assert record["outcome"] == "rejected" and record["kept_bytes"] < record["raw_size"]
    refused = editor.post("/api/messages/4/reprocess")
    assert refused.status_code == 409 and "send it again" in refused.json()["detail"]


def send(port: int, raw: bytes) -> str:
    with MLLPClient("127.0.0.1", port, timeout=30) as client:
        return summarize_ack(client.send(raw)).code


def test_a_refused_order_is_accepted_once_the_mapping_is_fixed(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    shutil.copytree(MAPPINGS, maps)
    orders = maps / "orders.yaml"
    fixed = orders.read_text(encoding="utf-8")
    strict = fixed.replace(
        "PatientTransportArrangements: OBR-30",
        "PatientTransportArrangements: {path: OBR-30, required: true}",
    )
    orders.write_text(strict, encoding="utf-8")
    with running_broker(broker_settings(tmp_path / "data", mappings_dir=maps)) as broker:
        assert broker.endpoints is not None and broker.services is not None
        assert broker.endpoints.admin_url is not None
        services = broker.services
        services.auth.add_user("ed", PASSWORD, Role.EDITOR, by="test")
        assert send(broker.endpoints.hl7_port, NW) == "AE"  # OBR-30 is empty in this order
        with httpx.Client(base_url=broker.endpoints.admin_url, timeout=30) as client:
            login = client.post("/api/session", json={"user": "ed", "password": PASSWORD})
            client.headers["X-CSRF-Token"] = login.json()["csrf"]
            assert client.get("/api/messages/1/raw").content == NW  # the bytes sent over MLLP
            record = client.get("/api/messages/1").json()
            assert record["error"]["location"] == "OBR-30" and record["on_error_list"]
            still = client.post("/api/messages/1/reprocess").json()
            assert (still["ack_code"], still["accepted"], still["on_error_list"]) == (
                "AE", False, True,
            )  # fmt: skip
            orders.write_text(fixed, encoding="utf-8")
            services.mappings.publish(directory=maps, author="ed", comment="OBR-30 optional")
            done = client.post("/api/messages/1/reprocess").json()
            assert (done["ack_code"], done["outcome"], done["resolved"]) == ("AA", "accepted", True)
            assert done["new_id"] == "3" and not done["on_error_list"]
            original = client.get("/api/messages/1").json()
            assert "reprocessed as message 3, AA" in original["resolution"]
            assert not original["on_error_list"] and not original["dismissed"]
            new = client.get("/api/messages/3").json()
            assert new["reprocess_of"] == "1" and new["peer"] == "reprocess of message 1"
            (entry,) = new["entries"]
            assert entry["status"] == "SCHEDULED"
            assert client.get("/api/messages", params={"errors_only": "yes"}).json()["items"] == []


def test_the_openapi_document_names_every_filter(viewer: httpx.Client) -> None:
    document = viewer.get("/api/openapi.json").json()
    listing = document["paths"]["/api/messages"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert names == {
        "sender", "facility", "type", "control_id", "outcome", "errors_only",
        "warnings_only", "since", "until", "before", "limit",
    }  # fmt: skip
    for path in ("/api/messages/{message_id}/reprocess", "/api/messages/{message_id}/dismiss"):
        assert document["paths"][path]["post"]["summary"]

"""``/api/outbound`` over real HTTP on a real redis-server: every route for every caller,
then the summary, the lists, an event and its (audited) text, retry, retry of every
parked event, and discard with what it leaves parked of its order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import redis

from broker.audit.events import AuditEvent, AuditType
from broker.services.application import Services
from tests.integration.admin_helpers import (
    CALLERS,
    Api,
    Recorded,
    check_route,
    running_api,
    site_services,
)
from tests.integration.outbound_helpers import put_orders, queue, set_status

SITE = (
    '[hl7_senders.RIS]\naddresses = ["127.0.0.1"]\ndestination = "ris"\n'
    '[hl7_destinations.ris]\nhost = "127.0.0.1"\nport = 2575\n'
)
BASE = "/api/outbound/ris"
DISCARD = {"reason": "the RIS closed the order by hand"}

# route -> expected status per caller, in the order of CALLERS (see seed: event 1 is parked)
MATRIX = {
    ("GET", "/api/outbound", ""): (401, 200, 200, 200, 200),
    ("GET", BASE + "/events", ""): (401, 200, 200, 200, 200),
    ("GET", BASE + "/events/1", ""): (401, 200, 200, 200, 200),
    ("GET", BASE + "/events/1/message", ""): (401, 200, 200, 200, 200),
    ("POST", BASE + "/events/1/retry", ""): (401, 403, 200, 200, 403),
    ("POST", BASE + "/events/1/discard", "reason"): (401, 403, 200, 200, 403),
    ("POST", BASE + "/parked/retry", ""): (401, 403, 200, 200, 403),
}
CHANGES = [(path, body) for (method, path, body) in MATRIX if method == "POST"]


def seed(services: Services) -> None:
    """Order O-0: STARTED (event 1, parked: AE) and COMPLETED (2, held behind it); order
    O-1: STARTED (3, waiting)."""
    store = services.store
    first, second = put_orders(store, 2)
    set_status(store, first, "STARTED")
    q = queue(store)
    assert q.acquire("test-host:7:abc", 60_000)
    q.note("test-host:7:abc", "1", {"msg": "MSH|^~\\&|MWL_BROKER\rORC|SC|PL-0"})
    assert q.park("test-host:7:abc", "1", "AE: the receiver rejected it", "unknown order") == 0
    q.release("test-host:7:abc")
    set_status(store, first, "COMPLETED")
    set_status(store, second, "STARTED")


def outbound_records(audit: Recorded) -> list[AuditEvent]:
    return [e for e in audit.events if e.type.value.startswith("outbound-")]


@pytest.fixture
def api(redis_client: redis.Redis, tmp_path: Path, audit: Recorded) -> Iterator[Api]:
    services = site_services(redis_client, tmp_path, SITE, audit=audit)
    seed(services)
    with running_api(services) as running:
        yield running


@pytest.fixture
def editor(api: Api) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    client, csrf = api.login("editor")
    with closing(client):
        yield client, {"X-CSRF-Token": csrf}


@pytest.mark.parametrize(("method", "path", "body"), list(MATRIX))
@pytest.mark.parametrize("who", CALLERS)
def test_every_route_for_every_caller(
    api: Api, method: str, path: str, body: str, who: str
) -> None:
    expected = MATRIX[(method, path, body)][CALLERS.index(who)]
    check_route(api, who, method, path, expected, json=DISCARD if body else None)


@pytest.mark.parametrize(("path", "body"), CHANGES)
def test_a_change_by_cookie_needs_the_csrf_token(api: Api, path: str, body: str) -> None:
    client, _ = api.login("editor")
    with closing(client):
        refused = client.post(path, json=DISCARD if body else None)
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    assert queue(api.services.store).parked() == ["1", "2"]


def test_the_summary_counts_ages_the_lease_and_the_last_error(api: Api) -> None:
    client, _ = api.login("viewer")
    with closing(client):
        (ris,) = client.get("/api/outbound").json()
        assert (ris["name"], ris["host"], ris["port"]) == ("ris", "127.0.0.1", 2575)
        assert (ris["waiting"], ris["parked"]) == (1, 2)
        assert ris["oldest_age"] >= 0 and ris["lease_holder"] is None
        assert ris["last_error"] == "AE: the receiver rejected it"
        assert queue(api.services.store).acquire("broker-2:4242:secret", 60_000)
        (ris,) = client.get("/api/outbound").json()
        assert ris["lease_holder"] == "broker-2:4242" and ris["lease_seconds"] > 0


def test_lists_page_and_an_event_shows_its_text_only_on_its_own_route(
    api: Api, audit: Recorded
) -> None:
    client, _ = api.login("viewer")
    with closing(client):
        parked = client.get(BASE + "/events").json()
        assert [(e["id"], e["status"], e["state"]) for e in parked["items"]] == [
            ("1", "STARTED", "parked"),
            ("2", "COMPLETED", "parked"),
        ]
        assert parked["total"] == 2 and parked["next"] is None
        assert parked["items"][1]["reason"].startswith("held: an earlier event")
        first = client.get(BASE + "/events", params={"limit": 1}).json()
        assert [e["id"] for e in first["items"]] == ["1"] and first["next"] == 1
        second = client.get(BASE + "/events", params={"limit": 1, "offset": 1}).json()
        assert [e["id"] for e in second["items"]] == ["2"] and second["next"] is None
        waiting = client.get(BASE + "/events", params={"state": "queued"}).json()
        assert [e["id"] for e in waiting["items"]] == ["3"]
        one = client.get(BASE + "/events/1").json()
        assert one["error"] == "unknown order" and one["built"] is True
        assert "MSH" not in str(one) and not outbound_records(audit)
        text = client.get(BASE + "/events/1/message").json()
        assert text == {"id": "1", "text": "MSH|^~\\&|MWL_BROKER\rORC|SC|PL-0"}
    (read,) = outbound_records(audit)
    assert (read.type, read.user, read.target) == (AuditType.OUTBOUND_READ, "viewer", "1")


@pytest.mark.parametrize(
    ("path", "params", "status", "named"),
    [
        ("/api/outbound/nowhere/events", {}, 404, "no destination"),
        (BASE + "/events/99", {}, 404, "no event 99"),
        (BASE + "/events/ACC-1", {}, 404, "event ids are numbers"),
        (BASE + "/events/99/message", {}, 404, "no event 99"),
        (BASE + "/events", {"limit": 501}, 422, "limit"),
        (BASE + "/events", {"limit": 0}, 422, "limit"),
        (BASE + "/events", {"state": "gone"}, 422, "state"),
        (BASE + "/events", {"offset": -1}, 422, "offset"),
    ],
)
def test_bad_reads_are_problems(
    api: Api, path: str, params: dict[str, int | str], status: int, named: str
) -> None:
    client, _ = api.login("viewer")
    with closing(client):
        answer = client.get(path, params=params)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert named in answer.text


def test_discard_leaves_its_orders_later_events_parked_until_they_go_too(
    api: Api, editor: tuple[httpx.Client, dict[str, str]], audit: Recorded
) -> None:
    client, csrf = editor
    store = api.services.store
    done = client.post(BASE + "/events/1/discard", headers=csrf, json=DISCARD)
    assert done.json() == {"id": "1", "still_parked": ["2"]}
    (record,) = [e for e in audit.events if e.type == AuditType.OUTBOUND_DISCARD]
    assert (record.user, record.target, record.reason) == ("editor", "1", DISCARD["reason"])
    assert dict(record.details) == {"destination": "ris", "still_parked": 1}
    entry_id = store.keys.entry_id("O-0", 1)
    set_status(store, entry_id, "DISCONTINUED")  # the order is still held: parked behind 2
    assert queue(store).parked() == ["2", "4"]
    for event_id, left in (("2", ["4"]), ("4", [])):
        answer = client.post(f"{BASE}/events/{event_id}/discard", headers=csrf, json=DISCARD)
        assert answer.json()["still_parked"] == left
    set_status(store, entry_id, "COMPLETED")  # no longer held: queued
    assert queue(store).queued() == ["3", "5"] and queue(store).parked() == []


def test_bad_changes_are_problems(api: Api, editor: tuple[httpx.Client, dict[str, str]]) -> None:
    client, csrf = editor
    for path, body, status, named in (
        (BASE + "/events/3/discard", DISCARD, 409, "not parked"),
        (BASE + "/events/3/retry", None, 409, "not parked"),
        (BASE + "/events/99/discard", DISCARD, 404, "no event 99"),
        (BASE + "/events/1/discard", {"reason": "   "}, 400, "reason"),
        (BASE + "/events/1/discard", {"reason": ""}, 422, "reason"),
        (BASE + "/events/1/discard", None, 422, "body"),
        ("/api/outbound/nowhere/parked/retry", None, 404, "no destination"),
    ):
        answer = client.post(path, headers=csrf, json=body)
        assert answer.status_code == status, (path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert named in answer.text
    assert queue(api.services.store).parked() == ["1", "2"]


def test_retry_of_one_and_of_every_parked_event(
    api: Api, editor: tuple[httpx.Client, dict[str, str]], audit: Recorded
) -> None:
    client, csrf = editor
    q = queue(api.services.store)
    assert client.post(BASE + "/events/2/retry", headers=csrf).json() == {"events": ["1", "2"]}
    assert q.queued() == ["1", "2", "3"] and q.parked() == []
    assert q.acquire("t", 60_000)
    for event_id in ("3", "1"):  # parked again, by hand, as a sender would (2 behind 1)
        q.park("t", event_id, "AE: the receiver rejected it", "")
    assert q.queued() == [] and q.parked() == ["1", "2", "3"]
    assert client.post(BASE + "/parked/retry", headers=csrf).json() == {"count": 3}
    assert q.queued() == ["1", "2", "3"] and q.parked() == []
    retries = [e for e in audit.events if e.type == AuditType.OUTBOUND_RETRY]
    assert [(e.user, e.target) for e in retries] == [("editor", "2"), ("editor", "all")]

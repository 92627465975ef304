"""``/api/scanners`` over real HTTP with a real redis-server: the route matrix, the
profiles with the broker's defaults filled in, and ``explain`` naming why a scanner does
not see an entry (the same checks and words as ``mwl-broker explain``)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest
import redis

from broker.services.application import Services
from broker.services.auth import Role
from tests.integration.admin_helpers import CALLERS, Api, Recorded, check_route
from tests.integration.worklist_api_helpers import console, entry_ids, orm, send, site_services

SCANNERS = "/api/scanners"
EXPLAIN = "/api/scanners/explain"
ASK = {"ae_title": "CT1", "accession": "ACC-1", "date": "none"}


@pytest.fixture
def services(redis_client: redis.Redis, tmp_path: Path, audit: Recorded) -> Services:
    return site_services(redis_client, tmp_path, audit)


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize(
    ("method", "path", "request_"),
    [("GET", SCANNERS, {}), ("GET", f"{SCANNERS}/CT1", {}), ("POST", EXPLAIN, {"json": ASK})],
)
def test_route_matrix(
    api: Api, who: str, method: str, path: str, request_: dict[str, object]
) -> None:
    check_route(api, who, method, path, 401 if who == "none" else 200, **request_)


def test_the_profiles_with_the_defaults_filled_in(api: Api) -> None:
    api.services.auth.create_token(Role.VIEWER, label="ct1", by="test", scanner="CT1")
    answer = check_route(api, "viewer", "GET", SCANNERS, 200)
    found = {p["ae_title"]: p for p in answer.json()}
    assert sorted(found) == ["ALL", "CT1"]  # unknown callers may not connect: no "*"
    ct1 = found["CT1"]
    assert ct1["addresses"] == ["127.0.0.1/32"] and ct1["stations"] == ["CT1"]
    assert ct1["hidden_statuses"] == ["CANCELED", "COMPLETED", "DISCONTINUED"]
    assert (ct1["max_answers"], ct1["character_set"]) == (5000, "ISO_IR 192")
    assert (ct1["dicomweb_tokens"], found["ALL"]["dicomweb_tokens"]) == (1, 0)
    assert found["ALL"]["stations"] is None and ct1["date_window"] is None
    one = check_route(api, "viewer", "GET", f"{SCANNERS}/CT1", 200).json()
    assert one == ct1
    check_route(api, "viewer", "GET", f"{SCANNERS}/NOPE", 404)


def test_explain_names_why_an_entry_is_not_seen(api: Api) -> None:
    send(api.services, orm(1))  # no station: the RIS sent none
    with closing(console(api)) as client:
        (entry_id,) = entry_ids(client).values()
        by_accession = client.post(EXPLAIN, json=ASK)
        by_id = client.post(
            EXPLAIN, json={"ae_title": "ALL", "entry_id": entry_id, "date": "none", "station": "*"}
        )
        refused = client.post(EXPLAIN, json={**ASK, "address": "10.9.9.9"})
        gone = client.post(EXPLAIN, json={"ae_title": "CT1", "entry_id": "0" * 30}).json()
    assert by_accession.status_code == 200, by_accession.text
    body = by_accession.json()
    assert body["accepted"] is True and body["profile"] == "CT1" and body["seen"] == 0
    (entry,) = body["entries"]
    assert entry["accession"] == "ACC-1" and entry["seen"] is False and entry["reasons"]
    assert body["query"]["ScheduledStationAETitle"] == "CT1"
    assert "NOT SEEN: " + entry["reasons"][0] in body["text"]
    assert by_id.json()["seen"] == 1 and by_id.json()["entries"][0]["reasons"] == []
    assert "SEEN by ALL" in by_id.json()["text"]
    assert gone["entries"] == [] and "No worklist entry has this id" in gone["text"]
    denied = refused.json()
    assert denied["accepted"] is False and "10.9.9.9 would be rejected" in denied["refusal"]
    assert all(
        r == ["the calling AE title (or its address) may not connect"]
        for r in [e["reasons"] for e in denied["entries"]]
    )


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"ae_title": "CT1"}, "accession, entry_id"),
        ({**ASK, "entry_id": "ab"}, "accession, entry_id"),
        ({**ASK, "address": "ct1.example"}, "address"),
        ({**ASK, "date": "yesterday"}, "date"),
        ({**ASK, "ae_title": "C\\T"}, "ae_title"),
        ({**ASK, "ae_title": "  "}, "ae_title"),
        ({"ae_title": "CT1", "entry_id": "../x"}, "entry_id"),
        ({**ASK, "modality": "ct"}, "modality"),
    ],
)
def test_a_bad_explain_request_names_the_field(api: Api, body: dict[str, str], named: str) -> None:
    answer = check_route(api, "viewer", "POST", EXPLAIN, 400, json=body)
    assert answer.json()["detail"].startswith(named)

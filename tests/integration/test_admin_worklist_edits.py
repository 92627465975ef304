"""Hand changes of a worklist entry over real HTTP with a real redis-server: an edit is
seen by a scanner's C-FIND (indexes and entry cache kept), a stale revision is a 409, what
may not be edited is a 400 naming it, statuses move as the model allows, a deletion leaves
nothing behind, every change is audited without its value, and the RIS's next update of
the order wins over a hand edit."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from broker.audit.events import AuditType
from broker.dicom.server import DicomServer
from broker.services.application import Services
from tests.integration.admin_helpers import Api, Recorded
from tests.integration.dicom_find_helpers import query
from tests.integration.test_dicomweb_search import _over_dimse
from tests.integration.worklist_api_helpers import (
    ENTRIES,
    console,
    entry_ids,
    orm,
    read,
    send,
    site_services,
)

REASON = "radiographer: the RIS names no station"


@pytest.fixture
def services(redis_client: redis.Redis, tmp_path: Path, audit: Recorded) -> Services:
    return site_services(redis_client, tmp_path, audit)


def _edit(client: httpx.Client, entry_id: str, attribute: str, value: str, expect: str,
          reason: str = REASON) -> httpx.Response:  # fmt: skip
    body = {"attribute": attribute, "value": value, "expect": expect, "reason": reason}
    return client.patch(f"{ENTRIES}/{entry_id}", json=body)


def _problem(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    detail: str = answer.json()["detail"]
    return detail


def _step(body: dict[str, Any], tag: str) -> Any:
    values = body["dataset"]["00400100"]["Value"][0].get(tag, {}).get("Value")
    return values[0] if values else None


def test_an_edit_is_seen_by_a_cfind_and_audited_without_its_value(
    api: Api, dicom: DicomServer, audit: Recorded
) -> None:
    send(api.services, orm(1))
    assert _over_dimse(dicom, "CT1", query(ScheduledStationAETitle="CT1")) == []
    with closing(console(api, "editor")) as client:
        (entry_id,) = entry_ids(client).values()
        before = read(client, entry_id)
        answer = _edit(client, entry_id, "ScheduledStationAETitle", "CT1", before["revision"])
        assert answer.status_code == 200, answer.text
        first = answer.json()["revision"]
        second = _edit(client, entry_id, "(0040,0002)", "20261201", first)
        assert second.status_code == 200, second.text
        after = read(client, entry_id)
        assert after["revision"] == second.json()["revision"] != before["revision"]
        assert _step(after, "00400001") == "CT1" and _step(after, "00400002") == "20261201"
        on_date = {"ScheduledProcedureStepSequence.ScheduledProcedureStepStartDate": "20261201"}
        assert list(entry_ids(client, on_date)) == ["ACC-1"]  # the date index moved
        old_date = {"ScheduledProcedureStepSequence.ScheduledProcedureStepStartDate": "20261126"}
        assert entry_ids(client, old_date) == {}
    assert _over_dimse(dicom, "CT1", query(ScheduledStationAETitle="CT1")) == ["ACC-1"]
    assert _over_dimse(dicom, "CT1", query(ScheduledProcedureStepStartDate="20261201")) == ["ACC-1"]
    edits = [e for e in audit.events if e.type == AuditType.ENTRY_EDIT]
    assert [(e.user, e.target, e.details["attribute"], e.reason) for e in edits] == [
        ("editor", entry_id, "00400001", REASON),
        ("editor", entry_id, "00400002", REASON),
    ]
    assert not any("20261201" in repr(e) or "'CT1'" in repr(e) for e in edits)


def test_a_cfind_after_an_edit_never_answers_the_cached_entry(api: Api, dicom: DicomServer) -> None:
    send(api.services, orm(1))
    assert _over_dimse(dicom, "ALL", query(Modality="CT")) == ["ACC-1"]  # decoded and cached
    with closing(console(api, "editor")) as client:
        (entry_id,) = entry_ids(client).values()
        revision = read(client, entry_id)["revision"]
        assert _edit(client, entry_id, "Modality", "MR", revision).status_code == 200
    assert _over_dimse(dicom, "ALL", query(Modality="MR")) == ["ACC-1"]
    assert _over_dimse(dicom, "ALL", query(Modality="CT")) == []


def test_a_stale_revision_is_a_conflict(api: Api) -> None:
    send(api.services, orm(1))
    with closing(console(api, "editor")) as client:
        (entry_id,) = entry_ids(client).values()
        stale = read(client, entry_id)["revision"]
        assert _edit(client, entry_id, "Modality", "MR", stale).status_code == 200
        detail = _problem(_edit(client, entry_id, "Modality", "CT", stale), 409)
        assert "changed since it was read" in detail
        body = {"expect": stale, "reason": REASON}
        _problem(client.post(f"{ENTRIES}/{entry_id}/cancel", json=body), 409)
        _problem(client.request("DELETE", f"{ENTRIES}/{entry_id}", json=body), 409)
        assert read(client, entry_id)["status"] == "SCHEDULED"


@pytest.mark.parametrize(
    ("attribute", "value", "named"),
    [
        ("PatientName", "Roe^Rita", "00100010 (PatientName) is not editable"),
        ("00100020", "P-2", "00100020 (PatientID) is not editable"),
        ("AccessionNumber", "ACC-9", "00080050 (AccessionNumber) is not editable"),
        ("ScheduledProcedureStepStatus", "ARRIVED", "00400020 (ScheduledProcedureStepStatus)"),
        ("NoSuchKeyword", "x", "'NoSuchKeyword': not a DICOM keyword or tag"),
        ("ScheduledProcedureStepStartDate", "20261345", "a date YYYYMMDD"),
        ("ScheduledProcedureStepStartTime", "2561", "a time"),
        ("ScheduledStationAETitle", "A" * 17, "at most 16 characters"),
        ("Modality", "ct", "upper-case"),
        ("ScheduledStationAETitle", "CTé", "ASCII characters only"),
    ],
)
def test_what_may_not_be_edited_is_a_bad_request_naming_it(
    api: Api, attribute: str, value: str, named: str
) -> None:
    send(api.services, orm(1))
    with closing(console(api, "editor")) as client:
        (entry_id,) = entry_ids(client).values()
        revision = read(client, entry_id)["revision"]
        detail = _problem(_edit(client, entry_id, attribute, value, revision), 400)
        assert named in detail and (value not in detail or value == "x")
        assert read(client, entry_id)["revision"] == revision


def test_a_reason_is_required(api: Api) -> None:
    send(api.services, orm(1))
    with closing(console(api, "editor")) as client:
        (entry_id,) = entry_ids(client).values()
        revision = read(client, entry_id)["revision"]
        assert "reason" in _problem(_edit(client, entry_id, "Modality", "MR", revision, " "), 400)
        body = {"attribute": "Modality", "value": "MR", "expect": revision}
        assert "reason" in _problem(client.patch(f"{ENTRIES}/{entry_id}", json=body), 422)


def test_statuses_move_as_the_model_allows(api: Api, audit: Recorded) -> None:
    send(api.services, orm(1))
    ended = api.services.store.keys.entries_ended()
    client = console(api, "editor")
    with closing(client):
        (entry_id,) = entry_ids(client).values()
        status = f"{ENTRIES}/{entry_id}/status"
        revision = read(client, entry_id)["revision"]
        bogus = client.post(status, json={"status": "BOGUS", "expect": revision, "reason": "r"})
        assert "status: one of" in _problem(bogus, 400)
        same = client.post(status, json={"status": "SCHEDULED", "expect": revision, "reason": "r"})
        assert "already" in _problem(same, 409)
        arrived = client.post(status, json={"status": "arrived", "expect": revision, "reason": "r"})
        assert arrived.status_code == 200, arrived.text
        body = {"expect": arrived.json()["revision"], "reason": "patient left"}
        cancelled = client.post(f"{ENTRIES}/{entry_id}/cancel", json=body)
        assert cancelled.status_code == 200, cancelled.text
        assert read(client, entry_id)["status"] == "CANCELED"
        assert api.services.client.zscore(ended, entry_id) is not None
        again = {"status": "ARRIVED", "expect": cancelled.json()["revision"], "reason": "r"}
        assert "ended step" in _problem(client.post(status, json=again), 409)
    changes = [e.details for e in audit.events if e.type == AuditType.ENTRY_STATUS]
    assert [(d["action"], d["status"], d["was"]) for d in changes] == [
        ("status", "ARRIVED", "SCHEDULED"),
        ("cancel", "CANCELED", "ARRIVED"),
    ]


def test_a_deleted_entry_leaves_nothing_behind(api: Api, audit: Recorded) -> None:
    send(api.services, orm(1))
    keys, client_redis = api.services.store.keys, api.services.client
    before = _worklist_state(api)
    send(api.services, orm(2))
    with closing(console(api, "editor")) as client:
        entry_id = entry_ids(client)["ACC-2"]
        body = {"expect": read(client, entry_id)["revision"], "reason": "entered twice"}
        answer = client.request("DELETE", f"{ENTRIES}/{entry_id}", json=body)
        assert answer.status_code == 200 and answer.json() == {"entry_id": entry_id, "revision": ""}
        _problem(client.get(f"{ENTRIES}/{entry_id}"), 404)
        assert list(entry_ids(client)) == ["ACC-1"]
    assert _worklist_state(api) == before  # every index, set and hash as before ACC-2
    assert not client_redis.sismember(keys.all_entries(), entry_id)
    assert [e.target for e in audit.events if e.type == AuditType.ENTRY_DELETE] == [entry_id]


def _worklist_state(api: Api) -> dict[bytes, object]:
    """Every worklist key (entries, indexes, orders, ended steps) and its members."""
    client, keys = api.services.client, api.services.store.keys
    state: dict[bytes, object] = {}
    for part in ("entry:", "idx:", "order", "ended"):
        for key in client.scan_iter(match=f"{keys.prefix}:{part}*"):
            kind = client.type(key)
            if kind == b"set":
                state[key] = client.smembers(key)
            elif kind == b"zset":
                state[key] = client.zrange(key, 0, -1, withscores=True)
            else:
                state[key] = client.hgetall(key)
    return state


def test_an_unknown_entry_is_not_found(api: Api) -> None:
    with closing(console(api, "editor")) as client:
        for entry_id in ("0" * 30, "not-an-entry-id"):
            assert "no worklist entry" in _problem(client.get(f"{ENTRIES}/{entry_id}"), 404)


def test_the_ris_update_after_a_hand_edit_wins(
    api: Api, dicom: DicomServer, audit: Recorded
) -> None:
    send(api.services, orm(1))
    with closing(console(api, "editor")) as client:
        (entry_id,) = entry_ids(client).values()
        revision = read(client, entry_id)["revision"]
        edited = _edit(client, entry_id, "ScheduledProcedureStepDescription", "By hand", revision)
        station = _edit(
            client, entry_id, "ScheduledStationAETitle", "CT1", edited.json()["revision"]
        )
        arrived = {"status": "ARRIVED", "expect": station.json()["revision"], "reason": "here"}
        assert client.post(f"{ENTRIES}/{entry_id}/status", json=arrived).status_code == 200
        send(api.services, orm(1, control="XO", sent="20261125100000", description="From RIS"))
        after = read(client, entry_id)
    assert _step(after, "00400007") == "From RIS"  # the RIS's values replace the hand edit
    assert _step(after, "00400001") is None
    assert after["status"] == "ARRIVED"  # a hand status is kept as a modality's progress is
    assert _over_dimse(dicom, "CT1", query(ScheduledStationAETitle="CT1")) == []
    assert len([e for e in audit.events if e.type == AuditType.ENTRY_EDIT]) == 2

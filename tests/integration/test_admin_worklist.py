"""``/api/worklist`` over real HTTP with a real redis-server: the route matrix, the
console's search (the same answers as a C-FIND for the same keys), the entry as DICOM JSON
and as text, the CSV export and the purge's dry run. Hand changes: test_admin_worklist_edits."""

from __future__ import annotations

import csv
import io
from contextlib import closing
from pathlib import Path

import pytest
import redis
from pydicom.dataset import Dataset

from broker.dicom.server import DicomServer
from broker.services import console_search
from broker.services.application import Services
from tests.integration.admin_helpers import CALLERS, Api, Recorded, check_route
from tests.integration.dicom_find_helpers import query
from tests.integration.test_dicomweb_search import _over_dimse
from tests.integration.worklist_api_helpers import (
    ENTRIES,
    SEARCH,
    console,
    entry_ids,
    orm,
    read,
    send,
    site_services,
)

EXPORT = "/api/worklist/export"
PURGE = "/api/worklist/purge"
NO_ENTRY = "0" * 30
CHANGE = {"expect": "x", "reason": "test"}
EDIT = {**CHANGE, "attribute": "Modality", "value": "MR"}
# method, path, request, the least role that may
ROUTES = [
    ("POST", SEARCH, {"json": {}}, "viewer"),
    ("POST", EXPORT, {"json": {}}, "viewer"),
    ("GET", f"{ENTRIES}/{NO_ENTRY}", {}, "viewer"),
    ("GET", f"{ENTRIES}/{NO_ENTRY}/dump", {}, "viewer"),
    ("PATCH", f"{ENTRIES}/{NO_ENTRY}", {"json": EDIT}, "editor"),
    ("POST", f"{ENTRIES}/{NO_ENTRY}/status", {"json": {**CHANGE, "status": "ARRIVED"}}, "editor"),
    ("POST", f"{ENTRIES}/{NO_ENTRY}/cancel", {"json": CHANGE}, "editor"),
    ("DELETE", f"{ENTRIES}/{NO_ENTRY}", {"json": CHANGE}, "editor"),
    ("POST", PURGE, {"json": {"dry_run": True}}, "editor"),
]  # fmt: skip
_RANK = {"viewer": 1, "token": 1, "editor": 2, "admin": 3}


@pytest.fixture
def services(redis_client: redis.Redis, tmp_path: Path, audit: Recorded) -> Services:
    return site_services(redis_client, tmp_path, audit)


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize(("method", "path", "request_", "least"), ROUTES)
def test_route_matrix(
    api: Api, who: str, method: str, path: str, request_: dict[str, object], least: str
) -> None:
    if who == "none":
        expected = 401
    elif _RANK[who] < _RANK[least]:
        expected = 403
    else:
        expected = 404 if NO_ENTRY in path else 200
    check_route(api, who, method, path, expected, **request_)


def test_a_change_by_cookie_needs_the_csrf_token(api: Api) -> None:
    client, _ = api.login("editor")
    with closing(client):
        answer = client.post(PURGE, json={"dry_run": True})
        assert answer.status_code == 403 and "X-CSRF-Token" in answer.json()["detail"]


def test_search_answers_summaries_as_a_cfind_would(api: Api, dicom: DicomServer) -> None:
    for n, name in ((1, "Doe^Jane"), (2, "Doe^John"), (3, "Roe^Rita")):
        send(api.services, orm(n, name=name))
    with closing(console(api)) as client:
        for criteria, sps in (
            ({"PatientName": "Doe*"}, {}),
            ({"ScheduledProcedureStepSequence.Modality": "CT"}, {"Modality": "CT"}),
            ({"00400100.00400002": "20261126"}, {"ScheduledProcedureStepStartDate": "20261126"}),
            ({"AccessionNumber": "ACC-3"}, {}),
        ):
            found = sorted(entry_ids(client, criteria))
            identifier = query(**sps)
            for keyword, value in criteria.items():
                if "." not in keyword and not keyword[:1].isdigit():
                    setattr(identifier, keyword, value)
            assert found == _over_dimse(dicom, "ALL", identifier), criteria
        page = client.post(SEARCH, json={"criteria": {}, "limit": 2}).json()
        assert page["more"] is True and len(page["entries"]) == 2
        rest = client.post(SEARCH, json={"offset": 2, "limit": 2}).json()
        assert rest["more"] is False and len(rest["entries"]) == 1
        (row,) = client.post(SEARCH, json={"criteria": {"AccessionNumber": "ACC-1"}}).json()[
            "entries"
        ]
    assert row["patient_name"] == "Doe^Jane" and row["patient_id"] == "PAT-1"
    assert (row["birth_date"], row["sex"], row["modality"]) == ("19650412", "M", "CT")
    assert (row["scheduled_date"], row["scheduled_time"]) == ("20261126", "093000")
    assert row["status"] == "SCHEDULED" and row["procedure_description"] == "Head protocol"


def test_the_console_sees_every_status(api: Api, dicom: DicomServer) -> None:
    send(api.services, orm(1))
    send(api.services, orm(2))
    send(api.services, orm(2, control="CA", status="CA", sent="20261125090000"))
    with closing(console(api)) as client:
        rows = client.post(SEARCH, json={}).json()["entries"]
    assert sorted((r["accession"], r["status"]) for r in rows) == [
        ("ACC-1", "SCHEDULED"),
        ("ACC-2", "CANCELED"),
    ]
    assert _over_dimse(dicom, "ALL", query()) == ["ACC-1"]  # a scanner's profile hides it


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"criteria": {"NoSuchKeyword": "x"}}, "criteria.NoSuchKeyword"),
        ({"criteria": {"limit": "5"}}, "criteria.limit"),
        ({"criteria": {"PatientBirthDate": "1965-04"}}, "criteria.PatientBirthDate"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
def test_a_bad_search_is_a_problem_naming_the_field(
    api: Api, body: dict[str, object], named: str
) -> None:
    answer = check_route(
        api, "viewer", "POST", SEARCH, 400 if "criteria" in body else 422, json=body
    )
    assert named in answer.json()["detail"]


def test_an_entry_as_dicom_json_and_as_text(api: Api) -> None:
    send(api.services, orm(1, name="Müller^Jürgen"))
    with closing(console(api)) as client:
        (entry_id,) = entry_ids(client).values()
        body = read(client, entry_id)
        dump = client.get(f"{ENTRIES}/{entry_id}/dump")
    assert body["entry_id"] == entry_id and body["status"] == "SCHEDULED"
    assert len(body["revision"]) == 40
    ds = Dataset.from_json(body["dataset"])
    assert ds.AccessionNumber == "ACC-1" and str(ds.PatientName) == "Müller^Jürgen"
    assert ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "SCHEDULED"
    assert dump.status_code == 200 and dump.headers["content-type"].startswith("text/plain")
    assert dump.headers["etag"] == f'"{body["revision"]}"'
    lines = dump.text.splitlines()
    assert "(0008,0050) AccessionNumber SH: ACC-1" in lines
    assert "(0010,0010) PatientName PN: Müller^Jürgen" in lines
    assert any(
        line.startswith("(0040,0100) ScheduledProcedureStepSequence SQ: 1 item") for line in lines
    )
    assert "    (0040,0020) ScheduledProcedureStepStatus CS: SCHEDULED" in lines


def test_summaries_the_entry_and_the_export_name_the_mapping_version(api: Api) -> None:
    send(api.services, orm(1))
    with closing(console(api)) as client:
        (row,) = client.post(SEARCH, json={}).json()["entries"]
        body = read(client, row["entry_id"])
        both = client.get(f"{ENTRIES}/{row['entry_id']}", params={"include": "dump"}).json()
        dump = client.get(f"{ENTRIES}/{row['entry_id']}/dump").text
        exported = list(csv.reader(io.StringIO(client.post(EXPORT, json={}).text)))
        refused = client.get(f"{ENTRIES}/{row['entry_id']}", params={"include": "raw"})
        schema = client.get("/api/openapi.json").json()["components"]["schemas"]
    assert row["mapping_version"] == 1 and body["mapping_version"] == 1
    assert body["dump"] is None and both["dump"] == dump and both["dataset"] == body["dataset"]
    assert (both["mapping_version"], both["revision"]) == (1, body["revision"])
    assert exported[0][-1] == "mapping_version" and exported[1][-1] == "1"
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    for model in ("EntrySummary", "EntryDocument"):
        assert "mapping version" in schema[model]["properties"]["mapping_version"]["description"]


def test_export_is_csv_with_formulas_neutralised_and_a_note_when_cut(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    send(api.services, orm(1, name="@SUM(A1)^Eve"))
    send(api.services, orm(2, description="+cmd calc"))
    send(api.services, orm(3))
    with closing(console(api)) as client:
        answer = client.post(EXPORT, json={"criteria": {}})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(answer.text)))
        monkeypatch.setattr(console_search, "EXPORT_ROWS", 2)
        cut = list(csv.reader(io.StringIO(client.post(EXPORT, json={}).text)))
    assert rows[0][:2] == ["entry_id", "accession"] and len(rows) == 4
    cells = [cell for row in rows[1:] for cell in row]
    assert "'@SUM(A1)^Eve" in cells and "'+cmd calc" in cells
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert len(cut) == 4 and cut[-1][0].startswith("# cut: more than 2 entries matched")


def test_purge_answers_only_a_dry_run(api: Api, audit: Recorded) -> None:
    send(api.services, orm(1))
    answer = check_route(api, "editor", "POST", PURGE, 200, json={})
    body = answer.json()
    assert body["dry_run"] is True and body["entries"] == 0 and body["items"] == []
    refused = check_route(api, "editor", "POST", PURGE, 400, json={"dry_run": False})
    assert "only a dry run" in refused.json()["detail"]
    assert [e.details["dry_run"] for e in audit.events if e.type == "purge"] == [True]

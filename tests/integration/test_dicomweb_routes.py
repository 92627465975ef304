"""The DICOMweb routes over real HTTP (uvicorn on port 0, a real redis-server): the worklist
Search Transaction (PS3.18 §14.4) and the MPPS service (chapter 15), as scanner tokens see
them, and MPPS instances shared with the broker's own DICOM server (C-FIND, N-SET)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid

from broker.common import jsontext
from broker.dicom.server import DicomServer
from broker.services.application import Services
from broker.services.auth import Role
from broker.settings import load_settings
from tests.broker_runner import MAPPINGS
from tests.integration.admin_helpers import Api, services_for
from tests.integration.test_mpps import (
    AE_TITLE,
    CALLING,
    create,
    entry,
    find_status,
    modality,
    n_create_list,
    n_set,
    n_set_final,
    put,
)
from tests.integration.test_services import ENVIRON

SCANNERS = f"""
[scanners.{CALLING}]
addresses = ["127.0.0.1"]
scope = "all"
date_window = "any"

[scanners.MR1]
addresses = ["127.0.0.1"]
scope = "own"
date_window = "any"
"""
SEARCH = "/modality-scheduled-procedure-steps"
MPPS = "/modality-performed-procedure-steps"
JSON = {"Content-Type": "application/dicom+json"}
ACCESSION = "00080050"


@pytest.fixture
def services(redis_client: redis.Redis, tmp_path: Path) -> Services:
    config = tmp_path / "broker.toml"
    config.write_text(SCANNERS, encoding="utf-8")
    settings = load_settings(
        config_file=config,
        environ=ENVIRON,
        overrides={
            "admin_host": "127.0.0.1",
            "admin_port": 0,
            "mappings_dir": MAPPINGS,
            "dicom_host": "127.0.0.1",
            "dicom_port": 0,
            "ae_title": AE_TITLE,
        },
    )
    services = services_for(settings, redis_client)
    services.live_mappings.load()
    return services


def scanner(api: Api, aet: str | None) -> httpx.Client:
    """A client with a bearer token bound to ``aet`` (None: a token without a scanner)."""
    text, _ = api.services.auth.create_token(Role.VIEWER, label="dicomweb", by="test", scanner=aet)
    return api.client(headers={"Authorization": f"Bearer {text}"})


def accessions(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/dicom+json"
    return sorted(a[ACCESSION]["Value"][0] for a in answer.json())


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["status"] == status and body["detail"]
    return body


def on_station(acc: str, station: str) -> Dataset:
    ds = entry(acc)
    ds.ScheduledProcedureStepSequence[0].ScheduledStationAETitle = station
    return ds


def test_a_scanner_token_searches_within_its_profiles_scope(api: Api) -> None:
    put(api.services.store, on_station("ACC-CT", "CT1"), on_station("ACC-MR", "MR1"))
    with closing(scanner(api, CALLING)) as ct, closing(scanner(api, "MR1")) as mr:
        assert accessions(ct.get(SEARCH)) == ["ACC-CT", "ACC-MR"]
        assert accessions(mr.get(SEARCH)) == ["ACC-MR"]
        asked = mr.get(SEARCH, params={f"{ACCESSION}": "ACC-CT"})
        assert accessions(asked) == []  # another station's entry: not in its scope
        page = ct.get(SEARCH, params={"limit": "1"})
        assert len(accessions(page)) == 1
        assert page.headers["warning"].startswith("299 ")
        assert "additional results" in page.headers["warning"]
        assert "warning" not in ct.get(SEARCH, params={"limit": "2"}).headers
        xml = ct.get(SEARCH, headers={"Accept": "application/dicom+xml"})
        assert xml.status_code == 200
        assert xml.headers["content-type"].startswith("multipart/related")
        assert xml.content.count(b"<NativeDicomModel") == 2


def test_who_may_search_and_use_mpps(api: Api) -> None:
    with api.client() as nobody:
        assert problem(nobody.get(SEARCH), 401)
        assert nobody.get(f"{MPPS}/1.2.3").status_code == 401
    session, csrf = api.login("admin")
    with closing(session):
        assert "scanner" in problem(session.get(SEARCH), 403)["detail"]
        posted = session.post(MPPS, content=b"{}", headers={**JSON, "X-CSRF-Token": csrf})
        problem(posted, 403)
    with closing(scanner(api, None)) as unbound:
        problem(unbound.get(SEARCH), 403)
        problem(unbound.get(f"{MPPS}/1.2.3"), 403)


def test_bad_searches_are_named_problems(api: Api) -> None:
    with closing(scanner(api, CALLING)) as ct:
        assert (
            "NoSuchKeyword" in problem(ct.get(SEARCH, params={"NoSuchKeyword": "x"}), 400)["detail"]
        )
        assert "limit" in problem(ct.get(SEARCH, params={"limit": "0"}), 400)["detail"]
        problem(ct.get(SEARCH, headers={"Accept": "text/html"}), 406)


def test_created_over_http_is_started_for_c_find_and_completed_by_n_set(
    api: Api, dicom: DicomServer
) -> None:
    scheduled = entry("ACC-1")
    put(api.services.store, scheduled)
    uid = generate_uid()
    body = jsontext.dumps(n_create_list(scheduled).to_json_dict()).encode()
    with closing(scanner(api, CALLING)) as ct:
        created = ct.post(f"{MPPS}/{uid}", content=body, headers=JSON)
        assert created.status_code == 201, created.text
        assert created.headers["location"] == f"{api.url}{MPPS}/{uid}"
        with modality(dicom) as assoc:
            assert find_status(assoc, "ACC-1") == ["STARTED"]
            assert n_set(assoc, uid, n_set_final()).Status == 0x0000
        (got,) = ct.get(f"{MPPS}/{uid}", params={"includefield": "00400252"}).json()
        assert got == {"00400252": {"vr": "CS", "Value": ["COMPLETED"]}}
        final = jsontext.dumps(n_set_final().to_json_dict()).encode()
        again = ct.post(f"{MPPS}/{uid}", params={"update": ""}, content=final, headers=JSON)
        problem(again, 409)
        assert (
            again.headers["warning"].startswith("299 ")
            and "0110 (A710)" in again.headers["warning"]
        )
        problem(ct.post(f"{MPPS}/{uid}", content=body, headers=JSON), 409)  # the UID is in use


def test_created_over_dimse_is_updated_over_http(api: Api, dicom: DicomServer) -> None:
    scheduled = entry("ACC-2")
    put(api.services.store, scheduled)
    uid = generate_uid()
    changes = Dataset()
    changes.PerformedProcedureStepDescription = "CT head"
    changes.PatientID = "OTHER"  # not settable: ignored, and the answer says so
    with modality(dicom) as assoc, closing(scanner(api, CALLING)) as ct:
        assert create(assoc, uid, n_create_list(scheduled)).Status == 0x0000
        update = jsontext.dumps(changes.to_json_dict()).encode()
        done = ct.post(f"{MPPS}/{uid}?update", content=update, headers=JSON)
        assert done.status_code == 200, done.text
        assert done.headers["warning"].endswith("ignored: PatientID")
        final = jsontext.dumps(n_set_final("DISCONTINUED").to_json_dict()).encode()
        assert ct.post(f"{MPPS}/{uid}?update", content=final, headers=JSON).status_code == 200
        assert find_status(assoc, "ACC-2", "DISCONTINUED") == ["DISCONTINUED"]
        (got,) = ct.get(f"{MPPS}/{uid}").json()
    assert got["00080018"]["Value"] == [uid]
    assert got["00400254"]["Value"] == ["CT head"]
    assert got["00100020"]["Value"] == [scheduled.PatientID]


def test_mpps_refusals_over_http(api: Api) -> None:
    scheduled = entry("ACC-3")  # on station CT1
    put(api.services.store, scheduled)
    body = jsontext.dumps(n_create_list(scheduled).to_json_dict()).encode()
    with closing(scanner(api, CALLING)) as ct, closing(scanner(api, "MR1")) as mr:
        assigned = ct.post(MPPS, content=body, headers=JSON)
        assert assigned.status_code == 201, assigned.text
        uid = assigned.headers["location"].rsplit("/", 1)[1]
        assert UID(uid).is_valid
        problem(ct.post(MPPS, content=body, headers={"Content-Type": "application/json"}), 415)
        bad = ct.post(f"{MPPS}/{generate_uid()}", content=b"not json", headers=JSON)
        assert problem(bad, 400) and bad.headers["warning"].startswith("299 ")
        assert "0106" in bad.headers["warning"]
        problem(ct.get(f"{MPPS}/{generate_uid()}"), 404)
        problem(ct.get(f"{MPPS}/{uid}", params={"includefield": "NoSuchKeyword"}), 400)
        problem(ct.get(f"{MPPS}/{uid}", params={"other": "1"}), 400)
        problem(mr.get(f"{MPPS}/{uid}"), 403)  # another AE title's instance
        problem(mr.post(f"{MPPS}/{generate_uid()}", content=body, headers=JSON), 403)

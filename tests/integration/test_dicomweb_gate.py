"""DICOMweb searches take turns in the broad-query gate C-FINDs use (one per broker): over
its bound a broad search is a 503 problem with Retry-After, while narrow searches and
polls go on. Real concurrent HTTP searches, a real C-FIND, a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import redis
from pydicom.dataset import Dataset

from broker.dicom.server import DicomServer
from broker.dicom.status import Status
from broker.services.application import Services
from tests.integration.admin_helpers import Api, site_services
from tests.integration.test_dicomweb_routes import (
    ACCESSION,
    SCANNERS,
    SEARCH,
    accessions,
    on_station,
    problem,
    scanner,
)
from tests.integration.test_mpps import CALLING, modality, put
from tests.scu import ModalityWorklistInformationFind

BROAD = 6  # entries on the worklist; a search over more than 2 candidates is broad


@pytest.fixture
def services(redis_client: redis.Redis, tmp_path: Path) -> Services:
    services = site_services(
        redis_client,
        tmp_path,
        SCANNERS,
        dicom_broad_query_candidates=2,
        dicom_broad_queries=1,
        dicom_broad_query_wait=0,
    )
    for n in range(BROAD):
        put(services.store, on_station(f"ACC-{n}", "CT1"))
    return services


@pytest.fixture
def clients(api: Api) -> Iterator[list[httpx.Client]]:
    made = [scanner(api, CALLING) for _ in range(8)]
    try:
        yield made
    finally:
        for client in made:
            client.close()


def broad_c_find(assoc: object) -> int:
    """The final status of a C-FIND for every entry (no key narrows it)."""
    query = Dataset()
    query.AccessionNumber = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    final = 0
    for status, _ in assoc.send_c_find(query, ModalityWorklistInformationFind):  # type: ignore[attr-defined]
        final = int(status.Status)
    return final


def test_one_gate_for_c_find_and_dicomweb(api: Api, dicom: DicomServer) -> None:
    gate = api.services.broad_queries
    with closing(scanner(api, CALLING)) as ct, modality(dicom) as assoc:
        with gate.admit(1000, "10.9.9.9"):  # a broad query from another scanner runs
            assert broad_c_find(assoc) == Status.OUT_OF_RESOURCES
            busy = ct.get(SEARCH)
            body = problem(busy, 503)
            assert "busy with other broad queries" in body["detail"]
            assert busy.headers["retry-after"] == "1"
            narrow = ct.get(SEARCH, params={ACCESSION: "ACC-1"})  # a narrow one never waits
            assert accessions(narrow) == ["ACC-1"]
        assert len(accessions(ct.get(SEARCH))) == BROAD  # its turn
        assert broad_c_find(assoc) == Status.SUCCESS


def test_concurrent_broad_searches_take_turns(api: Api, clients: list[httpx.Client]) -> None:
    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(lambda c: c.get(SEARCH), clients))
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 503} and statuses[0] == 200, statuses
    for answer in answers:
        if answer.status_code == 200:
            assert len(accessions(answer)) == BROAD
        else:
            problem(answer, 503)
            assert answer.headers["retry-after"] == "1"
    assert len(accessions(clients[0].get(SEARCH))) == BROAD  # no slot was left held

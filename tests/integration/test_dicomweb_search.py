"""The DICOMweb Search Transaction (PS3.18 §14.4) and C-FIND give the same entries: seeded
generated queries, one as a modality sends it over DIMSE (a real pynetdicom SCU against the
broker's DicomServer), the other as QIDO-RS parameters through ``WorklistService.search_as``,
both over one real Redis and one set of scanner profiles. The QIDO differences
(``broker.dicom.qido``) are tested on their own."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.dicom.find import DEFAULT_HIDDEN_STATUSES, WorklistFindService
from broker.dicom.profiles import ProfileSet
from broker.dicom.qido import parse_query
from broker.dicom.server import DicomServer
from broker.dicom.status import Status
from broker.errors import DicomServiceError
from broker.services.worklist import UnknownScanner, WorklistService
from broker.store.worklist import WorklistStore
from broker.worklist.model import OrderAction, OrderChange
from tests.integration.dicom_find_helpers import AE_TITLE, entry, find, query, start_server
from tests.scu import ModalityWorklistInformationFind

LOCAL = ["127.0.0.1"]
SCANNERS: dict[str, Any] = {
    "CT1": {"addresses": LOCAL, "scope": "own"},  # sees its own station only
    "MR1": {"addresses": LOCAL, "scope": ["MR1", "MR2"], "modality": "MR"},
    "ALL": {"addresses": LOCAL},  # everything, the site's hidden statuses
}
STATIONS = ("CT1", "CT2", "MR1", "MR2", "")
NAMES = ("DOE^JOHN", "Doe^Jane", "MÜLLER^HANS", "SMITH^ANNA", "O'BRIEN^PAT")
STATUSES = ("SCHEDULED", "ARRIVED", "STARTED", "COMPLETED", "CANCELED")
DAYS = ("20260105", "20260106", "20260107", "20260110")
TIMES = ("073000", "100000", "143000", "180000")


def _entries(rng: random.Random) -> list[Dataset]:
    out = []
    for n in range(60):
        station = rng.choice(STATIONS)
        ds = entry(
            f"A{n:03d}", station, rng.choice(DAYS), name=rng.choice(NAMES), time=rng.choice(TIMES)
        )
        step = ds.ScheduledProcedureStepSequence[0]
        step.Modality = station[:2] or rng.choice(("CT", "MR"))
        step.ScheduledProcedureStepStatus = rng.choice(STATUSES)
        out.append(ds)
    return out


def _generated(rng: random.Random) -> tuple[dict[str, str], dict[str, str]]:
    """Top-level and SPS keys of one query: exact, wild card, range, or left out."""
    top: dict[str, str] = {}
    sps: dict[str, str] = {}
    if rng.random() < 0.3:
        top["PatientName"] = rng.choice(("DOE*", "*ANNA", "M?LLER*", "doe^jane", "SMITH^ANNA"))
    if rng.random() < 0.2:
        top["PatientID"] = f"P-A{rng.randrange(60):03d}"
    if rng.random() < 0.1:
        top["AccessionNumber"] = rng.choice((f"A{rng.randrange(60):03d}", "A01*"))
    if rng.random() < 0.4:
        sps["ScheduledStationAETitle"] = rng.choice(("CT1", "CT2", "MR*", "MR1", "*"))
    if rng.random() < 0.4:
        sps["Modality"] = rng.choice(("CT", "MR"))
    if rng.random() < 0.6:
        date = rng.choice((*DAYS, "20260105-20260107", "20260106-", "-20260106"))
        sps["ScheduledProcedureStepStartDate"] = date
        if rng.random() < 0.4:  # a time of the date's form: combined the same way by both
            sps["ScheduledProcedureStepStartTime"] = _time_like(date, rng)
    if rng.random() < 0.2:
        sps["ScheduledProcedureStepStatus"] = rng.choice(STATUSES)
    return top, sps


def _time_like(date: str, rng: random.Random) -> str:
    low, high = rng.choice((("0800", "1500"), ("1000", "1900"), ("0700", "1200")))
    if "-" not in date:
        return f"{low}-{high}"
    start, _, end = date.partition("-")
    return (low if start else "") + "-" + (high if end else "")


def _cfind_identifier(top: dict[str, str], sps: dict[str, str]) -> Dataset:
    identifier = query(**sps)
    for keyword, value in top.items():
        setattr(identifier, keyword, value)
    return identifier


def _qido_params(
    top: dict[str, str], sps: dict[str, str], rng: random.Random | None = None
) -> list[tuple[str, str]]:
    """The keys as QIDO-RS match parameters: by keyword, or (with ``rng``) now and then by tag."""

    def name(keyword: str) -> str:
        if rng is None or rng.random() < 0.5:
            return keyword
        tag = tag_for_keyword(keyword)
        assert tag is not None
        return f"{tag:08X}"

    params = [(name(k), v) for k, v in top.items()]
    sequence = "ScheduledProcedureStepSequence"
    params += [(f"{name(sequence)}.{name(k)}", v) for k, v in sps.items()]
    return params


@pytest.fixture
def profiles() -> ProfileSet:
    return ProfileSet.parse(SCANNERS, allow_unknown=False)


@pytest.fixture
def worklist(store: WorklistStore) -> WorklistStore:
    changes = [
        OrderChange(
            f"O-{e.AccessionNumber}",
            OrderAction.SCHEDULE,
            (e,),
            status=str(e.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus),
        )
        for e in _entries(random.Random(13))
    ]
    store.apply(changes, None)
    return store


@pytest.fixture
def server(worklist: WorklistStore, profiles: ProfileSet) -> Iterator[DicomServer]:
    service = WorklistFindService(worklist, max_answers=1000, profiles=profiles)
    server = start_server(service)
    yield server
    server.stop()


def _service(store: WorklistStore, profiles: ProfileSet) -> WorklistService:
    return WorklistService(
        store, profiles, max_answers=1000, hidden_statuses=DEFAULT_HIDDEN_STATUSES
    )


def _over_dimse(server: DicomServer, calling: str, identifier: Dataset) -> list[str]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityWorklistInformationFind)
    association = ae.associate("127.0.0.1", server.port, ae_title=AE_TITLE)
    assert association.is_established
    try:
        answers, final = find(association, identifier)
    finally:
        association.release()
    assert final.Status == 0x0000
    return sorted(a.AccessionNumber for a in answers)


@pytest.mark.parametrize("scanner", sorted(SCANNERS))
def test_generated_queries_give_the_same_entries_over_dimse_and_dicomweb(
    worklist: WorklistStore, profiles: ProfileSet, server: DicomServer, scanner: str
) -> None:
    rng = random.Random(f"qido-{scanner}")
    service = _service(worklist, profiles)
    asked = 0
    for _ in range(40):
        top, sps = _generated(rng)
        over_dimse = _over_dimse(server, scanner, _cfind_identifier(top, sps))
        page = service.search_as(scanner, parse_query(_qido_params(top, sps, rng)))
        over_web = sorted(str(a.AccessionNumber) for a in page.answers)
        assert over_web == over_dimse, (top, sps)
        assert not page.more
        asked += bool(over_dimse)
    assert asked > 5  # the generator does find entries, not only empty answers


def test_pages_are_in_a_steady_order_and_say_when_more_matched(
    worklist: WorklistStore, profiles: ProfileSet
) -> None:
    service = _service(worklist, profiles)
    whole = service.search_as("ALL", parse_query([]))
    seen: list[str] = []
    offset = 0
    while True:
        params = [("offset", str(offset)), ("limit", "7")]
        page = service.search_as("ALL", parse_query(params))
        seen += [str(a.AccessionNumber) for a in page.answers]
        offset += 7
        if not page.more:
            break
    assert seen == [str(a.AccessionNumber) for a in whole.answers]
    assert len(seen) == len(set(seen)) > 7


def test_fuzzy_matching_folds_names_whatever_the_site_says(
    worklist: WorklistStore, profiles: ProfileSet
) -> None:
    service = WorklistService(
        worklist,
        profiles,
        max_answers=1000,
        hidden_statuses=frozenset(),
        pn_case_insensitive=False,
    )
    exact = service.search_as("ALL", parse_query([("PatientName", "doe^jane")]))
    fuzzy = service.search_as(
        "ALL", parse_query([("PatientName", "doe^jane"), ("fuzzymatching", "true")])
    )
    assert not exact.answers
    assert fuzzy.answers and all(str(a.PatientName) == "Doe^Jane" for a in fuzzy.answers)


def test_return_keys_are_the_required_ones_and_includefield(
    worklist: WorklistStore, profiles: ProfileSet
) -> None:
    service = _service(worklist, profiles)
    page = service.search_as("ALL", parse_query([("limit", "1")]))
    (answer,) = page.answers
    assert "PatientName" in answer and "PatientWeight" not in answer
    step = answer.ScheduledProcedureStepSequence[0]
    assert step.ScheduledProcedureStepID.startswith("SPS-")
    (whole,) = service.search_as(
        "ALL", parse_query([("limit", "1"), ("includefield", "all")])
    ).answers
    assert "StudyInstanceUID" not in whole or whole.StudyInstanceUID
    assert whole.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus


def test_combined_date_time_is_the_documented_difference(
    worklist: WorklistStore, profiles: ProfileSet, server: DicomServer
) -> None:
    """A date range with a single time: QIDO-RS one period, C-FIND each on its own."""
    sps = {
        "ScheduledProcedureStepStartDate": "20260105-20260107",
        "ScheduledProcedureStepStartTime": "1000",
    }
    over_dimse = _over_dimse(server, "ALL", _cfind_identifier({}, sps))
    page = _service(worklist, profiles).search_as("ALL", parse_query(_qido_params({}, sps)))
    over_web = sorted(str(a.AccessionNumber) for a in page.answers)
    assert set(over_dimse) < set(over_web)  # 10:00 exactly is inside the period too
    for answer in page.answers:
        step = answer.ScheduledProcedureStepSequence[0]
        moment = step.ScheduledProcedureStepStartDate + step.ScheduledProcedureStepStartTime
        assert "20260105100000" <= moment <= "20260107100059"


def test_a_scanner_that_may_not_connect_cannot_search(
    worklist: WorklistStore, profiles: ProfileSet
) -> None:
    with pytest.raises(UnknownScanner):
        _service(worklist, profiles).search_as("STRANGER", parse_query([]))


def test_the_service_takes_a_profile_as_well_as_an_ae_title(
    worklist: WorklistStore, profiles: ProfileSet
) -> None:
    service = _service(worklist, profiles)
    profile = profiles.own_profile("CT1")
    assert profile is not None
    by_title = service.search_as("CT1", parse_query([]))
    by_profile = service.search_as(profile, parse_query([]))
    assert by_title.answers == by_profile.answers
    for answer in by_title.answers:
        assert answer.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT1"


def test_a_search_has_the_work_budget_of_a_c_find(
    worklist: WorklistStore, profiles: ProfileSet
) -> None:
    service = WorklistService(
        worklist, profiles, max_answers=1000, hidden_statuses=frozenset(), max_candidates=5
    )
    with pytest.raises(DicomServiceError) as refused:
        service.search_as("ALL", parse_query([]))
    assert refused.value.status == Status.OUT_OF_RESOURCES
    narrow = service.search_as("ALL", parse_query([("AccessionNumber", "A001")]))
    assert [a.AccessionNumber for a in narrow.answers] == ["A001"]


def test_a_page_repr_shows_no_patient_data(worklist: WorklistStore, profiles: ProfileSet) -> None:
    page = _service(worklist, profiles).search_as("ALL", parse_query([("limit", "3")]))
    assert repr(page) == f"SearchPage(answers=3, offset=0, more={page.more}, limit=3)"

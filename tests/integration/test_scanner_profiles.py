"""Per-scanner profiles over real associations: scope, defaults, limits, order, character sets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.common.clock import ManualClock
from broker.dicom.find import WorklistFindService
from broker.dicom.profiles import ProfileSet
from broker.dicom.server import DicomServer
from broker.dicom.status import RejectReason, Status
from broker.errors import ConfigError
from broker.settings import load_settings
from broker.store.worklist import WorklistStore
from broker.worklist.model import OrderAction, OrderChange
from tests.integration.dicom_find_helpers import AE_TITLE, entry, find, put, query, start_server
from tests.scu import ModalityWorklistInformationFind

LOCAL = ["127.0.0.1"]  # where the test scanners connect from
ZONE = ZoneInfo("Pacific/Kiritimati")  # UTC+14: "today" there is rarely the machine's today
TODAY = dt.datetime.now(ZONE).date()
# The service's clock stands at noon of TODAY there, so a run that crosses midnight in
# that zone still agrees with the dates the tests wrote.
NOON = ManualClock(dt.datetime.combine(TODAY, dt.time(12), ZONE).timestamp())


def day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).strftime("%Y%m%d")


@contextmanager
def serving(
    store: WorklistStore, scanners: dict[str, Any], **options: Any
) -> Iterator[DicomServer]:
    allow_unknown = options.pop("allow_unknown", True)
    profiles = ProfileSet.parse(scanners, allow_unknown=allow_unknown)
    service = WorklistFindService(
        store, max_answers=1000, profiles=profiles, zone=ZONE, clock=NOON, **options
    )
    server = start_server(service)
    try:
        yield server
    finally:
        server.stop()


def ask(server: DicomServer, calling: str, identifier: Dataset) -> tuple[list[Dataset], Dataset]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityWorklistInformationFind)
    association = ae.associate("127.0.0.1", server.port, ae_title=AE_TITLE)
    assert association.is_established
    try:
        return find(association, identifier)
    finally:
        association.release()


def accs(answers: list[Dataset]) -> list[str]:
    return sorted(a.AccessionNumber for a in answers)


@pytest.fixture
def stations(store: WorklistStore) -> WorklistStore:
    put(
        store,
        entry("A1", "CT1", day(0)),
        entry("A2", "CT1", day(1)),
        entry("B1", "CT2", day(0)),
        entry("U1", "", day(0)),
    )
    return store


@pytest.mark.parametrize("station", ["", "*", "CT1", "CT2", "CT*"])
def test_own_scope_never_shows_another_station(stations: WorklistStore, station: str) -> None:
    with serving(stations, {"CT1": {"addresses": LOCAL, "scope": "own"}}) as server:
        answers, final = ask(server, "CT1", query(ScheduledStationAETitle=station))
    assert final.Status == Status.SUCCESS
    assert accs(answers) == ([] if station == "CT2" else ["A1", "A2"])


def test_a_list_scope_with_unassigned_entries(stations: WorklistStore) -> None:
    scanners = {"CT1": {"addresses": LOCAL, "scope": ["CT1", "CT2"], "unassigned": True}}
    with serving(stations, scanners) as server:
        answers, _ = ask(server, "CT1", query())
        others, _ = ask(server, "OTHER", query())  # no profile: everything
    assert accs(answers) == ["A1", "A2", "B1", "U1"]
    assert accs(others) == ["A1", "A2", "B1", "U1"]


def test_unknown_callers_and_wrong_addresses_are_refused(stations: WorklistStore) -> None:
    scanners = {"CT1": {"addresses": LOCAL}, "CT2": {"addresses": ["10.9.9.9"]}}
    with serving(stations, scanners, allow_unknown=False) as server:
        answers, final = ask(server, "STRANGER", query())
        assert answers == [] and final.Status == Status.UNABLE_TO_PROCESS
        assert "may not query" in final.ErrorComment
        _, wrong_address = ask(server, "CT2", query())
        assert wrong_address.Status == Status.UNABLE_TO_PROCESS
        allowed, _ = ask(server, "CT1", query())
    assert len(allowed) == 4


def test_date_window_and_modality_defaults_narrow_without_adding_keys(store: WorklistStore) -> None:
    put(
        store,
        entry("Y1", "CT1", day(-1)),
        entry("T1", "CT1", day(0)),
        entry("T2", "MR1", day(0)),
        entry("M1", "CT1", day(1)),
    )
    scanners = {
        "CT1": {"addresses": LOCAL, "date_window": "today", "modality": "CT"},
        "WIDE": {"addresses": LOCAL, "date_window": "-1..+1"},
    }
    identifier = query()
    del identifier.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate
    with serving(store, scanners) as server:
        today, _ = ask(server, "CT1", identifier)
        around, _ = ask(server, "WIDE", identifier)
        asked, _ = ask(server, "CT1", query(ScheduledProcedureStepStartDate=day(1)))
        mr, _ = ask(server, "CT1", query(Modality="MR"))  # the query's own modality wins
    assert accs(today) == ["T1"]
    assert "ScheduledProcedureStepStartDate" not in today[0].ScheduledProcedureStepSequence[0]
    assert accs(around) == ["M1", "T1", "T2", "Y1"]
    assert accs(asked) == ["M1"]
    assert accs(mr) == ["T2"]


def test_hidden_statuses_limit_and_order(store: WorklistStore) -> None:
    entries = [entry(f"S{n}", "CT1", day(0), time=f"{20 - n:02d}0000") for n in range(5)]
    put(store, *entries, entry("D1", "CT1", day(0)))
    store.apply([OrderChange("O-D1", OrderAction.SET_STATUS, status="COMPLETED")], None)
    scanners = {
        "ALL": {"addresses": LOCAL, "hidden_statuses": []},
        "SORTED": {"addresses": LOCAL, "sort": ["start"], "max_answers": 3},
        "STRICT": {"addresses": LOCAL, "max_answers": 3, "over_limit": "refuse"},
    }
    with serving(store, scanners) as server:
        everything, _ = ask(server, "ALL", query())
        ordered, final = ask(server, "SORTED", query())
        refused, refusal = ask(server, "STRICT", query())
    assert "D1" in accs(everything) and len(everything) == 6
    assert [a.AccessionNumber for a in ordered] == ["S4", "S3", "S2"]  # earliest three
    assert final.Status == Status.SUCCESS
    assert refused == [] and refusal.Status == Status.OUT_OF_RESOURCES
    assert "more than 3 matches" in refusal.ErrorComment


@pytest.mark.parametrize(
    ("policy", "name", "charset"),
    [
        ("utf8", "Łódź^Zoë", "ISO_IR 192"),
        ("replace", "?ód?^Zoë", "ISO_IR 100"),
        ("transliterate", "Lódz^Zoë", "ISO_IR 100"),
    ],
)
def test_legacy_character_set_policies(
    store: WorklistStore, policy: str, name: str, charset: str
) -> None:
    put(store, entry("L1", "CT1", day(0), name="Łódź^Zoë"))
    scanners = {
        "OLD": {"addresses": LOCAL, "character_set": "ISO_IR 100", "unrepresentable": policy}
    }
    with serving(store, scanners) as server:
        (answer,), _ = ask(server, "OLD", query())
    assert answer.SpecificCharacterSet == charset
    assert str(answer.PatientName) == name


def test_japanese_names_in_iso_2022_ir_87(store: WorklistStore) -> None:
    put(store, entry("J1", "CR1", day(0), name="=患者^太郎=カンジャ^タロウ"))
    with serving(store, {"CR1": {"addresses": LOCAL, "character_set": "ISO 2022 IR 87"}}) as server:
        (answer,), _ = ask(server, "CR1", query())
    assert list(answer.SpecificCharacterSet) == ["", "ISO 2022 IR 87"]
    assert answer.PatientName.ideographic == "患者^太郎"
    assert answer.PatientName.phonetic == "カンジャ^タロウ"


def test_unknown_callers_are_rejected_at_association(stations: WorklistStore) -> None:
    profiles = ProfileSet.parse({"CT1": {"addresses": LOCAL, "scope": "own"}}, allow_unknown=False)
    service = WorklistFindService(stations, max_answers=1000, profiles=profiles)
    server = DicomServer(
        ae_title=AE_TITLE,
        host="127.0.0.1",
        port=0,
        find_service=service,
        admission=profiles.decide,
    )
    server.start()
    try:
        stranger = AE(ae_title="STRANGER")
        stranger.add_requested_context(ModalityWorklistInformationFind)
        refused = stranger.associate("127.0.0.1", server.port, ae_title=AE_TITLE)
        assert refused.is_rejected and not refused.is_established
        assert refused.acceptor.primitive is not None
        assert refused.acceptor.primitive.diagnostic == RejectReason.CALLING_AE_TITLE_NOT_RECOGNIZED
        answers, final = ask(server, "CT1", query())
        assert final.Status == Status.SUCCESS and accs(answers) == ["A1", "A2"]
    finally:
        server.stop()


def test_refusing_unknown_callers_needs_a_profile() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        load_settings(environ={"MWL_BROKER_DICOM_ALLOW_UNKNOWN_CALLERS": "false"})

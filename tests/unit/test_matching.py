"""Modality Worklist matching and candidate criteria, without a network.

Cases follow PS3.4 C.2.2.2 (attribute matching) and K.6 (MWL keys). Queries go
through pynetdicom's own encoder/decoder where the character set matters, so a
Latin-1 or UTF-8 name is matched the way it arrives from a modality.
"""

from __future__ import annotations

import copy

import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from broker.dicom.matching import criteria_from_query, matches
from broker.worklist.model import CandidateCriteria
from tests.unit.matching_helpers import ENTRY, Spec, make, sps, wire

MATCH_CASES: list[tuple[str, Spec, bool]] = [
    # universal matching (C.2.2.2.3)
    ("empty query", {}, True),
    ("empty PN", {"PatientName": ""}, True),
    ("star PN", {"PatientName": "*"}, True),
    ("empty key on empty stored value", {"MedicalAlerts": ""}, True),
    ("star on empty stored value", {"MedicalAlerts": "*"}, True),
    ("empty key on absent attribute", {"PatientSex": ""}, True),
    ("empty sequence item", {"ReferencedStudySequence": [{}]}, True),
    ("empty SPS item", sps(), True),
    (
        "universal keys in absent sequence",
        {"RequestedProcedureCodeSequence": [{"CodeValue": ""}]},
        True,
    ),
    # single value matching (C.2.2.2.1)
    ("patient id", {"PatientID": "P1"}, True),
    ("other patient id", {"PatientID": "P2"}, False),
    ("LO is case-sensitive", {"PatientID": "p1"}, False),
    ("padding ignored", {"PatientID": " P1 "}, True),
    ("absent attribute", {"PatientSex": "M"}, False),
    ("empty stored value matches only universal", {"MedicalAlerts": "NONE"}, False),
    ("wildcard on empty stored value", {"MedicalAlerts": "N*"}, False),
    ("all keys must match", {"PatientID": "P1", "AccessionNumber": "A2"}, False),
    # wild card matching (C.2.2.2.4)
    ("LO star", {"PatientID": "P*"}, True),
    ("LO question mark", {"PatientID": "P?"}, True),
    ("LO two question marks", {"PatientID": "P??"}, False),
    ("SH leading star", {"AccessionNumber": "*1"}, True),
    ("no wildcard in UI", {"StudyInstanceUID": "1.2.*"}, False),
    ("no wildcard in DA", {"PatientBirthDate": "1970*"}, False),
    # Patient's Name (PN)
    ("PN case-insensitive", {"PatientName": "MÜLLER^HANS"}, True),
    ("PN lower-case wildcard", {"PatientName": "mü*"}, True),
    ("PN accents are significant", {"PatientName": "MU*"}, False),
    ("PN family name alone is not the name", {"PatientName": "Müller"}, False),
    ("PN trailing empty components", {"PatientName": "Müller^Hans^^^"}, True),
    ("PN wildcard over components", {"PatientName": "*^Hans"}, True),
    ("PN question mark", {"PatientName": "M?ller^Hans"}, True),
    ("PN other name", {"PatientName": "Meier*"}, False),
    ("PN delimiters only are empty", {"PatientName": "^^"}, True),
    # list of UID matching (C.2.2.2.2)
    ("UID", {"StudyInstanceUID": "1.2.3"}, True),
    ("UID list", {"StudyInstanceUID": "9.9\\1.2.3"}, True),
    ("UID list without it", {"StudyInstanceUID": "9.9\\8.8"}, False),
    ("UID prefix", {"StudyInstanceUID": "1.2"}, False),
    # range matching (C.2.2.2.5)
    ("DA single", {"PatientBirthDate": "19700101"}, True),
    ("DA range", {"PatientBirthDate": "19600101-19800101"}, True),
    ("DA open start", {"PatientBirthDate": "-19691231"}, False),
    ("DA open end", {"PatientBirthDate": "19700101-"}, True),
    ("DA range after", {"PatientBirthDate": "19700102-"}, False),
    ("DT day", {"DateTime": "20240105"}, True),
    ("DT range", {"DateTime": "20240105090000-20240105100000"}, True),
    ("DT range before", {"DateTime": "20240101-20240104"}, False),
    ("DT with offset", {"DateTime": "202401050930+0100"}, True),
    ("TM reduced precision", sps(ScheduledProcedureStepStartTime="0930"), True),
    ("TM other second", sps(ScheduledProcedureStepStartTime="093001"), False),
    ("TM range", sps(ScheduledProcedureStepStartTime="0900-1000"), True),
    ("TM open end", sps(ScheduledProcedureStepStartTime="1000-"), False),
    ("TM open start", sps(ScheduledProcedureStepStartTime="-0930"), True),
    # SPS Start Date and Time form one range (C.2.2.2.5)
    (
        "date-time range spans days",
        sps(
            ScheduledProcedureStepStartDate="20240104-20240106",
            ScheduledProcedureStepStartTime="1000-0900",
        ),
        True,
    ),
    (
        "date-time range starts later that day",
        sps(
            ScheduledProcedureStepStartDate="20240105-20240106",
            ScheduledProcedureStepStartTime="1000-1200",
        ),
        False,
    ),
    (
        "date-time range ends earlier that day",
        sps(
            ScheduledProcedureStepStartDate="20240103-20240105",
            ScheduledProcedureStepStartTime="0000-0900",
        ),
        False,
    ),
    (
        "single date with time range",
        sps(
            ScheduledProcedureStepStartDate="20240105", ScheduledProcedureStepStartTime="0900-1000"
        ),
        True,
    ),
    (
        "other date with time range",
        sps(
            ScheduledProcedureStepStartDate="20240106", ScheduledProcedureStepStartTime="0900-1000"
        ),
        False,
    ),
    (
        "date range, single time",
        sps(
            ScheduledProcedureStepStartDate="20240101-20240107",
            ScheduledProcedureStepStartTime="093000",
        ),
        True,
    ),
    (
        "time range, universal date",
        sps(ScheduledProcedureStepStartDate="", ScheduledProcedureStepStartTime="0900-"),
        True,
    ),
    # sequence matching (C.2.2.2.6) and the SPS item
    (
        "sequence item key",
        {"ReferencedStudySequence": [{"ReferencedSOPInstanceUID": "1.2.3.4"}]},
        True,
    ),
    (
        "sequence item other key",
        {"ReferencedStudySequence": [{"ReferencedSOPInstanceUID": "9"}]},
        False,
    ),
    ("absent sequence", {"RequestedProcedureCodeSequence": [{"CodeValue": "X"}]}, False),
    ("first station of two", sps(ScheduledStationAETitle="CT1"), True),
    ("second station of two", sps(ScheduledStationAETitle="CT2"), True),
    ("other station", sps(ScheduledStationAETitle="CT3"), False),
    ("AE wildcard", sps(ScheduledStationAETitle="CT*"), True),
    ("AE is case-sensitive", sps(ScheduledStationAETitle="ct1"), False),
    ("modality", sps(Modality="CT"), True),
    ("other modality", sps(Modality="MR"), False),
    ("station and modality", sps(ScheduledStationAETitle="CT2", Modality="CT"), True),
    ("station and other modality", sps(ScheduledStationAETitle="CT2", Modality="MR"), False),
    ("SPS key on empty stored value", sps(ScheduledStationName="CT-ROOM"), False),
    ("SPS universal key on empty stored value", sps(ScheduledStationName=""), True),
    ("nested PN", sps(ScheduledPerformingPhysicianName="dupont^gérard"), True),
    ("SPS key at top level is not the SPS key", {"Modality": "CT"}, False),
    # keys that are never matched
    ("specific character set", {"SpecificCharacterSet": "ISO_IR 100"}, True),
    ("timezone offset", {"TimezoneOffsetFromUTC": "+0500"}, True),
]


@pytest.mark.parametrize(
    ("query", "expected"), [(q, e) for _, q, e in MATCH_CASES], ids=[c[0] for c in MATCH_CASES]
)
def test_matches(query: Spec, expected: bool) -> None:
    assert matches(make(query), ENTRY) is expected
    assert matches(wire(make(query)), ENTRY) is expected


def test_group_length_in_query_is_ignored() -> None:
    query = make({"PatientID": "P1"})
    query.add(DataElement(0x00100000, "UL", 14))
    assert matches(query, ENTRY)


@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192"])
@pytest.mark.parametrize(
    ("name", "expected"), [("Müller*", True), ("MÜLLER^HANS", True), ("Mueller*", False)]
)
def test_accented_names_arrive_in_any_character_set(
    charset: str, name: str, expected: bool
) -> None:
    query = wire(make({"SpecificCharacterSet": charset, "PatientName": name}))
    assert matches(query, ENTRY) is expected


def test_case_sensitive_names_when_configured() -> None:
    assert matches(make({"PatientName": "Müller*"}), ENTRY, pn_case_insensitive=False)
    assert not matches(make({"PatientName": "müller*"}), ENTRY, pn_case_insensitive=False)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("Yamada^Tarou", True),
        ("山田*", True),
        ("やまだ^たろう", True),
        ("=山田^太郎", True),
        ("Yamada^Tarou=山田^太郎", True),
        ("Yamada^Tarou=山本^太郎", False),
        ("Yamada^Hanako", False),
    ],
)
def test_person_name_component_groups(key: str, expected: bool) -> None:
    entry = make({"PatientName": "Yamada^Tarou=山田^太郎=やまだ^たろう"})
    assert matches(make({"PatientName": key}), entry) is expected


def test_multi_valued_key_and_value_match_on_any() -> None:
    assert matches(make(sps(ScheduledStationAETitle=["MR1", "CT2"])), ENTRY)
    assert not matches(make(sps(ScheduledStationAETitle=["MR1", "MR2"])), ENTRY)


def test_private_elements_match_by_tag_and_creators_are_ignored() -> None:
    entry = copy.deepcopy(ENTRY)
    entry.private_block(0x0009, "ACME", create=True).add_new(0x01, "LO", "XYZ")
    for value, expected in (("XY*", True), ("XYZ", True), ("ABC", False)):
        query = Dataset()
        query.private_block(0x0009, "ACME", create=True).add_new(0x01, "LO", value)
        assert matches(query, entry) is expected
    creator_only = Dataset()
    creator_only.add_new(0x00090010, "LO", "OTHER")
    assert matches(creator_only, entry)


# -- criteria_from_query ------------------------------------------------------------

CRITERIA_CASES: list[tuple[str, Spec, CandidateCriteria]] = [
    ("broad", {"PatientName": "", **sps()}, CandidateCriteria()),
    (
        "station poll",
        sps(
            ScheduledStationAETitle="CT1", Modality="CT", ScheduledProcedureStepStartDate="20240105"
        ),
        CandidateCriteria(
            station_aet="CT1", modality="CT", date_from="20240105", date_to="20240105"
        ),
    ),
    ("wildcard station", sps(ScheduledStationAETitle="CT*", Modality=""), CandidateCriteria()),
    ("station list", sps(ScheduledStationAETitle=["CT1", "CT2"]), CandidateCriteria()),
    (
        "date range",
        sps(
            ScheduledProcedureStepStartDate="20240101-20240107",
            ScheduledProcedureStepStartTime="0800-1000",
        ),
        CandidateCriteria(date_from="20240101", date_to="20240107"),
    ),
    (
        "open date range",
        sps(ScheduledProcedureStepStartDate="20240101-"),
        CandidateCriteria(date_from="20240101"),
    ),
    (
        "open date start",
        sps(ScheduledProcedureStepStartDate="-20240107"),
        CandidateCriteria(date_to="20240107"),
    ),
    ("date wildcard is literal", sps(ScheduledProcedureStepStartDate="2024*"), CandidateCriteria()),
    (
        "patient and accession",
        {"PatientID": "P1", "AccessionNumber": "A1"},
        CandidateCriteria(patient_id="P1", accession_number="A1"),
    ),
    ("patient wildcard", {"PatientID": "P*", "AccessionNumber": ""}, CandidateCriteria()),
    (
        "two SPS items",
        {"ScheduledProcedureStepSequence": [{"Modality": "CT"}, {"Modality": "MR"}]},
        CandidateCriteria(),
    ),
    ("modality at top level", {"Modality": "CT"}, CandidateCriteria()),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [(q, e) for _, q, e in CRITERIA_CASES],
    ids=[c[0] for c in CRITERIA_CASES],
)
def test_criteria_from_query(query: Spec, expected: CandidateCriteria) -> None:
    assert criteria_from_query(wire(make(query))) == expected


def test_criteria_never_exclude_a_match() -> None:
    """Every exact criterion agrees with the entry that the same query matches."""
    for _, query, expected in MATCH_CASES:
        if not expected:
            continue
        criteria = criteria_from_query(make(query))
        sps_item = ENTRY.ScheduledProcedureStepSequence[0]
        assert criteria.station_aet in (None, *sps_item.ScheduledStationAETitle)
        assert criteria.modality in (None, sps_item.Modality)
        assert criteria.patient_id in (None, ENTRY.PatientID)
        assert criteria.accession_number in (None, ENTRY.AccessionNumber)
        date = sps_item.ScheduledProcedureStepStartDate
        assert (criteria.date_from or "0") <= date <= (criteria.date_to or "9")

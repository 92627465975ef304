"""Modality Worklist matching, answers and candidate criteria, without a network.

Cases follow PS3.4 C.2.2.2 (attribute matching) and K.6 (MWL keys). Queries go
through pynetdicom's own encoder/decoder where the character set matters, so a
Latin-1 or UTF-8 name is matched the way it arrives from a modality.
"""

from __future__ import annotations

import copy
import string
import warnings
from datetime import date
from io import BytesIO
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

from broker.dicom.matching import criteria_from_query, matches
from broker.dicom.response import build_response
from broker.worklist.model import CandidateCriteria

Spec = dict[str, Any]


def make(spec: Spec) -> Dataset:
    """A Dataset from {keyword: value}; a list of dicts is a sequence.

    Values are set without pydicom's validation, since keys such as ``C*``
    (CS) or ``20240101-20240105`` (DA) are valid queries but not valid values.
    """
    ds = Dataset()
    for keyword, value in spec.items():
        tag = tag_for_keyword(keyword)
        assert tag is not None, keyword
        vr = dictionary_VR(tag)
        if vr == "SQ":
            value = [make(item) for item in value]
        ds.add(DataElement(tag, vr, value, validation_mode=config.IGNORE))
    return ds


def sps(**keys: Any) -> Spec:
    return {"ScheduledProcedureStepSequence": [keys]}


def wire(query: Dataset) -> Dataset:
    """The query as an SCP receives it: encoded and decoded by pynetdicom.

    Elements are converted eagerly, inside a filter for pydicom's warning about
    keys that are not valid values (``1.2.*`` as a UID), which an SCP logs.
    """
    raw = encode(query, True, True)
    assert raw is not None
    decoded = decode(BytesIO(raw), True, True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Invalid value for VR", category=UserWarning)
        for _ in decoded.iterall():
            pass
    return decoded


ENTRY_SPEC: Spec = {
    "PatientName": "Müller^Hans",
    "PatientID": "P1",
    "PatientBirthDate": "19700101",
    "AccessionNumber": "A1",
    "StudyInstanceUID": "1.2.3",
    "MedicalAlerts": "",
    "DateTime": "20240105093000.000000+0100",
    "RequestedProcedureID": "RP1",
    "ReferencedStudySequence": [
        {"ReferencedSOPClassUID": "1.2.840.10008.3.1.2.3.1", "ReferencedSOPInstanceUID": "1.2.3.4"}
    ],
    "ScheduledProcedureStepSequence": [
        {
            "ScheduledStationAETitle": ["CT1", "CT2"],
            "Modality": "CT",
            "ScheduledProcedureStepStartDate": "20240105",
            "ScheduledProcedureStepStartTime": "093000",
            "ScheduledPerformingPhysicianName": "Dupont^Gérard",
            "ScheduledProcedureStepID": "SPS1",
            "ScheduledProcedureStepDescription": "Thorax",
            "ScheduledStationName": "",
        }
    ],
}
ENTRY = make(ENTRY_SPEC)

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


# -- build_response -----------------------------------------------------------------


def keywords(ds: Dataset) -> list[str]:
    return [e.keyword for e in ds]


def test_response_holds_exactly_the_return_keys() -> None:
    query = make(
        {
            "SpecificCharacterSet": "ISO_IR 100",
            "PatientID": "",
            "AccessionNumber": "A*",
            "PatientSex": "",
        }
    )
    query.add(DataElement(0x00100000, "UL", 0))
    rsp = build_response(query, ENTRY)
    assert keywords(rsp) == ["AccessionNumber", "PatientID", "PatientSex"]
    assert (rsp.AccessionNumber, rsp.PatientID, rsp.PatientSex) == ("A1", "P1", "")


def test_empty_sequence_item_returns_the_whole_item() -> None:
    rsp = build_response(make({"PatientID": "", **sps()}), ENTRY)
    assert rsp.ScheduledProcedureStepSequence[0] == ENTRY.ScheduledProcedureStepSequence[0]
    assert len(rsp.ScheduledProcedureStepSequence) == 1


def test_zero_item_sequence_returns_every_item() -> None:
    rsp = build_response(make({"ReferencedStudySequence": []}), ENTRY)
    assert list(rsp.ReferencedStudySequence) == list(ENTRY.ReferencedStudySequence)


def test_sequence_item_keys_select_sub_attributes() -> None:
    query = make(
        sps(
            ScheduledStationAETitle="",
            Modality="CT",
            ScheduledProtocolCodeSequence=[{"CodeValue": ""}],
        )
    )
    item = build_response(query, ENTRY).ScheduledProcedureStepSequence[0]
    assert keywords(item) == [
        "Modality",
        "ScheduledStationAETitle",
        "ScheduledProtocolCodeSequence",
    ]
    assert list(item.ScheduledStationAETitle) == ["CT1", "CT2"]
    assert len(item.ScheduledProtocolCodeSequence) == 0


def test_absent_sequence_is_returned_empty() -> None:
    rsp = build_response(make({"RequestedProcedureCodeSequence": [{"CodeValue": ""}]}), ENTRY)
    assert len(rsp.RequestedProcedureCodeSequence) == 0


def test_response_does_not_share_state_with_the_entry() -> None:
    entry = copy.deepcopy(ENTRY)
    rsp = build_response(make({"PatientID": "", **sps()}), entry)
    rsp.PatientID = "CHANGED"
    rsp.ScheduledProcedureStepSequence[0].Modality = "MR"
    assert entry == ENTRY


def test_ascii_answer_has_no_character_set() -> None:
    rsp = build_response(make({"PatientID": "", "AccessionNumber": ""}), ENTRY)
    assert "SpecificCharacterSet" not in rsp


@pytest.mark.parametrize(
    ("configured", "name", "charset", "raw"),
    [
        ("ISO_IR 192", "Müller^Hans", "ISO_IR 192", "Müller^Hans".encode()),
        ("ISO_IR 100", "Müller^Hans", "ISO_IR 100", "Müller^Hans".encode("latin-1")),
        ("ISO_IR 100", "Иванов^Иван", "ISO_IR 192", "Иванов^Иван".encode()),
        ("ISO_IR 144", "Иванов^Иван", "ISO_IR 144", "Иванов^Иван".encode("iso8859_5")),
    ],
)
def test_answer_character_set_and_encoding(
    configured: str, name: str, charset: str, raw: bytes
) -> None:
    entry = make({**ENTRY_SPEC, "PatientName": name})
    rsp = build_response(
        make({"PatientName": "", "PatientID": ""}), entry, character_set=configured
    )
    assert rsp.SpecificCharacterSet == charset
    wire_bytes = encode(rsp, True, True)
    assert wire_bytes is not None and raw in wire_bytes
    assert str(decode(BytesIO(wire_bytes), True, True).PatientName) == name


def test_every_value_must_fit_the_configured_character_set() -> None:
    entry = make({**ENTRY_SPEC, "PatientName": "Иванов^Иван"})  # and "Dupont^Gérard" in the SPS
    rsp = build_response(make({"PatientName": "", **sps()}), entry, character_set="ISO_IR 144")
    assert rsp.SpecificCharacterSet == "ISO_IR 192"


def test_non_ascii_only_in_a_sequence_sets_the_character_set() -> None:
    rsp = build_response(make({"PatientID": "", **sps()}), ENTRY, character_set="ISO_IR 100")
    assert rsp.SpecificCharacterSet == "ISO_IR 100"
    wire_bytes = encode(rsp, False, True)
    assert wire_bytes is not None and "Gérard".encode("latin-1") in wire_bytes
    item = decode(BytesIO(wire_bytes), False, True).ScheduledProcedureStepSequence[0]
    assert str(item.ScheduledPerformingPhysicianName) == "Dupont^Gérard"


def test_unknown_character_set_is_refused() -> None:
    with pytest.raises(ValueError, match="Specific Character Set"):
        build_response(make({"PatientID": ""}), ENTRY, character_set="KLINGON")


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


# -- properties -----------------------------------------------------------------------

_LETTERS = "abcxyzABCXYZäöüÉçßøДΘ"
_text = st.text(alphabet=_LETTERS + string.digits + " -.", min_size=0, max_size=12)
_names = st.lists(st.text(alphabet=_LETTERS, min_size=0, max_size=8), min_size=1, max_size=5).map(
    "^".join
)
_ae = st.text(alphabet=string.ascii_uppercase + string.digits + "_", min_size=1, max_size=16)
_dates = st.dates(date(1900, 1, 1), date(2099, 12, 31)).map(lambda d: d.strftime("%Y%m%d"))
_times = st.times().map(lambda t: t.strftime("%H%M%S"))
_uids = st.lists(st.integers(0, 99999), min_size=2, max_size=6).map(
    lambda p: "1." + ".".join(map(str, p))
)


@st.composite
def entries(draw: st.DrawFn) -> Dataset:
    spec: Spec = {
        "PatientName": draw(_names),
        "PatientID": draw(_text),
        "AccessionNumber": draw(_text),
        "PatientBirthDate": draw(_dates),
        "StudyInstanceUID": draw(_uids),
        "RequestedProcedureDescription": draw(_text),
        "ScheduledProcedureStepSequence": [
            {
                "ScheduledStationAETitle": draw(st.lists(_ae, min_size=1, max_size=3)),
                "Modality": draw(st.sampled_from(["CT", "MR", "US", "CR"])),
                "ScheduledProcedureStepStartDate": draw(_dates),
                "ScheduledProcedureStepStartTime": draw(_times),
                "ScheduledPerformingPhysicianName": draw(_names),
            }
        ],
    }
    return make(spec)


def _subset(data: st.DataObject, source: Dataset) -> Dataset:
    """A query with some of ``source``'s keys and values (one value of a multi-valued one)."""
    query = Dataset()
    for elem in source:
        if not data.draw(st.booleans()):
            continue
        if elem.VR == "SQ":
            query.add(DataElement(elem.tag, "SQ", [_subset(data, elem.value[0])]))
        elif elem.VM > 1:
            query.add(DataElement(elem.tag, elem.VR, data.draw(st.sampled_from(list(elem.value)))))
        else:
            query.add(copy.deepcopy(elem))
    return query


@given(entry=entries(), data=st.data())
def test_a_query_made_of_the_entrys_own_values_matches_it(
    entry: Dataset, data: st.DataObject
) -> None:
    query = _subset(data, entry)
    assert matches(query, entry)
    query.SpecificCharacterSet = "ISO_IR 192"
    assert matches(wire(query), entry)


@given(
    station=_ae,
    entry=entries(),
)
def test_a_station_never_sees_another_stations_entries(station: str, entry: Dataset) -> None:
    value = entry.ScheduledProcedureStepSequence[0].ScheduledStationAETitle
    scheduled = [value] if isinstance(value, str) else list(value)
    query = make(
        sps(ScheduledStationAETitle=station, Modality="", ScheduledProcedureStepStartDate="")
    )
    assert matches(query, entry) is (station in scheduled)

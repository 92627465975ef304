"""The Search Transaction's parameters (PS3.18 §14.4, §8.3.4) as a C-FIND identifier: every
parameter, and every refusal naming its parameter."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from broker.dicom.matching import matches
from broker.dicom.qido import DEFAULT_RETURN_KEYS, QidoError, parse_query


def _step(identifier: Dataset) -> Dataset:
    item: Dataset = identifier.ScheduledProcedureStepSequence[0]
    return item


def test_no_parameters_ask_for_the_required_return_keys_only() -> None:
    query = parse_query([])
    assert (query.offset, query.limit, query.fuzzy, query.include_all) == (0, None, False, False)
    for key in DEFAULT_RETURN_KEYS:
        *path, last = key.split(".")
        ds = _step(query.identifier) if path else query.identifier
        assert last in ds
        assert ds[last].value in ("", None, [])


@pytest.mark.parametrize(
    "params",
    [
        [("PatientID", "P1"), ("ScheduledProcedureStepSequence.Modality", "CT")],
        [("00100020", "P1"), ("00400100.00080060", "CT")],
        [("00100020", "P1"), ("ScheduledProcedureStepSequence.00080060", "CT")],
    ],
)
def test_match_parameters_by_keyword_tag_or_path(params: list[tuple[str, str]]) -> None:
    query = parse_query(params)
    assert query.identifier.PatientID == "P1"
    assert _step(query.identifier).Modality == "CT"


def test_uids_are_listed_with_commas() -> None:
    query = parse_query([("StudyInstanceUID", "1.2.3,1.2.4")])
    assert list(query.identifier.StudyInstanceUID) == ["1.2.3", "1.2.4"]


def test_wild_cards_and_ranges_are_kept_for_the_matcher() -> None:
    query = parse_query(
        [
            ("PatientName", "DOE*"),
            ("ScheduledProcedureStepSequence.ScheduledProcedureStepStartDate", "20260101-"),
        ]
    )
    assert str(query.identifier.PatientName) == "DOE*"
    assert _step(query.identifier).ScheduledProcedureStepStartDate == "20260101-"


def test_includefield_repeated_comma_separated_and_all() -> None:
    query = parse_query(
        [
            ("includefield", "PatientWeight,00102000"),
            ("includefield", "ScheduledProcedureStepSequence.CommentsOnTheScheduledProcedureStep"),
        ]
    )
    assert "PatientWeight" in query.identifier and "MedicalAlerts" in query.identifier
    assert "CommentsOnTheScheduledProcedureStep" in _step(query.identifier)
    assert not query.include_all
    assert parse_query([("includefield", "all")]).include_all


def test_a_sequence_as_a_return_key_keeps_its_match_keys() -> None:
    query = parse_query(
        [("ScheduledProcedureStepSequence.Modality", "CT"), ("ScheduledProcedureStepSequence", "")]
    )
    assert _step(query.identifier).Modality == "CT"


def test_includefield_never_replaces_a_match_key() -> None:
    query = parse_query([("PatientID", "P1"), ("includefield", "PatientID")])
    assert query.identifier.PatientID == "P1"


def test_fuzzymatching_offset_and_limit() -> None:
    query = parse_query([("fuzzymatching", "true"), ("offset", "20"), ("limit", "10")])
    assert (query.fuzzy, query.offset, query.limit) == (True, 20, 10)
    assert not parse_query([("fuzzymatching", "false")]).fuzzy


def test_a_date_range_with_a_single_time_is_one_period() -> None:
    """PS3.18 §8.3.4.1 combined date-time: the time takes the date's form of range."""
    sps = "ScheduledProcedureStepSequence."
    query = parse_query(
        [
            (sps + "ScheduledProcedureStepStartDate", "20260105-20260107"),
            (sps + "ScheduledProcedureStepStartTime", "1000"),
        ]
    )
    assert _step(query.identifier).ScheduledProcedureStepStartTime == "1000-1000"
    entry = Dataset()
    item = Dataset()
    item.ScheduledProcedureStepStartDate = "20260106"
    item.ScheduledProcedureStepStartTime = "0800"  # inside the period, not at 10:00
    entry.ScheduledProcedureStepSequence = [item]
    assert matches(query.identifier, entry)


@pytest.mark.parametrize(
    ("date", "time", "combined"),
    [
        ("20260105-", "1000-1800", "1000-"),
        ("-20260107", "1000-1800", "-1800"),
        ("20260105-20260107", "1000-", "1000-235959.999999"),
        ("20260105", "1000-1800", "1000-1800"),  # a single date: the same either way
    ],
)
def test_a_time_takes_the_form_of_the_date_range(date: str, time: str, combined: str) -> None:
    sps = "ScheduledProcedureStepSequence."
    query = parse_query(
        [
            (sps + "ScheduledProcedureStepStartDate", date),
            (sps + "ScheduledProcedureStepStartTime", time),
        ]
    )
    assert _step(query.identifier).ScheduledProcedureStepStartTime == combined


@pytest.mark.parametrize(
    ("params", "parameter", "reason"),
    [
        ([("PatientNam", "X")], "PatientNam", "not a DICOM keyword or tag"),
        ([("0010002", "X")], "0010002", "not a DICOM keyword or tag"),
        ([("00091010", "X")], "00091010", "private"),
        ([("00100000", "X")], "00100000", "not an attribute"),
        ([("PixelData", "")], "PixelData", "cannot be a query key"),
        ([("00000900", "0")], "00000900", "not an attribute of a dataset"),
        ([("FFFEE000", "")], "FFFEE000", "not an attribute of a dataset"),
        ([("TransferSyntaxUID", "1.2")], "TransferSyntaxUID", "not an attribute of a dataset"),
        ([("PatientID.Modality", "CT")], "PatientID.Modality", "is not a sequence"),
        (
            [("ScheduledProcedureStepSequence..Modality", "CT")],
            "ScheduledProcedureStepSequence..Modality",
            "attribute path",
        ),
        ([("A.B.C.D", "X")], "A.B.C.D", "attribute path"),
        (
            [("ScheduledProcedureStepSequence", "CT")],
            "ScheduledProcedureStepSequence",
            "takes no value",
        ),
        ([("PatientID", "A"), ("PatientID", "B")], "PatientID", "more than once"),
        ([("PatientID", "A"), ("00100020", "B")], "00100020", "more than once"),
        ([("PatientID", "A\\B")], "PatientID", "not allowed"),
        ([("StudyInstanceUID", "1.2,")], "StudyInstanceUID", "empty UID"),
        ([("SpecificCharacterSet", "ISO_IR 100")], "SpecificCharacterSet", "UTF-8"),
        ([("QueryRetrieveLevel", "STUDY")], "QueryRetrieveLevel", "not a query key"),
        ([("PatientBirthDate", "2026-01-01")], "PatientBirthDate", "DA value"),
        (
            [("ScheduledProcedureStepSequence.ScheduledProcedureStepStartTime", "25h")],
            "ScheduledProcedureStepSequence.ScheduledProcedureStepStartTime",
            "TM value",
        ),
        ([("PatientID", "X" * 65)], "PatientID", "longer"),
        ([("includefield", "Nope")], "includefield", "not a DICOM keyword"),
        ([("includefield", "PatientID,,PatientName")], "includefield", "empty attribute"),
        ([("fuzzymatching", "yes")], "fuzzymatching", "true or false"),
        ([("fuzzymatching", "true"), ("fuzzymatching", "true")], "fuzzymatching", "more than once"),
        ([("offset", "-1")], "offset", "whole number"),
        ([("offset", "ten")], "offset", "whole number"),
        ([("offset", "1"), ("offset", "2")], "offset", "more than once"),
        ([("limit", "0")], "limit", "at least 1"),
        ([("limit", "99999999")], "limit", "whole number"),
        ([("limit", "")], "limit", "whole number"),
    ],
)
def test_each_refusal_names_its_parameter(
    params: list[tuple[str, str]], parameter: str, reason: str
) -> None:
    with pytest.raises(QidoError) as raised:
        parse_query(params)
    assert raised.value.parameter == parameter
    assert reason in raised.value.reason


def test_the_repr_names_keys_never_values() -> None:
    query = parse_query([("PatientName", "DOE^JOHN"), ("PatientID", "SECRET-ID")])
    text = repr(query)
    assert "PatientName" in text and "PatientID" in text
    assert "DOE" not in text and "SECRET" not in text

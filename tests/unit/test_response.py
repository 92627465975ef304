"""C-FIND answers built from a matched entry (``build_response``), without a network: exactly
the requested keys, sequence items as the query asks for them, and a character set that fits
every value, as a scanner decodes it."""

from __future__ import annotations

import copy
from io import BytesIO

import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

from broker.dicom.response import build_response
from broker.worklist import dicom_json
from tests.unit.matching_helpers import ENTRY, ENTRY_SPEC, make, sps


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


def test_encoding_an_answer_leaves_the_entry_as_it_was() -> None:
    entry = copy.deepcopy(ENTRY)
    entry.PatientName = "Müller^Jürgen"
    stored = dicom_json.dumps(entry)
    query = make({"PatientID": "", "PatientName": "", **sps()})
    rsp = build_response(query, entry, character_set="ISO_IR 100")
    # text is the entry's own, never changed; person names (pydicom keeps their encoded
    # bytes) and sequence items are the answer's
    assert rsp["PatientID"] is entry["PatientID"]
    assert rsp["PatientName"] is not entry["PatientName"]
    assert rsp.PatientName is not entry.PatientName
    step, its_step = rsp.ScheduledProcedureStepSequence[0], entry.ScheduledProcedureStepSequence[0]
    assert step is not its_step and step == its_step
    assert all(step[e.tag] is not e for e in its_step)
    encoded = encode(rsp, True, True)
    assert encoded is not None and b"M\xfcller" in encoded
    assert dicom_json.dumps(entry) == stored and entry.PatientName.original_string is None


@pytest.mark.parametrize(("policy", "fitted"), [("replace", "?ód?-1"), ("transliterate", "Lódz-1")])
def test_fitted_values_change_the_answer_only(policy: str, fitted: str) -> None:
    entry = copy.deepcopy(ENTRY)
    entry.PatientID = "Łódź-1"
    stored = dicom_json.dumps(entry)
    rsp = build_response(
        make({"PatientID": ""}), entry, character_set="ISO_IR 100", unrepresentable=policy
    )
    assert rsp.PatientID == fitted
    assert dicom_json.dumps(entry) == stored


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

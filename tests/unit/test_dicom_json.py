"""The direct DICOM JSON writer gives exactly pydicom's ``to_json_dict`` text, and the
direct reader exactly pydicom's ``Dataset.from_json`` dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydicom import config
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from broker.errors import HL7Error
from broker.hl7.message import MessageDecoder, peek_header
from broker.mapping.engine import map_message
from broker.mapping.registry import MappingRegistry
from broker.worklist import dicom_json
from broker.worklist.model import MappedEntry
from tests.corpus import hl7_corpus_messages
from tests.messages import own_messages

REPO = Path(__file__).resolve().parents[2]


def pydicom_text(ds: Dataset) -> str:
    return json.dumps(ds.to_json_dict(), ensure_ascii=False)


def assert_same(ds: Dataset) -> None:
    assert dicom_json.dumps(ds) == pydicom_text(ds)
    # ...and after a round trip through the stored form, as ADTs re-write entries
    again = Dataset.from_json(json.loads(pydicom_text(ds)))
    assert dicom_json.dumps(again) == pydicom_text(again)
    assert_read_same(json.loads(pydicom_text(ds)))


def assert_read_same(data: dict[str, Any]) -> None:
    """The direct reader's dataset is pydicom's: equal, in the same order, each value of
    the same type, private elements with their creators."""
    ours, theirs = dicom_json.dataset_from_json(data), Dataset.from_json(data)
    assert_elements_same(ours, theirs)
    assert dicom_json.dumps(ours) == dicom_json.dumps(theirs)


def assert_elements_same(ours: Dataset, theirs: Dataset) -> None:
    assert ours == theirs
    assert list(ours.keys()) == list(theirs.keys())
    for mine, other in zip(ours, theirs, strict=True):
        assert (mine.tag, mine.VR, type(mine.value)) == (other.tag, other.VR, type(other.value))
        assert mine.private_creator == other.private_creator
        if mine.VR == "SQ":
            for item, their_item in zip(mine.value, other.value, strict=True):
                assert_elements_same(item, their_item)
        elif isinstance(mine.value, MultiValue):
            assert [type(v) for v in mine.value] == [type(v) for v in other.value]


def step(**attributes: object) -> Dataset:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def entry(name: object, **attributes: object) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = name
    ds.PatientID = "PAT-1"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.ScheduledProcedureStepSequence = [
        step(
            Modality="CT",
            ScheduledStationAETitle=["CT01", "CT02"],
            ScheduledProcedureStepStartDate="20261126",
            ScheduledPerformingPhysicianName="Smith^Anna",
        )
    ]
    return ds


@pytest.mark.parametrize(
    "name",
    [
        "Doe^Jane^Q",
        "Müller^Jürgen",  # Latin-1 repertoire
        "Ñúñez^José",
        "Yamada^Tarou=山田^太郎=やまだ^たろう",  # ideographic and phonetic groups
        "=김^희중",  # ideographic only
        "Wang^XiaoDong=王^小東",
        "",
        None,
        PersonName("Doe^John"),
        ["Doe^Jane", "Roe^Richard"],  # multi-valued PN
    ],
)
def test_person_names(name: object) -> None:
    assert_same(entry(name))


def test_empty_and_multivalued_strings_and_sequences() -> None:
    ds = entry(
        "Doe^Jane",
        AccessionNumber="",
        StudyInstanceUID="1.2.3.4",
        OtherPatientIDs=["A", "B", "C"],
        RequestedProcedureDescription=None,
        ReferencedStudySequence=[],
        RequestedProcedureCodeSequence=[
            step(CodeValue="CTHEAD", CodingSchemeDesignator="LOCAL", CodeMeaning="CT head")
        ],
        AdmissionID="V-1",
        PatientComments="line one\r\nline two",
    )
    ds.ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence = [
        step(CodeValue="P1", CodeMeaning="Ünïcode"),
        step(CodeValue="P2", CodeMeaning=""),
    ]
    assert_same(ds)


def test_elements_left_to_pydicom() -> None:
    ds = entry("Doe^Jane", PatientWeight="72.5", NumberOfStudyRelatedSeries="3")
    ds.add_new(0x00280010, "US", 512)  # Rows: a binary number
    ds.add_new(0x00091010, "OB", b"\x00\x01")  # private bytes
    ds.add_new(0x00101001, "PN", ["Alias^One", "Alias^Two"])
    assert_same(ds)
    ds.OtherPatientIDs = ["X", "Y"]
    ds["OtherPatientIDs"].value.pop()  # a one-item MultiValue: left to pydicom, as it is
    assert isinstance(ds.OtherPatientIDs, MultiValue) and len(ds.OtherPatientIDs) == 1
    assert dicom_json.dataset_json(ds) == ds.to_json_dict()


def test_insertion_order_is_kept() -> None:
    ds = Dataset()
    ds.PatientID = "P"
    ds.AccessionNumber = "A"  # a lower tag added later
    assert list(dicom_json.dataset_json(ds)) == list(ds.to_json_dict())
    assert_same(ds)


def test_every_own_order_entry() -> None:
    assert entries_are_what_pydicom_writes(own_messages()) >= 40


@pytest.mark.corpus
def test_every_corpus_order_entry() -> None:
    assert entries_are_what_pydicom_writes(hl7_corpus_messages()) >= 10


def entries_are_what_pydicom_writes(messages: list[tuple[str, bytes]]) -> int:
    """Each mapped entry's JSON is pydicom's JSON of it; the number of entries compared."""
    registry = MappingRegistry.load(REPO / "mappings")
    compared = 0
    for _name, raw in messages:
        header = peek_header(raw)
        if header is None or header["message_type"][:3] not in {"ORM", "OMI", "OMG"}:
            continue
        try:
            parsed = MessageDecoder("UNICODE UTF-8").decode(raw)
            spec = registry.for_message(parsed.message_type)
            if spec is None:
                continue
            result = map_message(parsed.segments, spec, message_type=parsed.message_type)
        except HL7Error:
            continue
        for change in result.changes:
            for entry in change.entries:
                assert isinstance(entry, MappedEntry)
                # the engine's JSON is pydicom's JSON of the same entry, element order included
                assert json.dumps(entry.json, ensure_ascii=False) == pydicom_text(entry.dataset)
                assert_same(entry.dataset)
                compared += 1
    return compared


@pytest.mark.parametrize(
    ("tag", "vr", "values"),
    [
        (0x00080050, "SH", ["ACC-1"]),
        (0x00080050, "SH", []),
        (0x00400001, "AE", ["CT1", "CT2"]),
        (0x00100010, "PN", ["Doe^Jane"]),
        (0x00100010, "PN", ["Yamada^Tarou=山田^太郎=やまだ^たろう"]),
        (0x00100010, "PN", ["=山田^太郎"]),
        (0x00100010, "PN", ["Doe^Jane="]),  # empty trailing groups are not written
        (0x00100010, "PN", ["Doe^Jane=="]),
        (0x00100010, "PN", ["Doe^Jane==やまだ"]),
        (0x00100010, "PN", ["Doe^Jane", "Roe^Richard"]),
        (0x00100010, "PN", []),
        (0x0020000D, "UI", ["1.2.826.0.1.3680043.8.498.1"]),
        (0x00400002, "DA", ["20261201"]),
        (0x00201208, "IS", ["12"]),
        (0x00201208, "IS", ["1", "2"]),
        (0x00101030, "DS", ["72.5"]),
        (0x00101030, "DS", []),
    ],
)
def test_mapped_element_is_what_pydicom_writes(tag: int, vr: str, values: list[str]) -> None:
    ds = Dataset()
    ds.add_new(tag, vr, values if len(values) > 1 else (values[0] if values else ""))
    assert dicom_json.mapped_element(tag, vr, values) == ds.to_json_dict()[f"{tag:08X}"]


@pytest.mark.parametrize(
    "data",
    [
        {"00100020": {"vr": "LO", "Value": []}},  # an empty value list
        {"00100020": {"vr": "LO", "Value": ["A", None]}},  # a null value: pydicom's
        {"00100010": {"vr": "PN", "Value": ["Doe^Jane"]}},  # PN as a string: pydicom's
        {"00100010": {"vr": "PN", "Value": [{"Ideographic": "山田^太郎"}]}},
        {"00100010": {"vr": "PN", "Value": [{"Phonetic": "やまだ"}, {}]}},
        {"00100010": {"vr": "PN"}, "00081110": {"vr": "SQ"}, "00081111": {"vr": "SQ", "Value": []}},
        {"00081110": {"vr": "SQ", "Value": [{}, {"00081150": {"vr": "UI", "Value": ["1.2"]}}]}},
        {"00091010": {"vr": "OB", "InlineBinary": "AAE="}},  # bulk data: pydicom's
        {"00280010": {"vr": "US", "Value": [512]}, "00101030": {"vr": "DS", "Value": [72.5]}},
        {"00290010": {"vr": "LO", "Value": ["ACME"]}, "00291001": {"vr": "LO", "Value": ["x"]}},
        {"00100020": {"vr": "LO", "Value": ["B"]}, "00080050": {"vr": "SH", "Value": ["A"]}},
        {"00100020": {"vr": "LO", "Value": ["A\\B"]}, "00081030": {"vr": "LT", "Value": ["A\\B"]},
         "00100010": {"vr": "PN", "Value": [{"Alphabetic": "A^B\\C^D"}]}},
    ],
    ids=[
        "empty list", "null value", "PN string", "PN ideographic", "PN phonetic and empty",
        "empty PN and SQ", "SQ items", "inline binary", "numbers", "private block",
        "unsorted keys", "backslash in one value",
    ],
)  # fmt: skip
@pytest.mark.filterwarnings("ignore:Value of data element .* is not formatted correctly")
def test_the_reader_is_pydicoms_for_what_an_entry_seldom_holds(data: dict[str, Any]) -> None:
    assert_read_same(data)


def test_dates_and_times_as_pydicom_reads_them_when_it_converts_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(config, "datetime_conversion", True)
    data = {
        "00100030": {"vr": "DA", "Value": ["19700101"]},
        "00400003": {"vr": "TM", "Value": ["0930"]},
        "0040A120": {"vr": "DT", "Value": ["20261201093000"]},
    }
    assert_elements_same(dicom_json.dataset_from_json(data), Dataset.from_json(data))

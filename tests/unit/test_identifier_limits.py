"""Bounds on a C-FIND identifier (``broker.dicom.limits``), without a network.

Value lengths are those of PS3.5 Table 6.2-1; a key past them is refused with
0xA900 naming its keyword and tag, never its value. The broker's own bounds
(size, attributes, values, items, depth) are refused with 0xA700.
"""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from pydicom.dataset import Dataset

from broker.dicom.limits import (
    MAX_DEPTH,
    MAX_ELEMENTS,
    MAX_IDENTIFIER_BYTES,
    MAX_ITEMS,
    MAX_VALUES,
    check_identifier,
    check_identifier_size,
)
from broker.dicom.status import Status
from broker.errors import DicomServiceError
from tests.unit.matching_helpers import make, sps


def refusal(spec: dict[str, Any] | Dataset) -> DicomServiceError:
    identifier = spec if isinstance(spec, Dataset) else make(spec)
    with pytest.raises(DicomServiceError) as caught:
        check_identifier(identifier)
    return caught.value


ALLOWED = [
    {"PatientName": "A" * 64},
    {"PatientName": "*?" * 32},  # wild cards are characters, 64 of them
    {"PatientName": "A" * 64 + "=" + "B" * 64 + "=" + "C" * 64},  # 64 per component group
    {"PatientName": "Ü" * 64},  # characters, not bytes
    {"PatientID": "P" * 64 + "   "},  # padding is not counted
    {"PatientID": ["P" * 64] * MAX_VALUES},
    {"AccessionNumber": "A" * 16},
    {"StudyInstanceUID": "1." * 31 + "12"},
    {"PatientBirthDate": "19700101-19701231"},  # a range counts each side
    {"PatientBirthDate": "-19701231"},
    {"PatientBirthDate": "1970.01.01-1970.12.31"},  # ACR-NEMA form, which matching accepts
    {"DateTime": "20240101000000.000000+0100-20240102000000.000000-0100"},
    {"RequestedProcedureComments": "x" * 10240},  # LT
    sps(ScheduledStationAETitle="A" * 16, ScheduledProcedureStepStartTime="080000.000000-"),
    sps(Modality="CT", ScheduledProcedureStepStartTime="08:00:00.000000-09:00:00.000000"),
    {"PatientName": "", "PatientID": "", **sps()},
    {"PatientName": None},
]


@pytest.mark.parametrize("spec", ALLOWED)
def test_keys_within_their_vr_pass(spec: dict[str, Any]) -> None:
    check_identifier(make(spec))


TOO_LONG = [
    ({"PatientName": "A" * 65}, "PatientName", "PN", 0x00100010),
    ({"PatientName": "*?" * 30 + "#####"}, "PatientName", "PN", 0x00100010),
    ({"PatientName": "A=" + "B" * 65}, "PatientName", "PN", 0x00100010),
    ({"PatientID": ["P1", "P" * 65]}, "PatientID", "LO", 0x00100020),
    ({"AccessionNumber": "A" * 17}, "AccessionNumber", "SH", 0x00080050),
    ({"StudyInstanceUID": "1." * 33}, "StudyInstanceUID", "UI", 0x0020000D),
    ({"PatientBirthDate": "197001011"}, "PatientBirthDate", "DA", 0x00100030),
    ({"PatientBirthDate": "19700101-197012311"}, "PatientBirthDate", "DA", 0x00100030),
    ({"RequestedProcedureComments": "x" * 10241}, "RequestedProcedureComments", "LT", 0x00401400),
    (sps(ScheduledStationAETitle="A" * 17), "ScheduledStationAETitle", "AE", 0x00400001),
    (sps(Modality="*" * 17), "Modality", "CS", 0x00080060),
    (
        sps(ScheduledProcedureStepStartTime="080000.00000000-"),
        "ScheduledProcedureStepStartTime",
        "TM",
        0x00400003,
    ),
]


@pytest.mark.parametrize(("spec", "keyword", "vr", "tag"), TOO_LONG)
def test_a_key_longer_than_its_vr_allows_is_refused_by_name(
    spec: dict[str, Any], keyword: str, vr: str, tag: int
) -> None:
    error = refusal(spec)
    assert error.status == Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS
    assert error.offending == tag
    assert error.comment.startswith(f"{keyword}: ")
    assert vr in error.comment
    assert len(error.comment) <= 64
    for text in values_of(spec):  # the comment names the key, never its value
        assert text not in error.comment


def values_of(spec: Any) -> list[str]:
    if isinstance(spec, dict):
        return [t for v in spec.values() for t in values_of(v)]
    if isinstance(spec, list):
        return [t for v in spec for t in values_of(v)]
    return [str(spec)]


def test_too_many_values() -> None:
    error = refusal({"PatientID": ["P"] * (MAX_VALUES + 1)})
    assert error.status == Status.OUT_OF_RESOURCES
    assert error.comment == f"PatientID: more than {MAX_VALUES} values"


def test_too_many_attributes() -> None:
    ds = Dataset()
    for n in range(MAX_ELEMENTS + 1):
        ds.add_new(0x00090000 | (0x1000 + n), "LO", "x")  # private elements, one group
    error = refusal(ds)
    assert error.status == Status.OUT_OF_RESOURCES
    assert str(MAX_ELEMENTS) in error.comment


def test_too_many_items() -> None:
    error = refusal({"ScheduledProcedureStepSequence": [{}] * (MAX_ITEMS + 1)})
    assert error.status == Status.OUT_OF_RESOURCES
    assert error.comment == f"ScheduledProcedureStepSequence: more than {MAX_ITEMS} items"


def nested(depth: int) -> Dataset:
    ds = Dataset()
    ds.PatientID = ""
    for _ in range(depth):
        outer = Dataset()
        outer.ScheduledProtocolCodeSequence = [ds]
        ds = outer
    return ds


def test_nesting_depth() -> None:
    check_identifier(nested(MAX_DEPTH))
    error = refusal(nested(MAX_DEPTH + 1))
    assert error.status == Status.OUT_OF_RESOURCES
    assert "nested deeper" in error.comment


def test_identifier_size_plain_and_deflated() -> None:
    check_identifier_size(b"\0" * MAX_IDENTIFIER_BYTES, deflated=False)
    with pytest.raises(DicomServiceError) as caught:
        check_identifier_size(b"\0" * (MAX_IDENTIFIER_BYTES + 1), deflated=False)
    assert caught.value.status == Status.OUT_OF_RESOURCES
    # 16 KB that would inflate to 16 MiB: measured, not inflated.
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    bomb = packer.compress(b"\0" * (16 << 20)) + packer.flush()
    assert len(bomb) < MAX_IDENTIFIER_BYTES
    with pytest.raises(DicomServiceError) as caught:
        check_identifier_size(bomb, deflated=True)
    assert caught.value.status == Status.OUT_OF_RESOURCES
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    check_identifier_size(packer.compress(b"\0" * 1000) + packer.flush(), deflated=True)

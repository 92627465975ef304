"""What hl7apy's libraries say about HL7 v2 structures, as the mapping checks use it."""

from __future__ import annotations

import pytest

from broker.hl7.paths import parse_path
from broker.mapping.hl7_structure import (
    SUPPORTED_VERSIONS,
    DataType,
    Target,
    check_path,
    default_versions,
    message_segments,
    message_structure,
    segment_fields,
    segment_library,
)

ORM = Target("ORM^O01", "2.3.1")
OMI = Target("OMI^O23", "2.5.1")


def check(path: str, *targets: Target) -> str | None:
    return check_path(parse_path(path), targets)


def test_supported_versions_are_hl7apy_libraries_in_order() -> None:
    assert {"2.3.1", "2.4", "2.5.1"} <= set(SUPPORTED_VERSIONS)
    assert SUPPORTED_VERSIONS.index("2.3.1") < SUPPORTED_VERSIONS.index("2.5.1")
    assert SUPPORTED_VERSIONS.index("2.8") < SUPPORTED_VERSIONS.index("2.8.2")


def test_default_versions_follow_ihe() -> None:
    assert default_versions("ORM^O01") == ("2.3.1",)
    assert default_versions("OMI^O23") == default_versions("OMG^O19") == ("2.5.1",)
    assert default_versions("ADT^A08") == ("2.5.1",)


@pytest.mark.parametrize(
    ("message_type", "version", "structure"),
    [
        ("ORM^O01", "2.3.1", "ORM_O01"),
        ("OMI^O23", "2.5.1", "OMI_O23"),
        ("ADT^A01", "2.5.1", "ADT_A01"),
        ("ADT^A04", "2.5.1", "ADT_A01"),  # HL7 table 0354: A01, A04, A08, A13
        ("ADT^A08", "2.5.1", "ADT_A01"),
        ("ADT^A31", "2.5.1", "ADT_A05"),
        ("ADT^A31", "2.3.1", "ADT_A01"),  # no ADT_A05 before v2.4
        ("ADT^A10", "2.5.1", "ADT_A09"),
        ("ADT^A40", "2.5.1", "ADT_A39"),
        ("ADT^A47", "2.5.1", "ADT_A30"),
        ("OMI^O23", "2.3.1", None),  # OMI is from v2.4
        ("XYZ^Q99", "2.5.1", None),
    ],
)
def test_message_structure(message_type: str, version: str, structure: str | None) -> None:
    assert message_structure(message_type, version) == structure


def test_message_segments_go_through_every_group() -> None:
    omi = message_segments("OMI^O23", "2.5.1")
    assert omi is not None and {"MSH", "PID", "PV1", "ORC", "TQ1", "OBR", "IPC"} <= omi
    orm = message_segments("ORM^O01", "2.3.1")
    assert orm is not None and {"MSH", "PID", "PV1", "ORC", "OBR"} <= orm
    assert not {"IPC", "TQ1", "MRG"} & orm
    merge = message_segments("ADT^A40", "2.5.1")
    assert merge is not None and {"PID", "MRG"} <= merge
    assert message_segments("XYZ^Q99", "2.5.1") is None
    assert message_segments("OMI^O23", "2.5.1") is omi  # cached


def test_segment_library() -> None:
    assert "IPC" in segment_library("2.5.1") and "IPC" not in segment_library("2.3.1")
    assert "PID" in segment_library("2.1")
    assert not any(s.startswith("Z") for s in segment_library("2.5.1"))


def test_segment_fields_and_data_types() -> None:
    obr_231 = segment_fields("OBR", "2.3.1")
    obr_251 = segment_fields("OBR", "2.5.1")
    assert obr_231 is not None and obr_251 is not None
    assert (len(obr_231), len(obr_251)) == (45, 50)
    ce = obr_231[4 - 1]
    assert ce is not None and ce.name == "CE" and ce.parts is not None and len(ce.parts) == 6
    assert obr_231[18 - 1] == DataType("ST", ())  # a primitive
    pid_231, pid_251 = segment_fields("PID", "2.3.1"), segment_fields("PID", "2.5.1")
    assert pid_231 is not None and pid_251 is not None
    xpn_231, xpn_251 = pid_231[5 - 1], pid_251[5 - 1]
    assert xpn_231 is not None and xpn_231.parts is not None and len(xpn_231.parts) == 8
    assert xpn_251 is not None and xpn_251.parts is not None and len(xpn_251.parts) == 14
    cx = pid_251[3 - 1]
    assert cx is not None and cx.parts is not None and cx.parts[4 - 1].name == "HD"
    obx = segment_fields("OBX", "2.5.1")
    assert obx is not None and obx[5 - 1] == DataType("varies", None)  # any component
    assert segment_fields("ZDS", "2.5.1") is None


def test_check_path_accepts_what_exists_in_one_target() -> None:
    for path in ("PID-3", "PID-3.4.1", "OBR-4.6", "IPC-9[*]", "TQ1-7", "OBR-27.4", "MSH-9.2"):
        assert check(path, ORM, OMI) is None, path
    assert check("IPC-1", ORM, OMI) is None and check("IPC-1", ORM) is not None
    assert check("PID-5.9", ORM) is not None and check("PID-5.9", ORM, OMI) is None
    assert check("OBR-18.1", ORM) is None  # component 1 of a primitive is its value
    assert check("OBX-5.9.9", ORM) is None  # OBX-5 varies
    assert check("ZDS-1.1", ORM) is None and check("ZZZ-200.99.99", OMI) is None


def test_check_path_messages() -> None:
    assert check("PXX-1", ORM, OMI) == "PXX is not a segment of ORM^O01 v2.3.1 or OMI^O23 v2.5.1"
    assert check("OBR-51", ORM, OMI) == (
        "OBR-51 does not exist in ORM^O01 v2.3.1 or OMI^O23 v2.5.1 "
        "(OBR has 45 fields in v2.3.1, 50 in v2.5.1); did you mean OBR-5?"
    )
    assert check("IPC-10", ORM, OMI) == (
        "IPC-10 does not exist in OMI^O23 v2.5.1 (IPC has 9 fields in v2.5.1); did you mean IPC-1?"
    )
    assert check("OBR-4.9", ORM, OMI) == (
        "OBR-4.9: OBR-4 is CE in v2.3.1 and v2.5.1 with 6 components"
    )
    assert check("PID-5.15", ORM, OMI) == (
        "PID-5.15: PID-5 is XPN in v2.3.1 with 8 components, XPN in v2.5.1 with 14 components"
    )
    assert check("PID-3.4.4", OMI) == "PID-3.4.4: PID-3.4 is HD in v2.5.1 with 3 subcomponents"


def test_unknown_message_type_falls_back_to_the_segment_library() -> None:
    odd = Target("XYZ^Q99", "2.5.1")
    assert check("PID-3", odd) is None and check("IPC-1", odd) is None
    assert check("PXX-3", odd) == (
        "PXX is not a segment of XYZ^Q99 v2.5.1 "
        "(no structure known for XYZ^Q99 v2.5.1: any segment of its version); did you mean BPX?"
    )
    assert check("IPC-1", Target("OMI^O23", "2.3.1")) is not None  # no IPC in v2.3.1 at all


def test_every_version_and_segment_can_be_read() -> None:
    for version in SUPPORTED_VERSIONS:
        for segment in segment_library(version):
            assert segment_fields(segment, version) is not None
        for message_type in ("ORM^O01", "ADT^A08", "OMI^O23"):
            message_segments(message_type, version)  # a structure, or None: never an error

"""HL7 paths of a mapping file checked against the standard (hl7apy's message structures) for
every message type and HL7 version the mapping handles: segments, fields, components."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.mapping.parser import load_mapping
from broker.mapping.patient_spec import PatientSpec, load_any_mapping
from broker.mapping.spec import MappingSpec, ValueRule
from tests.unit.mapping_files import GOOD_ATTRIBUTES, config_error, write
from tests.unit.mapping_helpers import REPO

BOTH_TYPES = "ORM^O01: OBR\n  OMI^O23: {entry_per: [IPC, OBR]}"


def typed(tmp_path: Path, extra: str, message_types: str = BOTH_TYPES) -> Path:
    """A small mapping handling ``message_types``, with ``extra`` attribute lines."""
    path = write(tmp_path, GOOD_ATTRIBUTES + extra + "\n")
    path.write_text(path.read_text().replace("ORM^O01: OBR", message_types))
    return path


def test_default_mappings_validate_cleanly() -> None:
    orders = load_any_mapping(REPO / "mappings" / "orders.yaml")
    adt = load_any_mapping(REPO / "mappings" / "adt.yaml")
    assert isinstance(orders, MappingSpec) and isinstance(adt, PatientSpec)
    assert [str(p) for p in adt.prior_patient_id] == ["MRG-1"]


def test_unknown_segment_names_every_type_and_a_suggestion(tmp_path: Path) -> None:
    error = config_error(typed(tmp_path, "PatientName: PVV-3"))
    assert error.setting == "test.yaml:12: attributes.PatientName"
    assert error.message == (
        "PVV is not a segment of ORM^O01 v2.3.1 or OMI^O23 v2.5.1; did you mean PV2 or PV1?"
    )


def test_field_beyond_the_segment_in_every_version(tmp_path: Path) -> None:
    error = config_error(typed(tmp_path, "AccessionNumber: [IPC-1, OBR-51]"))
    assert error.setting == "test.yaml:12: attributes.AccessionNumber"
    assert error.message == (
        "OBR-51 does not exist in ORM^O01 v2.3.1 or OMI^O23 v2.5.1 "
        "(OBR has 45 fields in v2.3.1, 50 in v2.5.1); did you mean OBR-5?"
    )


def test_field_of_a_later_version_needs_that_version(tmp_path: Path) -> None:
    error = config_error(typed(tmp_path, "AdmissionID: OBR-48", message_types="ORM^O01: OBR"))
    assert error.message.startswith(
        "OBR-48 does not exist in ORM^O01 v2.3.1 (OBR has 45 fields in v2.3.1)"
    )
    load_mapping(typed(tmp_path, "AdmissionID: OBR-48"))  # OMI^O23 v2.5.1 has it
    versions = "ORM^O01: {entry_per: OBR, versions: ['2.3.1', '2.5.1']}"
    load_mapping(typed(tmp_path, "AdmissionID: OBR-48", message_types=versions))


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "RequestedProcedureDescription: OBR-4.9",
            "OBR-4.9: OBR-4 is CE in v2.3.1 with 6 components",
        ),
        ("PatientName: {path: PID-5.9}", "PID-5.9: PID-5 is XPN in v2.3.1 with 8 components"),
        (
            "IssuerOfPatientID: PID-3.4.4",
            "PID-3.4.4: PID-3.4 is HD in v2.3.1 with 3 subcomponents",
        ),
        (
            "AccessionNumber: OBR-18.2",
            "OBR-18.2: OBR-18 is ST in v2.3.1 (a primitive: no components)",
        ),
    ],
)
def test_component_beyond_the_data_type(tmp_path: Path, rule: str, message: str) -> None:
    error = config_error(typed(tmp_path, rule, message_types="ORM^O01: OBR"))
    assert error.message == message


def test_component_of_a_later_version_is_accepted_when_the_mapping_has_it(
    tmp_path: Path,
) -> None:
    load_mapping(typed(tmp_path, "PatientName: PID-5.9"))  # XPN has 14 components in v2.5.1
    load_mapping(typed(tmp_path, "AccessionNumber: OBR-18.1"))  # a primitive's value


def test_path_valid_in_only_one_of_the_types_is_accepted(tmp_path: Path) -> None:
    spec = load_mapping(typed(tmp_path, "AccessionNumber: [IPC-1, OBR-18]"))
    assert spec.message_types == {"ORM^O01", "OMI^O23"}
    error = config_error(
        typed(tmp_path, "AccessionNumber: [IPC-1, OBR-18]", message_types="ORM^O01: OBR")
    )
    assert error.message == "IPC is not a segment of ORM^O01 v2.3.1"


def test_z_segments_are_accepted_without_checks(tmp_path: Path) -> None:
    spec = load_mapping(typed(tmp_path, "StudyInstanceUID: [ZDS-1.1, ZXY-99.9.9]"))
    rule = next(r for r in spec.rules if r.keyword == "StudyInstanceUID")
    assert isinstance(rule, ValueRule) and [str(p) for p in rule.paths] == ["ZDS-1.1", "ZXY-99.9.9"]


def test_msh_fields_are_checked_in_every_type(tmp_path: Path) -> None:
    load_mapping(typed(tmp_path, "AdmissionID: MSH-10"))
    error = config_error(typed(tmp_path, "AdmissionID: MSH-22"))
    assert error.message.startswith("MSH-22 does not exist in ORM^O01 v2.3.1 or OMI^O23 v2.5.1")


def test_order_key_seed_and_fallback_paths_are_checked(tmp_path: Path) -> None:
    path = typed(tmp_path, "")
    path.write_text(path.read_text().replace("PLACER: ORC-2", "PLACER: ORC-99"))
    error = config_error(path)
    assert error.setting == "test.yaml:7: order_key[1]" and "ORC-99 does not exist" in error.message
    seed = "StudyInstanceUID: {generate: uid, seed: [OBR-19, PXX-1]}"
    error = config_error(typed(tmp_path, seed))
    assert error.setting == "test.yaml:12: attributes.StudyInstanceUID.seed"
    assert error.message.startswith("PXX is not a segment")
    fallback = "AccessionNumber: {path: IPC-1, fallback: {path: OBR-18.3}}"
    error = config_error(typed(tmp_path, fallback))
    assert error.setting == "test.yaml:12: attributes.AccessionNumber.fallback"
    assert (
        error.message == "OBR-18.3: OBR-18 is ST in v2.3.1 and v2.5.1 (a primitive: no components)"
    )


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        ("['2.3.2']", "HL7 version '2.3.2' is not one hl7apy knows (2.1, 2.2, 2.3, 2.3.1"),
        ("[]", "give an HL7 version or a list of them"),
        ("['2.5.1', {x: 1}]", "must be text"),
    ],
)
def test_unknown_version_is_refused(tmp_path: Path, versions: str, message: str) -> None:
    error = config_error(
        typed(tmp_path, "", message_types=f"ORM^O01: {{entry_per: OBR, versions: {versions}}}")
    )
    assert error.setting == "test.yaml:2: message_types.ORM^O01.versions"
    assert message in error.message


def test_versions_may_be_one_unquoted_number(tmp_path: Path) -> None:
    load_mapping(
        typed(
            tmp_path,
            "PatientName: PID-5.9",
            message_types="ORM^O01: {entry_per: OBR, versions: 2.4}",
        )
    )
    bad = "ORM^O01: {entry_per: OBR, version: ['2.4']}"
    error = config_error(typed(tmp_path, "", message_types=bad))
    assert "entry_per and optional versions" in error.message

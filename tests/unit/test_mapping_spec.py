"""Loading and validating mapping files; the file-based registry."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.hl7.paths import parse_path
from broker.mapping.parser import load_mapping
from broker.mapping.patient_spec import PatientSpec, load_any_mapping
from broker.mapping.registry import MappingRegistry
from broker.mapping.spec import ControlAction, ControlRow, MappingSpec, SequenceRule, ValueRule
from broker.worklist.model import PatientAction

REPO = Path(__file__).resolve().parents[2]

BASE = """\
message_types:
  ORM^O01: OBR
order_control:
  NW: schedule
order_key:
  - PLACER: ORC-2
attributes:
{attributes}
"""
GOOD_ATTRIBUTES = """\
PatientID: {path: PID-3, required: true}
ScheduledProcedureStepSequence:
  Modality: OBR-24
"""


def write(
    tmp_path: Path, attributes: str = GOOD_ATTRIBUTES, name: str = "test.yaml", **extra: str
) -> Path:
    text = BASE.format(attributes=textwrap.indent(textwrap.dedent(attributes), "  ").rstrip())
    for key, value in extra.items():
        text += f"{key}:\n{textwrap.indent(textwrap.dedent(value), '  ')}"
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_mapping(path)
    return info.value


def test_default_mapping_loads() -> None:
    spec = load_mapping(REPO / "mappings" / "orders.yaml")
    assert spec.name == "orders"
    assert spec.message_types == {"ORM^O01", "OMG^O19", "OMI^O23"}
    assert spec.entry_per["OMI^O23"] == ("IPC", "OBR")
    assert spec.order_control["XO/SC"] == ControlRow(ControlAction.SCHEDULE, "SCHEDULED")
    assert spec.order_control["XO/CM"] == ControlRow(ControlAction.SCHEDULE, "COMPLETED")
    assert spec.order_control["CA"] == ControlRow(ControlAction.STATUS, "CANCELED")
    assert [str(p.path) for p in spec.order_key] == ["ORC-2", "ORC-3", "OBR-2", "OBR-3"]
    assert spec.tables["station_by_modality"].rows == {}
    assert spec.tables["station_by_modality"].default == ""
    assert len(spec.version) == 12
    by_keyword = {r.keyword: r for r in spec.rules}
    patient_id = by_keyword["PatientID"]
    assert isinstance(patient_id, ValueRule) and patient_id.required
    assert patient_id.paths == (parse_path("PID-3"),)
    sps = by_keyword["ScheduledProcedureStepSequence"]
    assert isinstance(sps, SequenceRule)
    station = next(r for r in sps.rules if r.keyword == "ScheduledStationAETitle")
    assert isinstance(station, ValueRule) and station.multi and station.fallback is not None


def test_small_mapping_and_version(tmp_path: Path) -> None:
    path = write(tmp_path)
    spec = load_mapping(path)
    assert spec.name == "test" and spec.source == "test.yaml"
    path.write_text(path.read_text() + "\n# changed\n")
    assert load_mapping(path).version != spec.version


def test_misspelled_keyword_names_file_rule_and_suggestion(tmp_path: Path) -> None:
    error = config_error(write(tmp_path, GOOD_ATTRIBUTES + "PatientNam: PID-5\n"))
    assert error.setting == "test.yaml:11: attributes.PatientNam"
    assert "did you mean PatientName" in error.message


def test_misspelled_keyword_inside_a_sequence(tmp_path: Path) -> None:
    attributes = "ScheduledProcedureStepSequence:\n  Modalty: OBR-24\n"
    error = config_error(write(tmp_path, attributes))
    assert error.setting == "test.yaml:9: attributes.ScheduledProcedureStepSequence.Modalty"
    assert "Modality" in error.message


def test_non_sequence_used_as_a_sequence(tmp_path: Path) -> None:
    attributes = GOOD_ATTRIBUTES + "PatientName:\n  CodeValue: OBR-4.1\n"
    error = config_error(write(tmp_path, attributes))
    assert error.setting == "test.yaml:11: attributes.PatientName"
    assert "not SQ" in error.message


def test_sequence_given_a_path(tmp_path: Path) -> None:
    attributes = GOOD_ATTRIBUTES + "RequestedProcedureCodeSequence: OBR-4\n"
    error = config_error(write(tmp_path, attributes))
    assert "is a sequence (VR SQ)" in error.message


@pytest.mark.parametrize(
    ("rule", "setting", "message"),
    [
        ("PatientName: PID 5", "attributes.PatientName", "not an HL7 path"),
        ("PatientName: {path: PID-5, transform: pnn}", "attributes.PatientName", "did you mean pn"),
        ("PatientName: {path: PID-5, tabel: x}", "attributes.PatientName", "did you mean table"),
        ("PatientName: {path: PID-5, table: nope}", "attributes.PatientName", "unknown table"),
        ("PatientID: PID-3[*]", "attributes.PatientID", "takes one value"),
        ("PatientName: {path: PID-5, value: X}", "attributes.PatientName", "exactly one of"),
        ("PatientName: {transform: pn}", "attributes.PatientName", "exactly one of"),
        ("PatientName: {value: X, default: Y}", "attributes.PatientName", "default only goes"),
        ("PatientName: {path: PID-5, required: 'yes'}", "attributes.PatientName", "true or false"),
        (
            "PatientName: {path: PID-5, fallback: {value: X, required: true}}",
            "attributes.PatientName.fallback",
            "required",
        ),
        ("PatientName: {generate: guid}", "attributes.PatientName", "not one of uid"),
        ("PatientName: {path: PID-5, seed: PID-3}", "attributes.PatientName", "seed only goes"),
        ("PatientName: {value: yes}", "attributes.PatientName", "quote it"),
        ("Rows: PID-3", "attributes.Rows", "VR US"),
        (
            "AdmissionID: {path: PV1-19, extract: '(V)-\\1'}",
            "attributes.AdmissionID.extract",
            "back-references (\\1) are not supported",
        ),
    ],
)
def test_rule_errors(tmp_path: Path, rule: str, setting: str, message: str) -> None:
    error = config_error(write(tmp_path, GOOD_ATTRIBUTES + rule + "\n"))
    assert error.setting == f"test.yaml:11: {setting}"  # the rule's line
    assert message in error.message


def test_a_pattern_re2_cannot_run_is_refused_at_its_line(tmp_path: Path) -> None:
    attributes = GOOD_ATTRIBUTES + (
        "AdmissionID:\n  path: PV1-19\n  when:\n    MSH-3: {match: '(?<=RIS_)NORTH'}\n"
    )
    error = config_error(write(tmp_path, attributes))
    assert error.setting == "test.yaml:14: attributes.AdmissionID.when.MSH-3.match"
    assert "look-arounds" in error.message and "not:" in error.message


def test_missing_sps_sequence(tmp_path: Path) -> None:
    error = config_error(write(tmp_path, "PatientID: PID-3\n"))
    assert "ScheduledProcedureStepSequence is missing" in error.message


def test_top_level_errors(tmp_path: Path) -> None:
    path = tmp_path / "top.yaml"
    path.write_text(write(tmp_path).read_text() + "atributes: {}\n")
    error = config_error(path)
    assert error.setting == "top.yaml:11: atributes" and "did you mean attributes" in error.message
    path.write_text("message_types: {ORM^O01: OBR}\n")
    assert config_error(path).setting == "top.yaml: order_control"  # missing: no line


@pytest.mark.parametrize(
    ("old", "new", "setting", "message"),
    [
        ("ORM^O01: OBR", "ORM-O01: OBR", "2: message_types.ORM-O01", "CODE^EVENT"),
        ("ORM^O01: OBR", "ORM^O01: obr", "2: message_types.ORM^O01", "segment id"),
        ("NW: schedule", "NW: scedule", "4: order_control.NW", "not one of"),
        (
            "NW: schedule",
            "NW/SC: {action: schedule, status: DONE}",
            "4: order_control.NW/SC",
            "status",
        ),
        (
            "NW: schedule",
            "NW/SC: {action: schedule, when: x}",
            "4: order_control.NW/SC",
            "unknown key",
        ),
        ("NW: schedule", "new: schedule", "4: order_control.new", "ORC-1/ORC-5"),
        ("NW: schedule", "PA: ignore", "4: order_control.PA", "parent/child"),
        ("- PLACER: ORC-2", "- placer: ORC-2", "6: order_key[1]", "upper-case"),
        ("- PLACER: ORC-2", "- PLACER: ORC-2[*]", "6: order_key[1]", "[*]"),
        ("- PLACER: ORC-2", "- ORC-2", "6: order_key[1]", "PREFIX: PATH"),
    ],
)
def test_section_errors(tmp_path: Path, old: str, new: str, setting: str, message: str) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace(old, new))
    error = config_error(path)
    assert error.setting == f"test.yaml:{setting}"  # line: rule
    assert message in error.message


def test_table_errors(tmp_path: Path) -> None:
    error = config_error(write(tmp_path, tables="t: {CT: X}\n"))
    assert error.setting == "test.yaml:12: tables.t" and "rows" in error.message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("message_types:\n  ORM^O01: [OBR\n")
    error = config_error(path)
    assert error.setting == "broken.yaml" and "line 3" in error.message


def test_yaml_cannot_run_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    assert "invalid YAML" in config_error(path).message


# -- registry ----------------------------------------------------------------------


def test_registry_loads_the_default_directory() -> None:
    registry = MappingRegistry.load(REPO / "mappings")
    orders = {t for t in registry.supported_types() if not t.startswith("ADT^")}
    assert orders == {"ORM^O01", "OMG^O19", "OMI^O23"}
    spec = registry.for_message("OMI^O23")
    assert spec is not None and spec.name == "orders"
    assert registry.for_message("ADT^A01") is None  # a patient mapping (adt.yaml) handles it
    patient = registry.for_patient_message("ADT^A01")
    assert patient is not None and patient.name == "adt"
    assert len(registry.version) == 12


def test_two_files_claiming_a_type(tmp_path: Path) -> None:
    write(tmp_path, name="a.yaml")
    write(tmp_path, name="b.yaml")
    with pytest.raises(ConfigError) as info:
        MappingRegistry.load(tmp_path)
    assert "ORM^O01" in info.value.message
    assert "a.yaml" in info.value.message and "b.yaml" in info.value.message


def test_registry_version_follows_the_files(tmp_path: Path) -> None:
    path = write(tmp_path, name="a.yaml")
    before = MappingRegistry.load(tmp_path).version
    path.write_text(path.read_text().replace("NW: schedule", "NW: schedule\n  XO: schedule"))
    assert MappingRegistry.load(tmp_path).version != before


def test_registry_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        MappingRegistry.load(tmp_path / "nope")


# -- HL7 paths checked against the standard (hl7apy) -------------------------------

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


# -- line numbers ----------------------------------------------------------------


def changed_default(tmp_path: Path, name: str, old: str, new: str) -> tuple[Path, int]:
    """A copy of a default mapping file with one change, and the line (1-based) it is on."""
    text = (REPO / "mappings" / name).read_text(encoding="utf-8")
    assert text.count(old) == 1
    text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path, next(i for i, line in enumerate(text.splitlines(), 1) if new in line)


def test_line_of_a_key_deep_in_a_sequence(tmp_path: Path) -> None:
    path, line = changed_default(
        tmp_path, "orders.yaml", "ScheduledStationName: IPC-7", "ScheduledStationNam: IPC-7"
    )
    error = config_error(path)
    assert line > 100  # deep in ScheduledProcedureStepSequence, not its first line
    rule = "attributes.ScheduledProcedureStepSequence.ScheduledStationNam"
    assert error.setting == f"orders.yaml:{line}: {rule}"
    assert "did you mean ScheduledStationName" in error.message


def test_line_of_a_table(tmp_path: Path) -> None:
    path, line = changed_default(tmp_path, "orders.yaml", "  station_by_modality:", "  station:")
    text = path.read_text().replace('    default: ""', "    default: []")
    path.write_text(text)
    error = config_error(path)
    default_line = next(i for i, t in enumerate(text.splitlines(), 1) if "default: []" in t)
    assert error.setting == f"orders.yaml:{default_line}: tables.station.default"
    path.write_text(text.replace("    default: []", "    colums: {}"))
    assert config_error(path).setting == f"orders.yaml:{line}: tables.station"


def test_line_of_a_path_in_a_multi_line_rule(tmp_path: Path) -> None:
    path, line = changed_default(
        tmp_path,
        "orders.yaml",
        "fallback: {generate: uid, seed: [IPC-2, OBR-19]}",
        "fallback: {generate: uid, seed: [IPC-2, OBR-91]}",
    )
    error = config_error(path)
    assert error.setting == f"orders.yaml:{line}: attributes.StudyInstanceUID.fallback.seed"
    assert error.message.startswith(
        "OBR-91 does not exist in ORM^O01 v2.3.1 or OMG^O19/OMI^O23 v2.5.1"
    )


def test_lines_and_paths_in_a_patient_mapping(tmp_path: Path) -> None:
    path, line = changed_default(
        tmp_path, "adt.yaml", "PatientSex: {path: PID-8,", "PatientSex: {path: PID-8.2,"
    )
    error = load_error(path)
    assert error.setting == f"adt.yaml:{line}: attributes.PatientSex"
    assert error.message == "PID-8.2: PID-8 is IS in v2.5.1 (a primitive: no components)"
    path, line = changed_default(
        tmp_path, "adt.yaml", "prior_patient_id: MRG-1", "prior_patient_id: MRG-99"
    )
    error = load_error(path)
    assert error.setting == f"adt.yaml:{line}: prior_patient_id"
    assert error.message.startswith(
        "MRG-99 does not exist in ADT^A40/ADT^A47 v2.5.1 (MRG has 7 fields"
    )


def test_patient_events_take_versions(tmp_path: Path) -> None:
    path, line = changed_default(
        tmp_path, "adt.yaml", "ADT^A08: update ", "ADT^A08: {action: update, versions: ['2.9']} "
    )
    error = load_error(path)
    assert error.setting == f"adt.yaml:{line}: events.ADT^A08.versions"
    assert "'2.9' is not one hl7apy knows" in error.message
    path, _ = changed_default(
        tmp_path,
        "adt.yaml",
        "ADT^A08: update ",
        "ADT^A08: {action: update, versions: ['2.3.1', '2.4']} ",
    )
    spec = load_any_mapping(path)
    assert isinstance(spec, PatientSpec) and spec.events["ADT^A08"] == PatientAction.UPDATE


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_any_mapping(path)
    return info.value


def test_recursive_alias_gives_an_error_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("ORM^O01: OBR", "ORM^O01: &loop [OBR, *loop]"))
    error = config_error(path)
    assert error.setting == "test.yaml:2: message_types.ORM^O01"

"""Loading and validating mapping files; the file-based registry."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.mapping.parser import load_mapping
from broker.mapping.paths import parse_path
from broker.mapping.registry import MappingRegistry
from broker.mapping.spec import ControlAction, ControlRow, SequenceRule, ValueRule

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
    assert error.setting == "test.yaml: attributes.PatientNam"
    assert "did you mean PatientName" in error.message


def test_misspelled_keyword_inside_a_sequence(tmp_path: Path) -> None:
    attributes = "ScheduledProcedureStepSequence:\n  Modalty: OBR-24\n"
    error = config_error(write(tmp_path, attributes))
    assert error.setting == "test.yaml: attributes.ScheduledProcedureStepSequence.Modalty"
    assert "Modality" in error.message


def test_non_sequence_used_as_a_sequence(tmp_path: Path) -> None:
    attributes = GOOD_ATTRIBUTES + "PatientName:\n  CodeValue: OBR-4.1\n"
    error = config_error(write(tmp_path, attributes))
    assert error.setting == "test.yaml: attributes.PatientName"
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
    ],
)
def test_rule_errors(tmp_path: Path, rule: str, setting: str, message: str) -> None:
    error = config_error(write(tmp_path, GOOD_ATTRIBUTES + rule + "\n"))
    assert error.setting == f"test.yaml: {setting}"
    assert message in error.message


def test_missing_sps_sequence(tmp_path: Path) -> None:
    error = config_error(write(tmp_path, "PatientID: PID-3\n"))
    assert "ScheduledProcedureStepSequence is missing" in error.message


def test_top_level_errors(tmp_path: Path) -> None:
    path = tmp_path / "top.yaml"
    path.write_text(write(tmp_path).read_text() + "atributes: {}\n")
    error = config_error(path)
    assert error.setting == "top.yaml: atributes" and "did you mean attributes" in error.message
    path.write_text("message_types: {ORM^O01: OBR}\n")
    assert config_error(path).setting == "top.yaml: order_control"


@pytest.mark.parametrize(
    ("old", "new", "setting", "message"),
    [
        ("ORM^O01: OBR", "ORM-O01: OBR", "message_types.ORM-O01", "CODE^EVENT"),
        ("ORM^O01: OBR", "ORM^O01: obr", "message_types.ORM^O01", "segment id"),
        ("NW: schedule", "NW: scedule", "order_control.NW", "not one of"),
        (
            "NW: schedule",
            "NW/SC: {action: schedule, status: DONE}",
            "order_control.NW/SC",
            "status",
        ),
        (
            "NW: schedule",
            "NW/SC: {action: schedule, when: x}",
            "order_control.NW/SC",
            "unknown key",
        ),
        ("NW: schedule", "new: schedule", "order_control.new", "ORC-1/ORC-5"),
        ("NW: schedule", "PA: ignore", "order_control.PA", "parent/child"),
        ("- PLACER: ORC-2", "- placer: ORC-2", "order_key[1]", "upper-case"),
        ("- PLACER: ORC-2", "- PLACER: ORC-2[*]", "order_key[1]", "[*]"),
        ("- PLACER: ORC-2", "- ORC-2", "order_key[1]", "PREFIX: PATH"),
    ],
)
def test_section_errors(tmp_path: Path, old: str, new: str, setting: str, message: str) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace(old, new))
    error = config_error(path)
    assert error.setting == f"test.yaml: {setting}"
    assert message in error.message


def test_table_errors(tmp_path: Path) -> None:
    error = config_error(write(tmp_path, tables="t: {CT: X}\n"))
    assert error.setting == "test.yaml: tables.t" and "rows" in error.message


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

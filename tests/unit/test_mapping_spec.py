"""Loading and validating mapping files, and the file, line and rule an error names."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.hl7.paths import parse_path
from broker.mapping.parser import load_mapping
from broker.mapping.patient_spec import PatientSpec, load_any_mapping
from broker.mapping.spec import ControlAction, ControlRow, SequenceRule, ValueRule
from broker.worklist.model import PatientAction
from tests.unit.mapping_files import GOOD_ATTRIBUTES, config_error, write
from tests.unit.mapping_helpers import REPO


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

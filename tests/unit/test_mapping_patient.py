"""The patient mapping (mappings/adt.yaml): ADT messages → patient changes, pure, no I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hl7
import pytest
import yaml

from broker.errors import ConfigError, HL7Error, MappingError
from broker.hl7.codes import AckCode, ErrorCode
from broker.mapping.parser import load_mapping
from broker.mapping.patient import map_patient_message
from broker.mapping.patient_spec import PatientSpec, load_any_mapping, parse_any_mapping
from broker.mapping.registry import MappingRegistry
from broker.mapping.spec import MappingSpec
from broker.worklist.model import PatientAction, PatientResult

REPO = Path(__file__).resolve().parents[2]
ADT = REPO / "mappings" / "adt.yaml"


@pytest.fixture(scope="module")
def spec() -> PatientSpec:
    loaded = load_any_mapping(ADT)
    assert isinstance(loaded, PatientSpec)
    return loaded


def msh(event: str, version: str = "2.5.1", structure: str = "") -> str:
    mtype = f"ADT^{event}^{structure}" if structure else f"ADT^{event}"
    return f"MSH|^~\\&|HIS|HOSP|MWL|RAD|20261125083000||{mtype}|ADT-{event}|P|{version}"


def run(spec: PatientSpec, *segments: str) -> PatientResult:
    message: Any = hl7.parse("\r".join(segments))
    event = message.segment("MSH")(9)
    return map_patient_message(message, spec, message_type=f"{event(1)(1)}^{event(1)(2)}")


def mapping_error(spec: PatientSpec, *segments: str) -> MappingError:
    with pytest.raises(MappingError) as info:
        run(spec, *segments)
    assert info.value.ack_code is AckCode.ERROR
    return info.value


PID = "PID|1||PAT-7^^^HOSP^MR~SSN-1^^^USSSA^SS|ALT-7|Nilsson^Åsa^M||19800102|F"
EVN = "EVN|A08|20261125083000"
PV1 = "PV1|1|I|WARD^101^1||||||||||||||||V-77"


def test_default_adt_mapping_lists_the_events(spec: PatientSpec) -> None:
    assert spec.name == "adt"
    for event in ("A01", "A04", "A05", "A08", "A31", "A28"):
        assert spec.events[f"ADT^{event}"] is PatientAction.UPDATE
    assert spec.events["ADT^A40"] is PatientAction.MERGE
    assert spec.events["ADT^A47"] is PatientAction.CHANGE_ID
    assert spec.events["ADT^A10"] is PatientAction.ARRIVED
    for event in ("A02", "A03", "A11", "A13"):
        assert spec.events[f"ADT^{event}"] is PatientAction.IGNORE
    assert [str(p) for p in spec.prior_patient_id] == ["MRG-1"]


def test_a08_v251_gives_the_carried_patient_attributes(spec: PatientSpec) -> None:
    result = run(spec, msh("A08", structure="ADT_A01"), EVN, PID, PV1)
    assert (result.action, result.mapping_name, result.mapping_version) == (
        PatientAction.UPDATE,
        "adt",
        spec.version,
    )
    (change,) = result.changes
    assert (change.patient_id, change.prior_id) == ("PAT-7", "")
    ds = change.attributes
    assert ds.PatientID == "PAT-7"
    assert ds.IssuerOfPatientID == "HOSP"
    assert str(ds.PatientName) == "Nilsson^Åsa^M"
    assert (ds.PatientBirthDate, ds.PatientSex) == ("19800102", "F")
    assert ds.OtherPatientIDs == "ALT-7"
    # Visit attributes are not in the default mapping: an ADT never moves another visit's entries.
    assert "CurrentPatientLocation" not in ds and "AdmissionID" not in ds


def test_empty_fields_are_not_carried(spec: PatientSpec) -> None:
    (change,) = run(spec, msh("A31", structure="ADT_A05"), "PID|||PAT-7||Nilsson^Åsa").changes
    assert set(change.attributes.dir()) == {"PatientID", "PatientName"}


def test_explicit_null_does_not_erase(spec: PatientSpec) -> None:
    (change,) = run(spec, msh("A08"), 'PID|||PAT-7||""||""|""').changes
    assert set(change.attributes.dir()) == {"PatientID"}


def test_a04_in_v23_and_a01_in_v24(spec: PatientSpec) -> None:
    a04 = run(spec, msh("A04", "2.3"), "EVN|A04", "PID|||12345||DOE^JANE||19700101|F", "PV1||O")
    assert a04.changes[0].attributes.PatientSex == "F"
    a01 = run(spec, msh("A01", "2.4", "ADT_A01"), "PID||99^^|2216506^||Duck^Don^^^MR.||19720227|M")
    assert a01.changes[0].patient_id == "2216506"
    assert str(a01.changes[0].attributes.PatientName) == "Duck^Don^^MR."


def test_missing_pid3_is_ae_101_at_pid3(spec: PatientSpec) -> None:
    error = mapping_error(spec, msh("A08"), "PID|||||Doe^John")
    assert (error.err_code, error.location) == (ErrorCode.REQUIRED_FIELD_MISSING, "PID-3")


def test_no_pid_segment_is_ae_100(spec: PatientSpec) -> None:
    error = mapping_error(spec, msh("A08"), EVN)
    assert (error.err_code, error.location) == (ErrorCode.SEGMENT_SEQUENCE_ERROR, "PID")


def test_a40_with_two_pid_mrg_pairs(spec: PatientSpec) -> None:
    result = run(
        spec,
        msh("A40", structure="ADT_A39"),
        "EVN|A40|20261125",
        "PID|1||NEW-1^^^HOSP||Smith^Lucy",
        "PD1|||||||||||Y",
        "MRG|OLD-1^^^HOSP",
        "PV1||O",
        "PID|2||NEW-2^^^HOSP||Jones^Tom",
        "MRG|OLD-2^^^HOSP|||ACC-9",
    )
    assert result.action is PatientAction.MERGE
    assert [(c.patient_id, c.prior_id) for c in result.changes] == [
        ("NEW-1", "OLD-1"),
        ("NEW-2", "OLD-2"),
    ]
    assert str(result.changes[1].attributes.PatientName) == "Jones^Tom"


def test_a47_change_of_identifier(spec: PatientSpec) -> None:
    result = run(spec, msh("A47", structure="ADT_A30"), "PID|||NEW-9||X^Y", "MRG|OLD-9")
    assert result.action is PatientAction.CHANGE_ID
    assert [(c.patient_id, c.prior_id) for c in result.changes] == [("NEW-9", "OLD-9")]


def test_a40_without_mrg1_is_ae_101_at_mrg1(spec: PatientSpec) -> None:
    error = mapping_error(spec, msh("A40"), "PID|||NEW-1", "MRG||||ACC-1")
    assert (error.err_code, error.location) == (ErrorCode.REQUIRED_FIELD_MISSING, "MRG-1")
    assert "MRG-1" in error.text


def test_a40_pid_without_its_mrg_is_ae_100(spec: PatientSpec) -> None:
    error = mapping_error(spec, msh("A40"), "PID|||NEW-1", "MRG|OLD-1", "PID|||NEW-2")
    assert (error.err_code, error.location) == (ErrorCode.SEGMENT_SEQUENCE_ERROR, "MRG")


def test_overlong_prior_id_is_ae_104(spec: PatientSpec) -> None:
    error = mapping_error(spec, msh("A47"), "PID|||NEW-1", f"MRG|{'9' * 65}")
    assert (error.err_code, error.location) == (ErrorCode.VALUE_TOO_LONG, "MRG-1")


def test_ignored_event_reads_nothing(spec: PatientSpec) -> None:
    result = run(spec, msh("A02"), "EVN|A02")  # no PID at all: nothing is read
    assert (result.action, result.changes) == (PatientAction.IGNORE, ())


def test_a10_reads_the_patient(spec: PatientSpec) -> None:
    result = run(spec, msh("A10", structure="ADT_A09"), "PID|||PAT-7", "PV1||O")
    assert result.action is PatientAction.ARRIVED
    assert [c.patient_id for c in result.changes] == ["PAT-7"]


def test_event_the_mapping_does_not_handle_is_ar_201(spec: PatientSpec) -> None:
    with pytest.raises(HL7Error) as info:
        run(spec, msh("A99"), PID)
    assert (info.value.ack_code, info.value.err_code) == (
        AckCode.REJECT,
        ErrorCode.UNSUPPORTED_EVENT_CODE,
    )


# -- the file: validation and the registry --------------------------------------


def adt_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(ADT.read_text(encoding="utf-8"))
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def parse(data: dict[str, Any]) -> MappingSpec | PatientSpec:
    spec = parse_any_mapping(data, source="adt.yaml", version="x", default_name="adt")
    assert isinstance(spec, MappingSpec | PatientSpec)
    return spec


def config_error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse(data)
    return str(info.value)


def test_patient_id_must_be_required() -> None:
    text = config_error(adt_data(attributes={"PatientID": "PID-3", "PatientName": "PID-5"}))
    assert "attributes.PatientID" in text


def test_order_attributes_are_refused() -> None:
    attributes = {"PatientID": {"path": "PID-3", "required": True}, "AccessionNumber": "PID-18"}
    assert "AccessionNumber" in config_error(adt_data(attributes=attributes))


def test_merge_needs_prior_patient_id() -> None:
    assert "prior_patient_id" in config_error(adt_data(prior_patient_id=None))


def test_unknown_action_and_bad_event_name() -> None:
    assert "events.ADT^A08" in config_error(adt_data(events={"ADT^A08": "upsert"}))
    assert "events.A08" in config_error(adt_data(events={"A08": "update"}))


def test_misspelled_top_key_is_named() -> None:
    assert "did you mean" in config_error(adt_data(event={"ADT^A08": "update"}))


def test_visit_attributes_can_be_mapped() -> None:
    attributes = {"PatientID": {"path": "PID-3", "required": True}, "AdmissionID": "PV1-19"}
    custom = parse(adt_data(attributes=attributes))
    assert isinstance(custom, PatientSpec)
    (change,) = run(custom, msh("A08"), PID, PV1).changes
    assert change.attributes.AdmissionID == "V-77"


def test_orders_file_rejects_another_kind() -> None:
    data = yaml.safe_load((REPO / "mappings" / "orders.yaml").read_text(encoding="utf-8"))
    data["kind"] = "patients"
    assert "kind" in config_error(data)


def test_registry_holds_both_kinds(tmp_path: Path) -> None:
    registry = MappingRegistry.load(REPO / "mappings")
    assert isinstance(registry.for_message("ORM^O01"), MappingSpec)
    assert registry.for_message("ADT^A08") is None
    assert isinstance(registry.for_patient_message("ADT^A08"), PatientSpec)
    assert registry.for_patient_message("ORM^O01") is None
    assert {"ADT^A40", "ADT^A47", "OMI^O23"} <= registry.supported_types()
    assert "ADT^A99" not in registry.supported_types()
    orders = load_mapping(REPO / "mappings" / "orders.yaml")
    clash = parse(adt_data(events={"ORM^O01": "update"}))
    with pytest.raises(ConfigError, match="claimed by both"):
        MappingRegistry([orders, clash])

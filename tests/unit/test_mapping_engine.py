"""The mapping engine with the default mapping (mappings/orders.yaml) and small custom ones."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import hl7
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from broker.errors import ConfigError, HL7Error, MappingError
from broker.hl7.codes import AckCode, ErrorCode
from broker.hl7.message import MessageDecoder, peek_header
from broker.mapping.engine import map_message
from broker.mapping.parser import load_mapping, parse_mapping
from broker.mapping.registry import MappingRegistry
from broker.mapping.spec import MappingSpec
from broker.worklist.model import MappingResult, OrderAction, OrderChange, entry_dataset
from tests.corpus import corpus_path, hl7_corpus_messages
from tests.messages import own_messages

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec() -> MappingSpec:
    return load_mapping(REPO / "mappings" / "orders.yaml")


def parse(*segments: str) -> Any:
    return hl7.parse("\r".join(segments))


@dataclasses.dataclass(frozen=True)
class DatasetChange(OrderChange):
    """An order change with each entry as a pydicom Dataset."""

    entries: tuple[Dataset, ...] = ()


@dataclasses.dataclass(frozen=True)
class DatasetResult(MappingResult):
    """A mapping result with each entry as a pydicom Dataset."""

    changes: tuple[DatasetChange, ...]


def run(spec: MappingSpec, *segments: str) -> DatasetResult:
    message = parse(*segments)
    event = message.segment("MSH")(9)
    return as_datasets(map_message(message, spec, message_type=f"{event(1)(1)}^{event(1)(2)}"))


def as_datasets(result: MappingResult) -> DatasetResult:
    """The result with each entry as a pydicom Dataset (the engine writes DICOM JSON)."""
    changes = tuple(
        DatasetChange(
            order_key=c.order_key,
            action=c.action,
            entries=tuple(entry_dataset(e) for e in c.entries),
            status=c.status,
        )
        for c in result.changes
    )
    return DatasetResult(
        changes=changes,
        mapping_name=result.mapping_name,
        mapping_version=result.mapping_version,
        truncations=result.truncations,
    )


def mapping_error(spec: MappingSpec, *segments: str) -> MappingError:
    with pytest.raises(MappingError) as info:
        run(spec, *segments)
    assert info.value.ack_code is AckCode.ERROR
    return info.value


def sps(entry: Dataset) -> Dataset:
    (item,) = entry.ScheduledProcedureStepSequence
    assert isinstance(item, Dataset)
    return item


# An IHE RAD-4 ORM^O01 in HL7 v2.3.1 with the ZDS segment (like the IHE MESA test messages).
ORM_MSH = "MSH|^~\\&|RIS|RADIOLOGY|MWL|HOSP|20261125083000||ORM^O01|ORM-1|P|2.3.1"
ORM_PID = "PID|||PAT-1001^^^HOSP||M\u00fcller^J\u00fcrgen^K^^Dr.||19650412|M"
ORM_PV1 = "PV1||O|RAD^ROOM1^1|||||1234^Schmidt^Anna^^^Dr.|||||||||||V-5001"
ORM_ORC = "ORC|{control}|PLC-1001^RIS|FIL-1001^RIS||SC||1^once^^20261126093000^^S"
ORM_OBR = (
    "OBR|1|PLC-1001^RIS|FIL-1001^RIS|CTHEAD^CT head^LOCAL^CTHEAD-P1^Head protocol^LOCAL"
    "||||||||||||1234^Schmidt^Anna^^^Dr.||{accession}|RP-1001|SPS-1001||||CT|||"
    "1^once^^20261126093000^^S|||WALK||||4711&Weber&Lena"
)
ORM_ZDS = "ZDS|1.2.826.0.1.3680043.10.543.1001^RIS^Application^DICOM"


def orm(
    control: str = "NW", accession: str = "ACC-1001", pid: str = ORM_PID, zds: bool = True
) -> list[str]:
    segments = [ORM_MSH, pid, ORM_PV1, ORM_ORC.format(control=control)]
    segments.append(ORM_OBR.format(accession=accession))
    return [*segments, ORM_ZDS] if zds else segments


def test_orm_o01_v231_with_zds(spec: MappingSpec) -> None:
    result = run(spec, *orm())
    assert (result.mapping_name, result.mapping_version) == ("orders", spec.version)
    (change,) = result.changes
    assert change.order_key == "PLACER:PLC-1001^RIS"
    assert change.action is OrderAction.SCHEDULE
    (entry,) = change.entries
    assert entry.PatientID == "PAT-1001"
    assert entry.IssuerOfPatientID == "HOSP"
    assert str(entry.PatientName) == "M\u00fcller^J\u00fcrgen^K^Dr."
    assert entry.PatientBirthDate == "19650412"
    assert entry.PatientSex == "M"
    assert entry.CurrentPatientLocation == "RAD"
    assert str(entry.ReferringPhysicianName) == "Schmidt^Anna^^Dr."
    assert entry.AdmissionID == "V-5001"
    assert entry.PlacerOrderNumberImagingServiceRequest == "PLC-1001"
    assert entry.FillerOrderNumberImagingServiceRequest == "FIL-1001"
    assert entry.AccessionNumber == "ACC-1001"
    assert entry.RequestedProcedureID == "RP-1001"
    assert entry.RequestedProcedureDescription == "CT head"
    (code,) = entry.RequestedProcedureCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
        "CTHEAD",
        "LOCAL",
        "CT head",
    )
    assert entry.RequestedProcedurePriority == "STAT"
    assert entry.PatientTransportArrangements == "WALK"
    assert entry.StudyInstanceUID == "1.2.826.0.1.3680043.10.543.1001"
    step = sps(entry)
    assert step.ScheduledProcedureStepID == "SPS-1001"
    assert step.Modality == "CT"
    assert step.ScheduledProcedureStepStartDate == "20261126"
    assert step.ScheduledProcedureStepStartTime == "093000"
    assert str(step.ScheduledPerformingPhysicianName) == "Weber^Lena"
    assert step.ScheduledProcedureStepDescription == "Head protocol"
    (protocol,) = step.ScheduledProtocolCodeSequence
    assert (protocol.CodeValue, protocol.CodingSchemeDesignator) == ("CTHEAD-P1", "LOCAL")
    assert step.ScheduledProcedureStepStatus == "SCHEDULED"
    assert step.ScheduledStationAETitle == ""  # none sent, and the default table invents none


OMI = [
    "MSH|^~\\&|RIS|RADIOLOGY|MWL|HOSP|20261125090000||OMI^O23^OMI_O23|OMI-1|P|2.5.1",
    "PID|||PAT-2001^^^HOSP||\u00d8verg\u00e5rd^Zo\u00eb^\u00c5sa||19801224|F",
    "PV1||I|WARD3^12^1",
    "ORC|NW|PLC-2001^RIS|FIL-2001^RIS||SC",
    "TQ1|||||||20261126101500||R^Routine^HL70485",
    "OBR|1|PLC-2001^RIS|FIL-2001^RIS|MRKNEE^MR knee left^LOCAL||||||||||||5678^Berg^Ola^^^Dr.",
    "IPC|ACC-2001|RP-2001|1.2.826.0.1.3680043.10.543.2001|SPS-2001A|MR|MRKNEE-T1^Knee T1^LOCAL"
    "|MR ROOM 1|RAD-MR|MR1~MR1B",
    "IPC|ACC-2001|RP-2001|1.2.826.0.1.3680043.10.543.2001|SPS-2001B|MR|MRKNEE-T2^Knee T2^LOCAL"
    "|MR ROOM 2|RAD-MR|MR2",
]


def test_omi_o23_two_ipc_give_two_entries(spec: MappingSpec) -> None:
    (change,) = run(spec, *OMI).changes
    assert change.order_key == "PLACER:PLC-2001^RIS"
    first, second = change.entries
    for entry in (first, second):
        assert entry.PatientID == "PAT-2001"
        assert str(entry.PatientName) == "\u00d8verg\u00e5rd^Zo\u00eb^\u00c5sa"
        assert entry.AccessionNumber == "ACC-2001"
        assert entry.StudyInstanceUID == "1.2.826.0.1.3680043.10.543.2001"
        assert entry.RequestedProcedurePriority == "ROUTINE"
        assert str(entry.RequestingPhysician) == "Berg^Ola^^Dr."
        assert sps(entry).ScheduledProcedureStepStartDate == "20261126"
        assert sps(entry).ScheduledProcedureStepStartTime == "101500"
    assert [sps(e).ScheduledProcedureStepID for e in (first, second)] == ["SPS-2001A", "SPS-2001B"]
    assert [sps(e).ScheduledStationName for e in (first, second)] == ["MR ROOM 1", "MR ROOM 2"]
    assert list(sps(first).ScheduledStationAETitle) == ["MR1", "MR1B"]  # IPC-9 repetitions: VM 2
    assert sps(second).ScheduledStationAETitle == "MR2"
    assert sps(second).ScheduledProtocolCodeSequence[0].CodeValue == "MRKNEE-T2"
    assert sps(first).ScheduledProcedureStepLocation == "RAD-MR"


def test_entries_are_dicom_json(spec: MappingSpec) -> None:
    for entry in run(spec, *OMI).changes[0].entries:
        assert Dataset.from_json(entry.to_json_dict()) == entry


def test_cancel_carries_no_entries_and_needs_no_patient(spec: MappingSpec) -> None:
    (change,) = run(spec, *orm("CA", pid="PID|||||Doe^Jane")).changes
    assert change.action is OrderAction.SET_STATUS
    assert change.status == "CANCELED"
    assert change.order_key == "PLACER:PLC-1001^RIS"
    assert change.entries == ()


@pytest.mark.parametrize(("control", "status"), [("DC", "DISCONTINUED"), ("OC", "CANCELED")])
def test_other_cancel_codes(spec: MappingSpec, control: str, status: str) -> None:
    (change,) = run(spec, *orm(control)).changes
    assert (change.action, change.status) == (OrderAction.SET_STATUS, status)


@pytest.mark.parametrize(
    ("orc1", "orc5", "action", "status"),
    [
        ("NW", "SC", OrderAction.SCHEDULE, "SCHEDULED"),
        ("NW", "", OrderAction.SCHEDULE, "SCHEDULED"),
        ("XO", "CM", OrderAction.SCHEDULE, "COMPLETED"),
        ("SC", "IP", OrderAction.SCHEDULE, "STARTED"),
        ("SC", "CM", OrderAction.SCHEDULE, "COMPLETED"),
        ("CA", "CA", OrderAction.SET_STATUS, "CANCELED"),
        ("HD", "HD", OrderAction.CANCEL, "SCHEDULED"),
        ("RL", "SC", OrderAction.SCHEDULE, "SCHEDULED"),
    ],
)
def test_order_control_and_order_status_give_the_step_status(
    spec: MappingSpec, orc1: str, orc5: str, action: OrderAction, status: str
) -> None:
    segments = orm(orc1)
    segments[3] = segments[3].replace("||SC||", f"||{orc5}||")
    (change,) = run(spec, *segments).changes
    assert (change.action, change.status) == (action, status)
    for entry in change.entries:
        assert entry.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == status


@pytest.mark.parametrize(("orc1", "orc5"), [("NW", "CM"), ("SC", ""), ("XO", "IP")])
def test_combination_without_a_row_is_refused_naming_orc5(
    spec: MappingSpec, orc1: str, orc5: str
) -> None:
    segments = orm(orc1)
    segments[3] = segments[3].replace("||SC||", f"||{orc5}||")
    error = mapping_error(spec, *segments)
    assert (error.err_code, error.location) == (ErrorCode.TABLE_VALUE_NOT_FOUND, "ORC-5")
    assert "ORC-1/ORC-5" in error.text


def test_xo_updates_the_same_order_in_place(spec: MappingSpec) -> None:
    new = run(spec, *orm("NW")).changes[0]
    changed = run(spec, *orm("XO", accession="ACC-1001-B")).changes[0]
    assert changed.action is OrderAction.SCHEDULE
    assert changed.order_key == new.order_key
    assert changed.entries[0].AccessionNumber == "ACC-1001-B"


def test_missing_patient_id(spec: MappingSpec) -> None:
    error = mapping_error(spec, *orm(pid="PID|||||Doe^Jane||19650412|F"))
    assert (error.err_code, error.location) == (ErrorCode.REQUIRED_FIELD_MISSING, "PID-3")
    assert error.text == "PID-3 (PatientID) is empty"


def test_blank_patient_id_is_missing(spec: MappingSpec) -> None:
    error = mapping_error(spec, *orm(pid="PID||| ^^^HOSP||Doe^Jane"))
    assert (error.err_code, error.location) == (ErrorCode.REQUIRED_FIELD_MISSING, "PID-3")


def test_unknown_order_control(spec: MappingSpec) -> None:
    error = mapping_error(spec, *orm("ZZ"))
    assert (error.err_code, error.location) == (ErrorCode.TABLE_VALUE_NOT_FOUND, "ORC-1")
    assert "'ZZ'" in error.text


def test_empty_order_control(spec: MappingSpec) -> None:
    error = mapping_error(spec, *orm(""))
    assert (error.err_code, error.location) == (ErrorCode.REQUIRED_FIELD_MISSING, "ORC-1")


def test_too_long_accession_is_never_truncated(spec: MappingSpec) -> None:
    error = mapping_error(spec, *orm(accession="A" * 17))
    assert (error.err_code, error.location) == (ErrorCode.VALUE_TOO_LONG, "OBR-18")
    assert "AccessionNumber" in error.text and "16" in error.text


def test_invalid_birth_date(spec: MappingSpec) -> None:
    error = mapping_error(spec, *orm(pid="PID|||P1||Doe^Jane||Aug 15, 1942|F"))
    assert (error.err_code, error.location) == (ErrorCode.DATA_TYPE_ERROR, "PID-7")
    assert "1942" not in error.text  # error texts carry no patient data


def test_unknown_sex_code(spec: MappingSpec) -> None:
    error = mapping_error(spec, *orm(pid="PID|||P1||Doe^Jane||19650412|X"))
    assert (error.err_code, error.location) == (ErrorCode.TABLE_VALUE_NOT_FOUND, "PID-8")


def test_backslash_cannot_go_into_a_lo(spec: MappingSpec) -> None:
    error = mapping_error(spec, *orm(pid="PID|||P1\\E\\2||Doe^Jane"))
    assert (error.err_code, error.location) == (ErrorCode.DATA_TYPE_ERROR, "PID-3")


def test_generated_study_uid_is_deterministic(spec: MappingSpec) -> None:
    first = run(spec, *orm(zds=False)).changes[0].entries[0].StudyInstanceUID
    again = run(spec, *orm("XO", zds=False)).changes[0].entries[0].StudyInstanceUID
    segments = orm(zds=False)
    segments[3] = segments[3].replace("PLC-1001", "PLC-9999")
    other = run(spec, *segments).changes[0].entries[0].StudyInstanceUID
    assert first == again != other
    assert re.fullmatch(r"2\.25\.[1-9]\d*", first) and len(first) <= 64


def test_no_orc(spec: MappingSpec) -> None:
    error = mapping_error(spec, ORM_MSH, ORM_PID, ORM_OBR.format(accession="A1"))
    assert (error.err_code, error.location) == (ErrorCode.SEGMENT_SEQUENCE_ERROR, "ORC")


def test_no_order_key(spec: MappingSpec) -> None:
    error = mapping_error(spec, ORM_MSH, ORM_PID, "ORC|NW", "OBR|1|||CT^CT")
    assert (error.err_code, error.location) == (ErrorCode.REQUIRED_FIELD_MISSING, "ORC-2")
    assert "ORC-2, ORC-3, OBR-2, OBR-3" in error.text


def test_order_key_namespace_falls_back_to_universal_id(spec: MappingSpec) -> None:
    segments = orm()
    segments[3] = "ORC|NW|OPN101^^1.2.250.1.748.12^ISO|"
    assert run(spec, *segments).changes[0].order_key == "PLACER:OPN101^1.2.250.1.748.12"


def test_scheduling_group_without_obr(spec: MappingSpec) -> None:
    error = mapping_error(spec, ORM_MSH, ORM_PID, ORM_ORC.format(control="NW"), "ODS|D||DIET")
    assert (error.err_code, error.location) == (ErrorCode.SEGMENT_SEQUENCE_ERROR, "OBR")


def test_omi_group_without_ipc_uses_obr(spec: MappingSpec) -> None:
    segments = [OMI[0], *orm()[1:]]
    (entry,) = run(spec, *segments).changes[0].entries
    assert sps(entry).ScheduledProcedureStepID == "SPS-1001"


def test_several_orders_and_merged_groups(spec: MappingSpec) -> None:
    second_orc = ORM_ORC.format(control="NW").replace("1001", "1002")
    second_obr = ORM_OBR.format(accession="ACC-1002").replace("1001", "1002")
    repeat_obr = ORM_OBR.format(accession="ACC-1002").replace("SPS-1001", "SPS-1002B")
    repeat_obr = repeat_obr.replace("PLC-1001", "PLC-1002")
    segments = [*orm(), second_orc, second_obr, second_orc, repeat_obr]
    first, second = run(spec, *segments).changes
    assert first.order_key == "PLACER:PLC-1001^RIS" and len(first.entries) == 1
    assert second.order_key == "PLACER:PLC-1002^RIS"
    assert [sps(e).ScheduledProcedureStepID for e in second.entries] == ["SPS-1002", "SPS-1002B"]


def test_empty_code_sequence_is_left_out(spec: MappingSpec) -> None:
    segments = orm()
    segments[4] = "OBR|1|PLC-1001^RIS|FIL-1001^RIS|||||||||||||||ACC|RP|SPS||||CT"
    (entry,) = run(spec, *segments).changes[0].entries
    assert "RequestedProcedureCodeSequence" not in entry
    assert "ScheduledProtocolCodeSequence" not in sps(entry)
    assert entry.RequestedProcedureDescription == ""


def test_unsupported_message_type(spec: MappingSpec) -> None:
    with pytest.raises(HL7Error) as info:
        map_message(parse(*orm()), spec, message_type="ADT^A01")
    assert (info.value.ack_code, info.value.err_code) == (
        AckCode.REJECT,
        ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
    )


def custom(**overrides: object) -> MappingSpec:
    data: dict[str, object] = {
        "message_types": {"ORM^O01": "OBR", "OMI^O23": "OBR"},  # IPC paths: OMI^O23 has IPC
        "order_control": {"NW": "schedule", "SR": "ignore"},
        "order_key": [{"FILLER": "ORC-3.1"}],
        "tables": {"station": {"rows": {"CT": "CT_AE_1"}}},
        "attributes": {
            "PatientID": {"path": "PID-3", "default": "UNKNOWN"},
            "ScheduledProcedureStepSequence": {
                "Modality": "OBR-24",
                "ScheduledStationAETitle": {
                    "path": "IPC-9[*]",
                    "fallback": {"path": "OBR-24", "table": "station"},
                },
            },
        },
    }
    data.update(overrides)
    return parse_mapping(data, source="custom.yaml", version="test", default_name="custom")


def test_custom_mapping_table_default_and_key() -> None:
    (change,) = run(custom(), *orm(pid="PID|||||Doe")).changes
    assert change.order_key == "FILLER:FIL-1001"
    (entry,) = change.entries
    assert entry.PatientID == "UNKNOWN"
    assert sps(entry).ScheduledStationAETitle == "CT_AE_1"
    assert sps(entry).ScheduledProcedureStepStatus == "SCHEDULED"  # set even when not mapped
    result = run(custom(), *orm())
    assert (result.mapping_name, result.mapping_version) == ("custom", "test")


def test_custom_table_without_row_or_default() -> None:
    segments = orm()
    segments[4] = segments[4].replace("|CT|", "|MR|")
    error = mapping_error(custom(), *segments)
    assert (error.err_code, error.location) == (ErrorCode.TABLE_VALUE_NOT_FOUND, "OBR-24")
    assert "'MR'" in error.text and "station" in error.text


def test_ignored_order_control() -> None:
    assert run(custom(), *orm("SR")).changes == ()


# -- the real-world corpus -------------------------------------------------------


def test_every_own_order_maps_or_raises_hl7_error() -> None:
    seen, mapped = orders_map_or_raise_hl7_errors(own_messages())
    assert seen >= 40 and mapped >= 35, (seen, mapped)


@pytest.mark.corpus
def test_every_corpus_order_maps_or_raises_hl7_error() -> None:
    seen, mapped = orders_map_or_raise_hl7_errors(hl7_corpus_messages())
    assert seen >= 30 and mapped >= 10, (seen, mapped)


def orders_map_or_raise_hl7_errors(messages: list[tuple[str, bytes]]) -> tuple[int, int]:
    """Every order maps, or is refused with an HL7Error; anything else fails. Counts."""
    registry = MappingRegistry.load(REPO / "mappings")
    seen = mapped = 0
    for name, raw in messages:
        header = peek_header(raw)
        if header is None or header["message_type"][:3] not in {"ORM", "OMI", "OMG"}:
            continue
        seen += 1
        try:
            parsed = MessageDecoder("UNICODE UTF-8").decode(raw)
            spec = registry.for_message(parsed.message_type)
            if spec is None:  # e.g. OMI^Z23: the router answers AR 201
                continue
            result = as_datasets(
                map_message(parsed.segments, spec, message_type=parsed.message_type)
            )
        except HL7Error:
            continue
        except Exception as e:  # anything but HL7Error is a bug: the point of the test
            pytest.fail(f"{name}: {type(e).__name__}: {e}")
        mapped += 1
        for change in result.changes:
            for entry in change.entries:
                assert len(entry.ScheduledProcedureStepSequence) == 1, name
                assert entry.to_json_dict(), name
                assert_values_as_pydicom_converts_them(entry, name)
    return seen, mapped


def assert_values_as_pydicom_converts_them(ds: Dataset, name: str) -> None:
    """Every element holds what pydicom's own conversion of its value would hold."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                assert_values_as_pydicom_converts_them(item, name)
            continue
        converted = DataElement(elem.tag, elem.VR, elem.value).value
        assert type(elem.value) is type(converted), (name, elem.keyword)
        assert elem.value == converted, (name, elem.keyword)


# -- parent/child orders and all-or-nothing messages -------------------------------


@pytest.mark.parametrize("control", ["PA", "CH"])
def test_parent_or_child_group_refuses_the_whole_message(spec: MappingSpec, control: str) -> None:
    child_orc = ORM_ORC.format(control=control).replace("1001", "1002")
    child_obr = ORM_OBR.format(accession="ACC-1002").replace("1001", "1002")
    error = mapping_error(spec, *orm(), child_orc, child_obr)  # the NW group first is fine
    assert (error.err_code, error.location) == (ErrorCode.TABLE_VALUE_NOT_FOUND, "ORC-1")
    assert f"order group 2 has ORC-1 {control}" in error.text
    assert "parent/child" in error.text and "nothing was applied" in error.text


def test_parent_child_is_refused_before_another_groups_error(spec: MappingSpec) -> None:
    bad_first = orm(pid="PID|||||Doe^Jane")  # no PID-3: would fail in group 1
    error = mapping_error(spec, *bad_first, ORM_ORC.format(control="PA"), ORM_OBR)
    assert error.location == "ORC-1" and "parent/child" in error.text


def test_second_group_failing_fails_the_message(spec: MappingSpec) -> None:
    second_orc = ORM_ORC.format(control="NW").replace("1001", "1002")
    second_obr = ORM_OBR.format(accession="A" * 17).replace("1001", "1002")  # SH: 16 at most
    error = mapping_error(spec, *orm(), second_orc, second_obr)
    assert (error.err_code, error.location) == (ErrorCode.VALUE_TOO_LONG, "OBR-18")


@pytest.mark.corpus
def test_ssmix2_omg_with_parent_and_children_is_refused() -> None:
    raw = corpus_path("hl7", "ssmix2-iso2022jp", "OMG-01_OMG_O19.hl7").read_bytes()
    parsed = MessageDecoder("UNICODE UTF-8").decode(raw.replace(b"\r\n", b"\r"))
    spec = MappingRegistry.load(REPO / "mappings").for_message(parsed.message_type)
    assert spec is not None
    with pytest.raises(MappingError) as info:
        map_message(parsed.segments, spec, message_type=parsed.message_type)
    assert info.value.location == "ORC-1" and "parent/child" in info.value.text


# -- identifier policies (IHE RAD TF-2 RAD-4/13; RAD-5: RP ID and SPS ID are type 1) ----------

GENERATED_ID = re.compile(r"G[A-Z2-7]{15}")


def without_ids(segments: list[str]) -> list[str]:
    """The ORM with OBR-19 (RP ID) and OBR-20 (SPS ID) empty."""
    return [s.replace("|RP-1001|SPS-1001|", "||") for s in segments]


def ids(result: DatasetResult) -> tuple[str, str]:
    entry = result.changes[0].entries[0]
    return entry.RequestedProcedureID, sps(entry).ScheduledProcedureStepID


def test_identifiers_sent_by_the_ris_are_taken(spec: MappingSpec) -> None:
    assert ids(run(spec, *orm())) == ("RP-1001", "SPS-1001")


def test_missing_rp_and_sps_ids_are_generated_deterministically(spec: MappingSpec) -> None:
    rp, step = ids(run(spec, *without_ids(orm())))
    assert GENERATED_ID.fullmatch(rp) and GENERATED_ID.fullmatch(step) and rp != step
    assert ids(run(spec, *without_ids(orm()))) == (rp, step)  # a resend
    assert ids(run(spec, *without_ids(orm("XO", accession="ACC-1001-B")))) == (rp, step)
    other = [s.replace("PLC-1001", "PLC-9999") for s in without_ids(orm())]
    other_rp, other_step = ids(run(spec, *other))
    assert other_rp != rp and other_step != step


def test_generated_sps_ids_differ_between_steps_of_one_order(spec: MappingSpec) -> None:
    omi = [s.replace("|SPS-2001A|", "||").replace("|SPS-2001B|", "||") for s in OMI]
    (change,) = run(spec, *omi).changes
    steps = [sps(e).ScheduledProcedureStepID for e in change.entries]
    assert all(GENERATED_ID.fullmatch(s) for s in steps) and len(set(steps)) == 2
    assert {e.RequestedProcedureID for e in change.entries} == {"RP-2001"}  # taken


def test_empty_accession_number_is_allowed_by_default(spec: MappingSpec) -> None:
    entry = run(spec, *orm(accession="")).changes[0].entries[0]
    assert entry.get("AccessionNumber", "") == ""


def accession_policy(policy: dict[str, object]) -> MappingSpec:
    rules = {"path": ["IPC-1", "OBR-18"], **policy}
    attributes = {
        "PatientID": "PID-3",
        "AccessionNumber": rules,
        "ScheduledProcedureStepSequence": {"Modality": "OBR-24"},
    }
    return custom(attributes=attributes)


def test_required_accession_number_is_refused_with_101() -> None:
    error = mapping_error(accession_policy({"required": True}), *orm(accession=""))
    assert (error.err_code, error.location) == (ErrorCode.REQUIRED_FIELD_MISSING, "IPC-1")
    assert "AccessionNumber" in error.text


def test_generated_accession_number_only_when_absent() -> None:
    spec = accession_policy({"fallback": {"generate": "id"}})
    generated = run(spec, *orm(accession="")).changes[0].entries[0].AccessionNumber
    assert GENERATED_ID.fullmatch(generated)
    assert run(spec, *orm()).changes[0].entries[0].AccessionNumber == "ACC-1001"


def test_generate_id_needs_room_for_16_characters() -> None:
    attributes = {
        "PatientID": "PID-3",
        "StudyInstanceUID": {"generate": "id"},
        "ScheduledProcedureStepSequence": {"Modality": "OBR-24"},
    }
    with pytest.raises(ConfigError, match="generate id"):
        custom(attributes=attributes)

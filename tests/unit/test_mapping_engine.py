"""The mapping engine with the default mapping (mappings/orders.yaml) and small custom ones."""

from __future__ import annotations

import re

import pytest
from pydicom.dataset import Dataset

from broker.errors import HL7Error, MappingError
from broker.hl7.codes import AckCode, ErrorCode
from broker.hl7.message import MessageDecoder
from broker.mapping.engine import map_message
from broker.mapping.registry import MappingRegistry
from broker.mapping.spec import MappingSpec
from broker.worklist.model import OrderAction
from tests.corpus import corpus_path
from tests.unit.mapping_helpers import (
    OMI,
    ORM_MSH,
    ORM_OBR,
    ORM_ORC,
    ORM_PID,
    REPO,
    custom,
    mapping_error,
    orm,
    parse,
    run,
    sps,
)


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

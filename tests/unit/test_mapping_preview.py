"""The mapping preview: real mappings, real messages, a per-attribute trace of every value."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from pydicom.dataset import Dataset

from broker.hl7.codes import AckCode, ErrorCode
from broker.hl7.message import MessageDecoder
from broker.mapping.registry import MappingRegistry
from broker.services.preview import Decoding, EntryPreview, Preview, preview, render
from broker.worklist.model import OrderAction, PatientAction
from tests.unit.mapping_helpers import DECODER, REPO, row

DATA = REPO / "tests" / "data"


def orm(*, obr: str | None = None, zds: bool = True, pid3: str = "PAT-1001^^^HOSP") -> bytes:
    """An ORM^O01 like tests/data/orm_o01_nw_latin1.hl7 (UTF-8), with parts replaced."""
    segments = [
        "MSH|^~\\&|RIS|RADIOLOGY|MWL_BROKER|HOSPITAL|20261125083000||ORM^O01|ORM-7|P|2.3.1",
        f"PID|||{pid3}||Müller^Jürgen^^^Dr.||19650412|M",
        "PV1||O|RAD^ROOM1^1|||||1234^Schmidt^Anna^^^Dr.|||||||||||V-5001",
        "ORC|NW|PLC-7^RIS|FIL-7^RIS||SC||1^once^^20261126093000^^R||20261125083000",
        obr
        or "OBR|1|PLC-7^RIS|FIL-7^RIS|CTHEAD^CT Kopf^LOCAL^CTHEAD-P1^Schädel^LOCAL"
        "||||||||||||1234^Schmidt^Anna^^^Dr.||ACC-7|RP-7|SPS-7||||CT|||"
        "1^once^^20261126093000^^R|||||||4711&Weber&Lena",
    ]
    if zds:
        segments.append("ZDS|1.2.826.0.1.3680043.10.543.7^RIS^Application^DICOM")
    return "\r".join(segments).encode()


def only_entry(result: Preview) -> EntryPreview:
    assert result.error is None, result.outcome
    assert len(result.changes) == 1 and len(result.changes[0].entries) == 1
    return result.changes[0].entries[0]


def sps(entry: EntryPreview) -> Dataset:
    step: Dataset = entry.dataset.ScheduledProcedureStepSequence[0]
    return step


# -- which path gave each value ----------------------------------------------------


def test_orm_o01_trace_names_the_path_that_gave_each_value(registry: MappingRegistry) -> None:
    result = preview((DATA / "orm_o01_nw_latin1.hl7").read_bytes(), registry, DECODER)
    assert (result.message_type, result.control_id, result.outcome) == ("ORM^O01", "ORM-1001", "AA")
    assert result.mapping_name == "orders" and result.mapping_version
    change = result.changes[0]
    assert (change.action, change.order_key, change.status) == (
        OrderAction.SCHEDULE,
        "PLACER:PLC-1001^RIS",
        "SCHEDULED",
    )
    entry = only_entry(result)
    assert entry.dataset.PatientName == "Müller^Jürgen^^Dr."
    expected = {
        "PatientID": ("PID-3", ("PAT-1001",), ()),
        "PatientName": ("PID-5[*]", ("Müller^Jürgen^^Dr.",), ()),
        "AccessionNumber": ("OBR-18", ("ACC-1001",), ("IPC-1",)),
        "RequestedProcedureID": ("OBR-19", ("RP-1001",), ("IPC-2",)),
        "StudyInstanceUID": ("ZDS-1.1", ("1.2.826.0.1.3680043.10.543.1001",), ("IPC-3",)),
        "RequestedProcedurePriority": ("ORC-7.6", ("ROUTINE",), ("TQ1-9",)),
        "RequestedProcedureCodeSequence > CodeValue": ("OBR-4.1", ("CTHEAD",), ()),
        "ScheduledProcedureStepSequence > Modality": ("OBR-24", ("CT",), ("IPC-5",)),
        "ScheduledProcedureStepSequence > ScheduledProcedureStepStartDate": (
            "OBR-27.4",
            ("20261126",),
            ("TQ1-7",),
        ),
        "ScheduledProcedureStepSequence > ScheduledProtocolCodeSequence > CodeValue": (
            "OBR-4.4",
            ("CTHEAD-P1",),
            ("IPC-6.1",),
        ),
    }
    for attribute, (source, value, tried) in expected.items():
        traced = row(entry, attribute)
        assert (traced.source, traced.value, traced.tried) == (source, value, tried), attribute
    name = row(entry, "PatientName").attempts[-1]
    assert (name.raw, name.steps) == (("Müller^Jürgen^^^Dr.",), ("pn",))
    physician = row(entry, "ScheduledProcedureStepSequence > ScheduledPerformingPhysicianName")
    assert physician.attempts[-1].raw == ("4711&Weber&Lena",)  # a component path: subcomponents
    assert physician.value == ("Weber^Lena",)
    status = row(entry, "ScheduledProcedureStepSequence > ScheduledProcedureStepStatus")
    assert status.source.startswith("order_control") and status.value == ("SCHEDULED",)


def test_omi_o23_traces_each_ipc_entry(registry: MappingRegistry) -> None:
    result = preview((DATA / "omi_o23_two_ipc_utf8.hl7").read_bytes(), registry, DECODER)
    assert result.error is None and result.message_type == "OMI^O23"
    entries = result.changes[0].entries
    assert len(entries) == 2
    for entry, suffix, station in zip(entries, "AB", ("MR1", "MR2"), strict=True):
        step = row(entry, "ScheduledProcedureStepSequence > ScheduledProcedureStepID")
        assert (step.source, step.value, step.tried) == ("IPC-4", (f"SPS-2001{suffix}",), ())
        aet = row(entry, "ScheduledProcedureStepSequence > ScheduledStationAETitle")
        assert (aet.source, aet.value) == ("IPC-9[*]", (station,))
        assert row(entry, "AccessionNumber").source == "IPC-1"
        assert row(entry, "StudyInstanceUID").source == "IPC-3"
        date = row(entry, "ScheduledProcedureStepSequence > ScheduledProcedureStepStartDate")
        assert (date.source, date.value, date.tried) == ("TQ1-7", ("20261126",), ())
        assert entry.stations.ae_titles == (station,)
        assert (entry.stations.modality, entry.stations.start_date) == ("MR", "20261126")
        assert f"station {station} with its own" in entry.stations.describe()
    text = render(result)
    assert "Entry 2 of 2" in text and "SPS-2001B" in text


# -- fallbacks, generated values, defaults, empties ------------------------------------


def test_generated_values_are_traced_with_their_seed(registry: MappingRegistry) -> None:
    obr = (
        "OBR|1|PLC-7^RIS|FIL-7^RIS|CTHEAD^CT Kopf^LOCAL^CTHEAD-P1^Schädel^LOCAL"
        "||||||||||||||ACC-7|RP-7|||||CT"  # no OBR-20: the step ID is generated
    )
    entry = only_entry(preview(orm(obr=obr, zds=False), registry, DECODER))
    uid = row(entry, "StudyInstanceUID")
    assert uid.source == "fallback: generated uid (seed IPC-2|OBR-19 = 'RP-7')"
    assert uid.tried == ("IPC-3", "ZDS-1.1")
    assert uid.value == (entry.dataset.StudyInstanceUID,)
    step = row(entry, "ScheduledProcedureStepSequence > ScheduledProcedureStepID")
    assert step.source == (
        "fallback: generated id (seed IPC-6.1|OBR-4.4|IPC-5|OBR-24 = 'CTHEAD-P1')"
    )
    assert step.value == (sps(entry).ScheduledProcedureStepID,)
    assert step.value[0].startswith("G") and len(step.value[0]) == 16
    text = render(preview(orm(obr=obr, zds=False), registry, DECODER))
    assert "fallback: generated uid (seed IPC-2|OBR-19 = 'RP-7')" in text


def test_a_table_fallback_and_a_default_are_traced(
    registry: MappingRegistry, tmp_path: Path
) -> None:
    text = (REPO / "mappings" / "orders.yaml").read_text(encoding="utf-8")
    text = text.replace("    rows: {}", "    rows: {CT: CT_SCANNER_1}", 1)
    text = text.replace(
        "PatientTransportArrangements: OBR-30",
        "PatientTransportArrangements: {path: OBR-30, default: WALKING}",
        1,
    )
    assert "CT_SCANNER_1" in text and "WALKING" in text
    (tmp_path / "orders.yaml").write_text(text, encoding="utf-8")
    entry = only_entry(preview(orm(), MappingRegistry.load(tmp_path), DECODER))
    aet = row(entry, "ScheduledProcedureStepSequence > ScheduledStationAETitle")
    assert aet.source == "fallback: path OBR-24 via table station_by_modality"
    assert aet.value == ("CT_SCANNER_1",)
    assert aet.tried == ("IPC-9[*]", "IPC-5")
    assert aet.attempts[-1].raw == ("CT",)
    assert aet.attempts[-1].steps == ("upper", "table station_by_modality")
    assert entry.stations.ae_titles == ("CT_SCANNER_1",)
    transport = row(entry, "PatientTransportArrangements")
    assert (transport.source, transport.value, transport.tried) == (
        "default",
        ("WALKING",),
        ("OBR-30",),
    )
    assert entry.dataset.PatientTransportArrangements == "WALKING"


def test_an_empty_optional_attribute_shows_the_paths_tried(registry: MappingRegistry) -> None:
    result = preview((DATA / "orm_o01_nw_latin1.hl7").read_bytes(), registry, DECODER)
    entry = only_entry(result)
    transport = row(entry, "PatientTransportArrangements")
    assert (transport.source, transport.value, transport.tried) == ("empty", (), ("OBR-30",))
    # IPC-9 empty, then the fallback read OBR-24 = CT, but the table has no row for CT.
    aet = row(entry, "ScheduledProcedureStepSequence > ScheduledStationAETitle")
    assert (aet.source, aet.value, aet.tried) == ("empty", (), ("IPC-9[*]", "IPC-5"))
    fallback = aet.attempts[-1]
    assert (fallback.depth, fallback.source, fallback.raw) == (1, "OBR-24", ("CT",))
    assert fallback.values == ()
    assert entry.stations.ae_titles == ()
    assert "only stations querying without an AE title" in entry.stations.describe()
    text = render(result)
    transport_line = next(
        line for line in text.splitlines() if "PatientTransportArrangements " in line
    )
    assert "(empty)" in transport_line and "empty: OBR-30" in transport_line
    assert "OBR-24 read 'CT' -> upper -> table station_by_modality -> nothing" in text


def test_several_station_ae_titles(registry: MappingRegistry) -> None:
    raw = (DATA / "omi_o23_two_ipc_utf8.hl7").read_bytes().replace(b"RAD-MR|MR1", b"RAD-MR|CT1~CT2")
    entry = preview(raw, registry, DECODER).changes[0].entries[0]
    aet = row(entry, "ScheduledProcedureStepSequence > ScheduledStationAETitle")
    assert aet.value == ("CT1", "CT2")
    assert entry.stations.ae_titles == ("CT1", "CT2")
    description = entry.stations.describe()
    assert "any station querying without an AE title; stations CT1, CT2 with theirs" in description
    assert "Modality empty or MR" in description


# -- errors: what the sender would get ---------------------------------------------------


def test_a_mapping_error_renders_the_ack_the_sender_gets(registry: MappingRegistry) -> None:
    result = preview((DATA / "orm_o01_missing_pid3.hl7").read_bytes(), registry, DECODER)
    assert result.error is not None and result.changes == ()
    assert result.ack_code is AckCode.ERROR
    assert (result.error.err_code, result.error.location) == (
        ErrorCode.REQUIRED_FIELD_MISSING,
        "PID-3",
    )
    assert result.outcome == "AE 101 at PID-3: PID-3 (PatientID) is empty"
    failing = result.failed_trace[-1]
    assert (failing.attribute, failing.source, failing.tried) == ("PatientID", "error", ("PID-3",))
    text = render(result)
    assert "AE 101 at PID-3: PID-3 (PatientID) is empty" in text
    assert "ERR-2 PID^1^3" in text and "ERR-3 101^Required field missing^HL70357" in text


def test_a_value_error_shows_the_trace_up_to_the_failing_attribute(
    registry: MappingRegistry,
) -> None:
    result = preview(orm(pid3="P" * 65), registry, DECODER)
    assert result.outcome.startswith("AE 104 at PID-3: PID-3 (PatientID) has 65 characters")
    assert [r.attribute for r in result.failed_trace] == ["PatientID"]
    assert result.failed_trace[-1].attempts[-1].raw == ("P" * 65,)


def test_refusals_before_mapping_are_ar(registry: MappingRegistry) -> None:
    unsupported = preview(
        b"MSH|^~\\&|LAB|HOSP|MWL|RAD|20261125||ORU^R01|X1|P|2.5.1\rPID|||1", registry, DECODER
    )
    assert unsupported.outcome.startswith("AR 200 at MSH-9: message type ORU^R01 is not supported")
    assert (unsupported.message_type, unsupported.control_id) == ("ORU^R01", "X1")
    assert unsupported.mapping_name == ""
    assert "MSA-1 AR, ERR-2 MSH^1^9" in render(unsupported)
    garbage = preview(b"not an HL7 message", registry, DECODER)
    assert garbage.ack_code is AckCode.REJECT and garbage.error is not None
    assert garbage.error.location == "MSH"
    assert "AR 100 at MSH" in render(garbage)


# -- decoding: as the router decodes -----------------------------------------------------


def test_the_header_shows_the_charset_and_msh7_as_the_router_reads_them(
    registry: MappingRegistry,
) -> None:
    utf8_as_latin1 = orm().replace(b"|P|2.3.1", b"|P|2.3.1||||||8859/1", 1)
    result = preview(utf8_as_latin1, registry, MessageDecoder(local_zone=UTC))
    assert result.decoding == Decoding(
        "utf-8", True, "20261125083000", "UTC", "20261125083000.000000"
    )
    text = render(result)
    assert "Charset  utf-8 (declared single-byte, but the bytes are UTF-8)\n" in text
    assert (
        "Sent     MSH-7 20261125083000 = 2026-11-25 08:30:00 UTC (without an offset: UTC)" in text
    )
    undated = preview(
        orm().replace(b"|20261125083000||ORM", b"|yesterday||ORM", 1), registry, DECODER
    )
    assert undated.decoding is not None and undated.decoding.sent_utc == ""
    assert "MSH-7 yesterday = unreadable (without an offset: the broker host's zone)" in render(
        undated
    )


# -- patients ----------------------------------------------------------------------------


def test_adt_preview_shows_the_patient_action_and_attributes(registry: MappingRegistry) -> None:
    a40 = "\r".join(
        [
            "MSH|^~\\&|HIS|HOSP|MWL|RAD|20261125090000||ADT^A40^ADT_A39|A40-1|P|2.5.1",
            "EVN|A40|20261125090000",
            "PID|||PAT-9^^^HOSP||Neu^Nina||19700101|F",
            "MRG|PAT-OLD^^^HOSP",
        ]
    ).encode()
    result = preview(a40, registry, DECODER)
    assert (result.outcome, result.mapping_name) == ("AA", "adt")
    assert result.patient_action is PatientAction.MERGE and result.changes == ()
    (patient,) = result.patients
    assert (patient.patient_id, patient.prior_id) == ("PAT-9", "PAT-OLD")
    assert patient.attributes.PatientName == "Neu^Nina"
    assert row(patient.trace, "PatientName").source == "PID-5[*]"
    assert row(patient.trace, "PatientID").attempts[-1].raw == ("PAT-9^^^HOSP",)
    mother = row(patient.trace, "PatientMotherBirthName")
    assert (mother.source, mother.tried) == ("empty", ("PID-6",))
    assert "PatientMotherBirthName" not in patient.attributes  # not carried: no change
    text = render(result)
    assert "Outcome  AA: patient merge" in text and "Patient PAT-9 (replaces PAT-OLD)" in text
    assert "not carried: no change" in text
    update = preview(
        a40.replace(b"ADT^A40^ADT_A39", b"ADT^A08").replace(b"\rMRG|PAT-OLD^^^HOSP", b""),
        registry,
        DECODER,
    )
    assert update.patient_action is PatientAction.UPDATE and update.patients[0].prior_id == ""

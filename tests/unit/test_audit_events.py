"""Audit events: how a C-FIND's keys are recorded (names and use, never values unless
asked), and the stream entry of an event, both ways."""

from __future__ import annotations

from pydicom.dataset import Dataset

from broker.audit.events import (
    KEY_LIMIT,
    AuditEvent,
    AuditType,
    Outcome,
    from_fields,
    iso_time,
    query_keys,
    readable_key,
    to_fields,
)


def station_poll() -> Dataset:
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 192"
    query.PatientName = "Zzcanary*"
    query.PatientID = ""
    query.AccessionNumber = "CNRYACC4711"
    query.PatientBirthDate = ""
    step = Dataset()
    step.ScheduledStationAETitle = "CT1"
    step.ScheduledProcedureStepStartDate = "20261201-20261203"
    step.Modality = ["CT", "MR"]
    step.ScheduledProcedureStepStartTime = ""
    query.ScheduledProcedureStepSequence = [step]
    query.ReferencedStudySequence = []
    return query


def test_keys_are_named_with_how_they_match_and_no_value() -> None:
    keys, values = query_keys(station_poll())
    assert keys == [  # in tag order
        "00080050=",
        "00081110",
        "00100010*",
        "00100020",
        "00100030",
        "00400100.00080060=",
        "00400100.00400001=",
        "00400100.00400002-",
        "00400100.00400003",
    ]
    assert [readable_key(key) for key in keys] == [
        "AccessionNumber=",
        "ReferencedStudySequence",
        "PatientName*",
        "PatientID",
        "PatientBirthDate",
        "ScheduledProcedureStepSequence.Modality=",
        "ScheduledProcedureStepSequence.ScheduledStationAETitle=",
        "ScheduledProcedureStepSequence.ScheduledProcedureStepStartDate-",
        "ScheduledProcedureStepSequence.ScheduledProcedureStepStartTime",
    ]
    assert values == {}
    assert not any("canary" in key.lower() or "CNRY" in key for key in keys)


def test_values_only_when_asked_and_bounded() -> None:
    query = station_poll()
    query.RequestedProcedureComments = "C" * 100  # LT
    _, values = query_keys(query, values=True)
    assert values == {
        "00080050": "CNRYACC4711",
        "00100010": "Zzcanary*",
        "00400100.00080060": "CT\\MR",
        "00400100.00400001": "CT1",
        "00400100.00400002": "20261201-20261203",
        "00401400": "C" * 64,
    }


def test_private_tags_and_many_keys_counted() -> None:
    query = Dataset()
    query.add_new(0x00091010, "LO", "x")
    for n in range(KEY_LIMIT + 5):
        query.add_new(0x00111000 + n, "LO", "")
    keys, _ = query_keys(query)
    assert keys[0] == "00091010=" and readable_key(keys[0]) == "(0009,1010)="
    assert len(keys) == KEY_LIMIT + 1 and keys[-1] == "+6" and readable_key("+6") == "+6"


def test_a_stream_entry_round_trips_and_leaves_empty_fields_out() -> None:
    event = AuditEvent(
        AuditType.QUERY,
        Outcome.REFUSED,
        address="10.1.2.3",
        ae="CT1",
        reason="budget spent",
        details={"answers": 0, "keys": ["PatientName*"]},
        time=1_796_000_000.25,
    )
    fields = to_fields(event, node="broker-host")
    assert set(fields) == {"type", "outcome", "time", "address", "ae", "reason", "details", "node"}
    assert fields["time"] == iso_time(1_796_000_000.25) == "2026-11-30T00:53:20.250Z"
    raw = {k.encode(): v.encode() for k, v in fields.items()}
    stored = from_fields("1-0", raw)
    assert stored is not None
    back = stored.event
    assert (back.type, back.outcome, back.ae, back.address) == (
        AuditType.QUERY, Outcome.REFUSED, "CT1", "10.1.2.3"
    )  # fmt: skip
    assert back.details == {"answers": 0, "keys": ["PatientName*"]}
    assert back.time == 1_796_000_000.25 and back.node == "broker-host" and not back.phi


def test_text_is_made_printable_and_bounded() -> None:
    forged = AuditEvent(AuditType.MESSAGE_REFUSED, sender="RIS\r\n\x1b[31mX" + "y" * 400)
    sender = to_fields(forged)["sender"]
    assert "\r" not in sender and "\x1b" not in sender and "\\x1b" in sender
    assert len(sender) <= 256


def test_an_entry_that_is_not_an_event_is_skipped() -> None:
    assert from_fields("1-0", {b"type": b"something-else", b"outcome": b"success"}) is None
    assert from_fields("1-0", None) is None

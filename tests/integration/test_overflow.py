"""Values too long for their DICOM attribute, end to end: a real broker over MLLP.

A display value is cut and the order applied, the sender told by an ERR of
severity W in the AA (ERR-1 for a v2.3.1 sender), the broker log and the
message log say which field, never the value; an identifier too long is still
refused AE 104 and changes nothing. The stored values are read back with a
pynetdicom MWL C-FIND.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.app import Broker
from broker.mllp.client import MLLPClient, split_messages, summarize_ack
from broker.store.message_records import MessageQuery, Outcome, WarningInfo
from tests.broker_runner import DATA, broker_settings, running_broker
from tests.integration.test_cli_messages import ids_in, messages
from tests.scu import ModalityWorklistInformationFind, identifier_of

LONG_OMI = split_messages((DATA / "omi_o23_long_display_utf8.hl7").read_bytes())[0]
ORM_NW = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
REFERRING = "Ågesen-Lindqvist-Bergström^Émilie-Françoise^Marie-Thérèse-Noëlïé"  # 64 of 67
NAME_WARNING = (
    "PV1-8 (ReferringPhysicianName) had 67 characters; "
    "VR PN allows at most 64 per name group: cut to 64"
)
SCHEME_WARNING = (
    "OBR-4.3 (CodingSchemeDesignator) had 17 characters; VR SH allows at most 16: cut to 16"
)


def send(broker: Broker, message: bytes) -> bytes:
    assert broker.endpoints is not None
    with MLLPClient("127.0.0.1", broker.endpoints.hl7_port, timeout=30) as client:
        return client.send(message)


def worklist(broker: Broker) -> list[Dataset]:
    """Every entry, with the attributes that were cut, by MWL C-FIND (pynetdicom SCU)."""
    assert broker.endpoints is not None
    identifier = Dataset()
    identifier.PatientID = ""
    identifier.ReferringPhysicianName = ""
    code = Dataset()
    code.CodeValue = code.CodingSchemeDesignator = code.CodeMeaning = ""
    identifier.RequestedProcedureCodeSequence = [code]
    step = Dataset()
    step.ScheduledProcedureStepID = ""
    identifier.ScheduledProcedureStepSequence = [step]
    ae = AE(ae_title="TEST_SCU")
    ae.add_requested_context(ModalityWorklistInformationFind)
    endpoints = broker.endpoints
    assoc = ae.associate("127.0.0.1", endpoints.dicom_port, ae_title=endpoints.ae_title)
    assert assoc.is_established
    try:
        found = [
            identifier_of(ds)
            for status, ds in assoc.send_c_find(identifier, ModalityWorklistInformationFind)
            if status is not None and status.Status in (0xFF00, 0xFF01)
        ]
    finally:
        assoc.release()
    return sorted(
        found,
        key=lambda ds: str(
            ds.ScheduledProcedureStepSequence[0].get("ScheduledProcedureStepID", "")
        ),
    )


def test_display_overflow_is_applied_with_a_warning_identifier_overflow_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="broker.services.routing")
    data = tmp_path / "data"
    with running_broker(broker_settings(data)) as broker:
        summary = summarize_ack(send(broker, LONG_OMI))
        assert (summary.code, summary.control_id) == ("AA", "OMI-3001")
        assert summary.errors == (
            f"warning PV1-8 104 Value too long: {NAME_WARNING}",
            f"warning OBR-4.3 104 Value too long: {SCHEME_WARNING}",
        )
        entries = worklist(broker)
        assert [e.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID for e in entries] == [
            "SPS-3001A",
            "SPS-3001B",
        ]
        for entry in entries:
            assert str(entry.ReferringPhysicianName) == REFERRING
            (code,) = entry.RequestedProcedureCodeSequence
            assert (code.CodeValue, code.CodingSchemeDesignator) == ("CTTHORAX", "RIS_OBR_PROCEDUR")

        too_long_id = LONG_OMI.replace(b"PAT-3001^", b"P" * 65 + b"^").replace(
            b"OMI-3001", b"OMI-3002"
        )
        refused = summarize_ack(send(broker, too_long_id))
        assert refused.code == "AE"
        assert refused.errors[0].startswith("PID-3 104 Value too long: PID-3 (PatientID) has 65")
        assert len(worklist(broker)) == 2  # nothing changed

        assert broker.messages is not None
        rows = broker.messages.find(MessageQuery(warnings_only=True)).items
        assert [(r.control_id, r.outcome, r.warnings, r.created) for r in rows] == [
            ("OMI-3001", Outcome.ACCEPTED, 2, 2)
        ]
        assert broker.messages.count(warnings_only=True) == 1
        record = broker.messages.get(rows[0].id)
        assert record is not None and record.warnings == (
            WarningInfo("104", "PV1-8", NAME_WARNING),
            WarningInfo("104", "OBR-4.3", SCHEME_WARNING),
        )
        listed = messages("list", "--warnings", data=data)
        assert listed.returncode == 0, listed.stderr
        assert ids_in(listed.stdout) == [rows[0].id]
        assert "2 warning(s): value(s) cut to fit" in listed.stdout
        shown = messages("show", rows[0].id, data=data).stdout
        assert f"warning      W 104 at PV1-8: {NAME_WARNING}" in shown

    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"msg OMI-3001: warning 104 at PV1-8: {NAME_WARNING}" in m for m in logged)
    assert (
        "Ågesen" not in caplog.text
        and "Noëlïé" not in caplog.text
        and "PAT-3001" not in caplog.text
    )


def test_a_v231_sender_gets_the_warning_in_err1(tmp_path: Path) -> None:
    """HL7 v2.3.1 has no ERR-4: the warning is an ERR-1 repetition whose text says so."""
    long_name = "Schmidt-Überlänge-Doppelname-Familie^Anna-Katharina^Johanna-Maria^^^Dr."
    order = ORM_NW.replace(
        b"1234^Schmidt^Anna^^^Dr.|", b"1234^" + long_name.encode("latin-1") + b"|", 1
    )
    with running_broker(broker_settings(tmp_path / "data")) as broker:
        ack = send(broker, order)
    segments = ack.decode("latin-1").strip("\r").split("\r")
    assert segments[1].startswith("MSA|AA|ORM-1001|Warning: PV1-8 (ReferringPhysicianName) had")
    (err,) = [s for s in segments if s.startswith("ERR")]
    assert err == (
        "ERR|PV1^1^8^104&Warning: PV1-8 (ReferringPhysicianName) had 70 characters; "
        "VR PN allows at most 64 per name group: cut to 64&HL70357"
    )

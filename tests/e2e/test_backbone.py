"""The backbone end to end: HL7 in over MLLP, Redis, MWL C-FIND out to DCMTK findscu.

Orders go in through `mwl-broker send` (our CLI, a separate process) and
python-hl7's MLLP client; the worklist comes out through DCMTK's findscu and
echoscu. Every component is real: sockets on 127.0.0.1, a real redis-server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hl7.client
import pydicom
import pytest

from broker.app import Broker
from broker.mllp.client import summarize_ack
from broker.store.message_records import MessageQuery
from tests.broker_runner import DATA, broker_settings, running_broker
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

ORM_NW = DATA / "orm_o01_nw_latin1.hl7"
ORM_CA = DATA / "orm_o01_ca_latin1.hl7"
ORM_NO_PID3 = DATA / "orm_o01_missing_pid3.hl7"
OMI = DATA / "omi_o23_two_ipc_utf8.hl7"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with running_broker(broker_settings(tmp_path / "data")) as b:
        yield b


def cli_send(broker: Broker, *files: Path) -> subprocess.CompletedProcess[str]:
    assert broker.endpoints is not None
    address = f"127.0.0.1:{broker.endpoints.hl7_port}"
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", "send", address, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def findscu(broker: Broker, out: Path, *keys: str) -> list[pydicom.Dataset]:
    """Query the broker with DCMTK findscu -W and read back the answers it wrote."""
    exe = require_tool("findscu")
    assert broker.endpoints is not None
    out.mkdir(parents=True, exist_ok=True)
    args = [exe, "-W", "-aet", "TEST_SCU", "-aec", broker.endpoints.ae_title, "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    args += ["127.0.0.1", str(broker.endpoints.dicom_port)]
    result = subprocess.run(
        args, capture_output=True, timeout=60, check=False, env={**os.environ, "TCP_NODELAY": "1"}
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


PATIENT_KEYS = (
    "PatientName", "PatientID", "AccessionNumber", "StudyInstanceUID",
    "(0040,0100)[0].Modality", "(0040,0100)[0].ScheduledStationAETitle",
    "(0040,0100)[0].ScheduledProcedureStepID", "(0040,0100)[0].ScheduledProcedureStepStartDate",
)  # fmt: skip


def test_latin1_orm_reaches_findscu_with_the_name_intact(broker: Broker, tmp_path: Path) -> None:
    sent = cli_send(broker, ORM_NW)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "AA ORM-1001" in sent.stdout
    answers = findscu(broker, tmp_path / "q", *PATIENT_KEYS, "(0040,0100)[0].Modality=CT")
    assert len(answers) == 1
    (ds,) = answers
    assert str(ds.PatientName) == "Müller^Jürgen^^Dr."
    assert ds.PatientID == "PAT-1001"
    assert ds.AccessionNumber == "ACC-1001"
    assert ds.StudyInstanceUID == "1.2.826.0.1.3680043.10.543.1001"
    sps = ds.ScheduledProcedureStepSequence[0]
    assert (sps.Modality, sps.ScheduledProcedureStepID) == ("CT", "SPS-1001")
    assert sps.ScheduledProcedureStepStartDate == "20261126"


def test_utf8_omi_with_two_ipc_gives_two_answers(broker: Broker, tmp_path: Path) -> None:
    assert broker.endpoints is not None
    with hl7.client.MLLPClient("127.0.0.1", broker.endpoints.hl7_port) as client:
        ack = client.send_message(OMI.read_bytes().replace(b"\n", b"\r"))
    assert summarize_ack(ack).code == "AA"
    answers = findscu(broker, tmp_path / "q", *PATIENT_KEYS, "(0040,0100)[0].Modality=MR")
    assert len(answers) == 2
    assert {str(a.PatientName) for a in answers} == {"Øvergård^Zoë^Åsa"}
    steps = sorted(
        (
            a.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID,
            a.ScheduledProcedureStepSequence[0].ScheduledStationAETitle,
        )
        for a in answers
    )
    assert steps == [("SPS-2001A", "MR1"), ("SPS-2001B", "MR2")]
    station = findscu(
        broker, tmp_path / "q2", *PATIENT_KEYS, "(0040,0100)[0].ScheduledStationAETitle=MR2"
    )
    assert [a.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID for a in station] == [
        "SPS-2001B"
    ]


def test_patient_name_wildcard_query_with_accents(broker: Broker, tmp_path: Path) -> None:
    assert cli_send(broker, ORM_NW, OMI).returncode == 0
    answers = findscu(
        broker,
        tmp_path / "q",
        *PATIENT_KEYS,
        "SpecificCharacterSet=ISO_IR 192",
        "PatientName=müller*",
    )
    assert [a.PatientID for a in answers] == ["PAT-1001"]


def test_resend_changes_nothing_and_gets_the_same_ack(broker: Broker) -> None:
    assert broker.endpoints is not None and broker.store is not None
    message = OMI.read_bytes().replace(b"\n", b"\r")
    with hl7.client.MLLPClient("127.0.0.1", broker.endpoints.hl7_port, encoding="utf-8") as client:
        first = client.send_message(message)
        count = broker.store.count()
        second = client.send_message(message)
        assert second == first
        assert broker.store.count() == count == 2
        altered = message.replace(b"SPS-2001B", b"SPS-2001C")
        third = summarize_ack(client.send_message(altered))
    assert third.code == "AE"
    assert any("205" in e and "MSH-10" in e for e in third.errors)
    assert broker.store.count() == 2


def test_cancel_takes_the_order_off_the_worklist(broker: Broker, tmp_path: Path) -> None:
    assert cli_send(broker, ORM_NW, OMI).returncode == 0
    sent = cli_send(broker, ORM_CA)
    assert sent.returncode == 0, sent.stdout
    assert findscu(broker, tmp_path / "q", *PATIENT_KEYS, "(0040,0100)[0].Modality=CT") == []
    assert len(findscu(broker, tmp_path / "q2", *PATIENT_KEYS)) == 2


def test_missing_pid3_is_refused_with_err_and_stores_nothing(broker: Broker) -> None:
    assert broker.store is not None
    sent = cli_send(broker, ORM_NO_PID3)
    assert sent.returncode == 1
    first_line = sent.stdout.splitlines()[0]
    assert first_line.split()[1:3] == ["AE", "ORM-1003"]
    assert "PID-3 101" in sent.stdout
    assert broker.store.count() == 0


def test_echoscu_verifies_the_broker(broker: Broker) -> None:
    exe = require_tool("echoscu")
    assert broker.endpoints is not None
    result = subprocess.run(
        [
            exe,
            "-aet",
            "TEST_SCU",
            "-aec",
            broker.endpoints.ae_title,
            "127.0.0.1",
            str(broker.endpoints.dicom_port),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def enhanced(message: bytes, msh15: bytes, msh16: bytes) -> bytes:
    """The sample ORM with MSH-15/16 valued (enhanced mode, HL7 v2.5.1 §2.9.3)."""
    original = b"|P|2.3.1||||||8859/1"
    assert original in message
    return message.replace(original, b"|P|2.3.1|||" + msh15 + b"|" + msh16 + b"||8859/1", 1)


def test_enhanced_mode_answers_commit_acks_over_mllp(broker: Broker) -> None:
    assert broker.endpoints is not None and broker.store is not None
    assert broker.messages is not None
    good = enhanced(ORM_NW.read_bytes().replace(b"\n", b"\r"), b"AL", b"AL")
    bad = enhanced(ORM_NO_PID3.read_bytes().replace(b"\n", b"\r"), b"AL", b"NE")
    with hl7.client.MLLPClient("127.0.0.1", broker.endpoints.hl7_port, "latin-1") as client:
        first = client.send_message(good)
        assert client.send_message(good) == first  # a resend: the very same bytes
        refused = summarize_ack(client.send_message(bad))
        original = summarize_ack(client.send_message(OMI.read_bytes().replace(b"\n", b"\r")))
    accepted = summarize_ack(first)
    assert (accepted.code, accepted.control_id) == ("CA", "ORM-1001")
    assert (refused.code, refused.control_id) == ("CE", "ORM-1003")
    assert any(e.startswith("PID-3 101") for e in refused.errors)
    assert original.code == "AA"  # no MSH-15/16: original mode, unchanged
    assert broker.store.count() == 3
    (logged,) = broker.messages.find(MessageQuery(control_id="ORM-1001", limit=1)).items
    record = broker.messages.get(logged.id)
    assert record is not None and record.ack == first[1:-2]  # without the MLLP frame
    assert summarize_ack(record.application_ack).code == "AA"  # MSH-16 AL: kept, not sent


def test_enhanced_mode_never_leaves_the_sender_waiting(broker: Broker) -> None:
    """MSH-15 NE: no HL7 accept ACK, but the MLLP Release 2 commit block."""
    assert broker.endpoints is not None and broker.store is not None
    message = enhanced(ORM_NW.read_bytes().replace(b"\n", b"\r"), b"NE", b"NE")
    with hl7.client.MLLPClient("127.0.0.1", broker.endpoints.hl7_port, "latin-1") as client:
        assert client.send_message(message) == b"\x0b\x06\x1c\r"
        assert broker.store.count() == 1
        # A refusal is never hidden behind a commit block, whatever MSH-15 says.
        bad = enhanced(ORM_NO_PID3.read_bytes().replace(b"\n", b"\r"), b"NE", b"NE")
        refusal = summarize_ack(client.send_message(bad))
    assert refusal.code == "CE"
    assert any("PID-3 101" in e for e in refusal.errors)
    assert broker.store.count() == 1

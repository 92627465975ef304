"""PHI canaries: a real broker at DEBUG takes orders (ORM, OMI), refusals, warnings, ADT
(A08, A40, A47), MPPS and queries full of canary names and identifiers; its log holds none
of them, and neither do its Redis key names nor the fields of its hashes keyed by order or
patient (broker.store.keys: pseudonyms); nor its JSON log lines and its metrics.

The canaries stand where patient data stands: names, Patient ID, accession number,
birth date, referring physician, Study Instance UID, and the values a refusal, a cut or a
query carries.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
import redis
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.mllp.client import MLLPClient, summarize_ack
from broker.store.connection import running_embedded
from tests.broker_runner import DATA
from tests.conformance.broker_process import BrokerProcess
from tests.conftest import require_tool
from tests.redis_replies import as_text, bytes_or_none
from tests.scu import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    create_then_complete,
)

pytestmark = pytest.mark.interop

NAME = "Zzcanaryname^Qqcanarygiven"
PATIENT_ID = "CNRYPID4711"
ACCESSION = "CNRYACC4711"
BIRTH = "19010203"
NODELAY = {**os.environ, "TCP_NODELAY": "1"}
STUDY = "1.2.826.0.1.3680043.10.543.77012345"
CANARIES = ("zzcanary", "qqcanary", "cnrypid", "cnryacc", "19010203", "1901-02-03")
ID_CANARIES = ("cnry", "77012345")  # every Patient ID, accession number and study UID below


def orders() -> list[bytes]:
    base = (DATA / "orm_o01_nw_latin1.hl7").read_bytes().replace(b"\r\n", b"\r")
    nw = (
        base.replace("Müller^Jürgen^^^Dr.".encode("latin-1"), NAME.encode())
        .replace(b"PAT-1001", PATIENT_ID.encode())
        .replace(b"ACC-1001", ACCESSION.encode())
        .replace(b"19650412", BIRTH.encode())
    )
    long_doctor = nw.replace(b"ORM-1001", b"ORM-2").replace(
        b"1234^Schmidt^Anna", b"1234^Zzcanarydoctor" + b"x" * 70 + b"^Anna"
    )  # cut to fit: an AA with a warning
    bad_date = nw.replace(b"ORM-1001", b"ORM-3").replace(BIRTH.encode(), b"1901-02-03")
    no_pid = nw.replace(b"ORM-1001", b"ORM-4").replace(f"|||{PATIENT_ID}^^^HOSP".encode(), b"|||")
    future = nw.replace(b"ORM-1001", b"ORM-5").replace(b"20261125083000", b"20991125083000", 1)
    undecodable = nw.replace(b"ORM-1001", b"ORM-6").replace(b"8859/1", b"UNICODE UTF-8") + b"\xff"
    adt = (
        f"MSH|^~\\&|RIS|RADIOLOGY|MWL_BROKER|HOSPITAL|20261125090000||ADT^A08|ADT-1|P|2.5\r"
        f"EVN|A08|20261125090000\rPID|||{PATIENT_ID}^^^HOSP||{NAME}~Zzcanaryalias^X||{BIRTH}|F\r"
        "PV1||I|WARD1^1^1\r"
    ).encode()
    return [nw, long_doctor, bad_date, no_pid, future, undecodable, adt]


def patient_flows() -> list[bytes]:
    """An OMI with two steps, an order for an ID then merged (A40), a change of ID (A47)."""

    def header(mtype: str, control_id: str) -> str:
        sent = "20261125090000"
        return f"MSH|^~\\&|RIS|RADIOLOGY|MWL_BROKER|HOSPITAL|{sent}||{mtype}|{control_id}|P|2.5.1"

    ipcs = [
        f"IPC|CNRYACC0042|RP-42|{STUDY}|SPS-42{step}|MR|MRKNEE^Knee^LOCAL|MR ROOM|RAD-MR|MR1"
        for step in "AB"
    ]
    omi = [header("OMI^O23^OMI_O23", "OMI-1"), f"PID|||CNRYPID0042^^^HOSP||{NAME}||{BIRTH}|F",
           "ORC|NW|PLC-42^RIS|FIL-42^RIS||SC", "TQ1|||||||20261126101500",
           "OBR|1|PLC-42^RIS|FIL-42^RIS|MRKNEE^MR knee^LOCAL", *ipcs]  # fmt: skip
    old = [header("ORM^O01", "ORM-OLD"), f"PID|||CNRYOLD0001^^^HOSP||{NAME}||{BIRTH}|M",
           "ORC|NW|PLC-43^RIS|FIL-43^RIS||SC||1^once^^20261126093000^^R",
           "OBR|1|PLC-43^RIS|FIL-43^RIS|CTHEAD^CT head^LOCAL||||||||||||||CNRYACC0043|RP-43"
           "|SPS-43||||CT"]  # fmt: skip
    a40 = [header("ADT^A40^ADT_A39", "ADT-40"), "EVN|A40|20261125090000",
           f"PID|||{PATIENT_ID}^^^HOSP||{NAME}||{BIRTH}|F", "MRG|CNRYOLD0001^^^HOSP"]  # fmt: skip
    a47 = [header("ADT^A47^ADT_A30", "ADT-47"), "EVN|A47|20261125090000",
           f"PID|||CNRYNEW0042^^^HOSP||{NAME}||{BIRTH}|F", "MRG|CNRYPID0042^^^HOSP"]  # fmt: skip
    return ["\r".join(m).encode() for m in (omi, old, a40, a47)]


def perform(port: int, ae_title: str) -> None:
    """A modality: finds the canary order, reports it IN PROGRESS, then COMPLETED."""
    ae = AE(ae_title="CT_SCANNER")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
    assert assoc.is_established
    try:
        query = Dataset()
        query.AccessionNumber, query.StudyInstanceUID, query.PatientID = ACCESSION, "", ""
        query.RequestedProcedureID = ""
        step = Dataset()
        step.ScheduledProcedureStepID = ""
        query.ScheduledProcedureStepSequence = [step]
        (item,) = [ds for status, ds in assoc.send_c_find(query, ModalityWorklistInformationFind)
                   if status is not None and status.Status == 0xFF00]  # fmt: skip
        assert item is not None
        done = Dataset()
        done.StudyInstanceUID, done.AccessionNumber = item.StudyInstanceUID, ACCESSION
        done.RequestedProcedureID = item.RequestedProcedureID
        done.ScheduledProcedureStepID = item.ScheduledProcedureStepSequence[
            0
        ].ScheduledProcedureStepID
        mpps = Dataset()
        mpps.ScheduledStepAttributesSequence = [done]
        mpps.PatientID, mpps.PatientName = PATIENT_ID, NAME
        mpps.PerformedProcedureStepID, mpps.PerformedStationAETitle = "PPS-1", "CT_SCANNER"
        mpps.PerformedProcedureStepStartDate = "20261126"
        mpps.PerformedProcedureStepStartTime = "0930"
        mpps.PerformedProcedureStepStatus, mpps.Modality = "IN PROGRESS", "CT"
        create_then_complete(assoc, mpps)
    finally:
        assoc.release()


def identifiers_in_key_names(client: redis.Redis) -> list[str]:
    """Key names, and fields of the hashes keyed by order or patient, that hold a canary."""
    names = [raw.decode() for raw in client.scan_iter(count=1000)]
    assert any(":entry:" in n for n in names) and any(":mpps:" in n for n in names)
    fields = [
        f"{hash_key} {as_text(raw)}"
        for hash_key in ("mwl:order-status", "mwl:order-time", "mwl:patient-time")
        for raw in client.hkeys(hash_key)
    ]
    assert len(fields) >= 6
    return [n for n in names + fields if any(c in n.lower() for c in ID_CANARIES)]


def drive(broker: BrokerProcess, findscu: str, data_dir: Path) -> None:
    """The canary traffic: orders, refusals, ADT, an MPPS cycle, queries; then the stored
    data holds the canaries and no key name does."""
    codes = []
    with MLLPClient("127.0.0.1", broker.hl7_port, timeout=30) as client:
        for message in orders():
            codes.append(summarize_ack(client.send(message)).code)
    assert codes == ["AA", "AA", "AE", "AE", "AE", "AE", "AA"], codes
    with MLLPClient("127.0.0.1", broker.hl7_port, timeout=30) as client:
        flows = [summarize_ack(client.send(m)).code for m in patient_flows()]
    assert flows == ["AA"] * 4, flows
    perform(broker.dicom_port, broker.ae_title)
    for key in (f"PatientName={NAME[:8]}*", f"PatientID={PATIENT_ID}",
                f"AccessionNumber={ACCESSION}", "PatientName=Zzcanary?ame*"):  # fmt: skip
        found = subprocess.run(
            [findscu, "-W", "-aec", broker.ae_title, "-k", key, "-k", "PatientBirthDate",
             "-k", "ReferringPhysicianName", "127.0.0.1", str(broker.dicom_port)],
            capture_output=True, timeout=60, check=False, env=NODELAY,
        )  # fmt: skip
        assert found.returncode == 0, found.stderr
    running = running_embedded(data_dir / "redis")
    assert running is not None
    db = redis.Redis(unix_socket_path=str(running[1]))
    stored = b"".join(bytes_or_none(db.hget(f"mwl:entry:{as_text(i)}", "ds")) or b""
                      for i in db.smembers("mwl:idx:all"))  # fmt: skip
    assert b"CNRYNEW0042" in stored and b"CNRYACC0043" in stored  # it holds the data...
    assert identifiers_in_key_names(db) == []  # ...and no name or field names it
    db.close()


def canary_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(c in line.lower() for c in CANARIES)]


def test_no_canary_reaches_the_log_at_debug(tmp_path: Path) -> None:
    findscu = require_tool("findscu")
    log_file = tmp_path / "broker.log"
    with BrokerProcess(tmp_path / "data", log_file, log_level="DEBUG") as broker:
        drive(broker, findscu, tmp_path / "data")
    text = log_file.read_text(encoding="utf-8", errors="replace")
    assert " DEBUG " in text and "C-FIND" in text  # it did log, and at DEBUG
    hits = canary_lines(text)
    assert hits == [], "\n".join(hits[:20])


def test_json_logs_and_metrics_hold_no_canary_and_follow_a_message(tmp_path: Path) -> None:
    """``log_format = "json"``: every line a JSON object, none with a canary; an order's
    lines share its correlation ID, and its entries are the ones its MPPS names; the
    metrics text holds no canary either."""
    findscu = require_tool("findscu")
    log_file = tmp_path / "broker.log"
    env = {"MWL_BROKER_LOG_FORMAT": "json", "MWL_BROKER_METRICS_ALLOW": "127.0.0.1"}
    with BrokerProcess(tmp_path / "data", log_file, log_level="DEBUG", env=env) as broker:
        drive(broker, findscu, tmp_path / "data")
        assert broker.admin_url is not None
        metrics = httpx.get(f"{broker.admin_url}/metrics", timeout=30)
    assert metrics.status_code == 200 and "mwl_broker_hl7_messages_total" in metrics.text
    assert canary_lines(metrics.text) == []
    text = log_file.read_text(encoding="utf-8", errors="replace")
    assert canary_lines(text) == []
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    (summary,) = [r for r in lines if "msg ORM-1001 ORM^O01: AA" in r["message"]]
    message_id = summary["correlation_id"]
    assert message_id.startswith("m-") and summary["entries"]
    assert [r for r in lines if r.get("correlation_id") == message_id] == [summary]
    cut = [r for r in lines if "msg ORM-2" in r["message"]]  # its warning, then its summary
    assert len(cut) >= 2 and {r["correlation_id"] for r in cut} == {cut[0]["correlation_id"]}
    assert cut[0]["correlation_id"] not in ("", message_id)
    mpps = [r for r in lines if r["logger"] == "broker.dicom.mpps" and r.get("entries")]
    assert mpps and all(r["correlation_id"].startswith("p-") for r in mpps)
    assert {r["correlation_id"] for r in mpps} == {mpps[0]["correlation_id"]}  # one instance
    assert set(mpps[0]["entries"]) & set(summary["entries"])  # the order's entry

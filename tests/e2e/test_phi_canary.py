"""PHI canaries: a real broker at DEBUG takes orders, refusals, warnings, ADT and queries
full of canary names and identifiers; its log holds none of them.

The canaries stand where patient data stands: names, Patient ID, accession number,
birth date, referring physician, and the values a refusal, a cut or a query carries.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from broker.hl7.client import MLLPClient, summarize_ack
from tests.broker_runner import DATA
from tests.conformance.broker_process import BrokerProcess
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

NAME = "Zzcanaryname^Qqcanarygiven"
PATIENT_ID = "CNRYPID4711"
ACCESSION = "CNRYACC4711"
BIRTH = "19010203"
NODELAY = {**os.environ, "TCP_NODELAY": "1"}
CANARIES = ("zzcanary", "qqcanary", "cnrypid", "cnryacc", "19010203", "1901-02-03")


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


def test_no_canary_reaches_the_log_at_debug(tmp_path: Path) -> None:
    findscu = require_tool("findscu")
    log_file = tmp_path / "broker.log"
    with BrokerProcess(tmp_path / "data", log_file, log_level="DEBUG") as broker:
        codes = []
        with MLLPClient("127.0.0.1", broker.hl7_port, timeout=30) as client:
            for message in orders():
                codes.append(summarize_ack(client.send(message)).code)
        assert codes == ["AA", "AA", "AE", "AE", "AE", "AE", "AA"], codes
        for key in (f"PatientName={NAME[:8]}*", f"PatientID={PATIENT_ID}",
                    f"AccessionNumber={ACCESSION}", "PatientName=Zzcanary?ame*"):  # fmt: skip
            found = subprocess.run(
                [findscu, "-W", "-aec", broker.ae_title, "-k", key, "-k", "PatientBirthDate",
                 "-k", "ReferringPhysicianName", "127.0.0.1", str(broker.dicom_port)],
                capture_output=True, timeout=60, check=False, env=NODELAY,
            )  # fmt: skip
            assert found.returncode == 0, found.stderr
    text = log_file.read_text(encoding="utf-8", errors="replace")
    assert " DEBUG " in text and "C-FIND" in text  # it did log, and at DEBUG
    hits = [line for line in text.splitlines() if any(c in line.lower() for c in CANARIES)]
    assert hits == [], "\n".join(hits[:20])

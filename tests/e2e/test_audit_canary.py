"""PHI canaries in the audit trail: a real broker takes the canary orders, refusals, ADT,
MPPS and queries of ``test_phi_canary`` and exports its audit trail to a real TCP syslog
collector. No canary is in any field of the stream nor in any exported message; with
``log_phi = true`` they are in the ``phi`` field and the query they belong to, and nowhere
else."""

from __future__ import annotations

import base64
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import redis
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.app import Broker
from broker.mllp.client import MLLPClient, summarize_ack
from tests.broker_runner import broker_settings, running_broker
from tests.conftest import require_tool
from tests.e2e.test_phi_canary import ACCESSION, CANARIES, NAME, NODELAY, PATIENT_ID, orders
from tests.integration.test_audit_export import Collector, body
from tests.integration.test_mpps import n_create_list
from tests.redis_replies import stream_rows
from tests.scu import ModalityPerformedProcedureStep

pytestmark = pytest.mark.interop


def canaries_in(text: str) -> list[str]:
    return [c for c in CANARIES if c in text.lower()]


def exercise(broker: Broker, findscu: str) -> None:
    """Everything of the canary run that reaches the audit trail."""
    assert broker.endpoints is not None
    with MLLPClient("127.0.0.1", broker.endpoints.hl7_port, timeout=30) as client:
        codes = [summarize_ack(client.send(message)).code for message in orders()]
    assert codes == ["AA", "AA", "AE", "AE", "AE", "AE", "AA"], codes
    for key in (f"PatientName={NAME[:8]}*", f"PatientID={PATIENT_ID}",
                f"AccessionNumber={ACCESSION}", "PatientName=Zzcanary?ame*"):  # fmt: skip
        found = subprocess.run(
            [findscu, "-W", "-aec", broker.endpoints.ae_title, "-k", key, "-k", "PatientBirthDate",
             "127.0.0.1", str(broker.endpoints.dicom_port)],
            capture_output=True, timeout=60, check=False, env=NODELAY,
        )  # fmt: skip
        assert found.returncode == 0, found.stderr
    ae = AE(ae_title="CT1")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", broker.endpoints.dicom_port, ae_title="MWL_BROKER")
    attributes: Dataset = n_create_list(None)
    attributes.PatientName, attributes.PatientID = NAME, PATIENT_ID
    status, _ = assoc.send_n_create(attributes, ModalityPerformedProcedureStep, None)
    assoc.release()
    assert status.Status == 0


def run(tmp_path: Path, log_phi: bool) -> tuple[list[dict[str, str]], list[bytes]]:
    """The stream's entries (fields as text) and the syslog messages of one canary run."""
    findscu = require_tool("findscu")
    collector = Collector("tcp")
    settings = broker_settings(
        tmp_path / "data", log_phi=log_phi, audit_syslog_address=f"tcp://127.0.0.1:{collector.port}"
    )
    try:
        with running_broker(settings) as broker:
            exercise(broker, findscu)
            assert broker.audit is not None and broker.audit.writer.flush(30)
            assert broker.store is not None
            client: redis.Redis = broker.store.client
            entries = [
                {k.decode(): v.decode() for k, v in fields.items()}
                for _, fields in stream_rows(client, "mwl:audit")
            ]
            messages = collector.wait_for(len(entries))
    finally:
        collector.close()
    assert {"query", "mpps-create", "message-refused"} <= {e["type"] for e in entries}
    return entries, messages


def test_no_canary_in_the_audit_trail_nor_its_export(tmp_path: Path) -> None:
    entries, messages = run(tmp_path, log_phi=False)
    hits = [e for e in entries if canaries_in(" ".join(f"{k}={v}" for k, v in e.items()))]
    assert hits == []
    assert not any("phi" in e for e in entries)
    for message in messages:
        assert canaries_in(message.decode("utf-8", "replace")) == []
        for query in body(message).iter("ParticipantObjectQuery"):
            assert canaries_in(base64.b64decode(query.text or "").decode()) == []


def test_with_log_phi_canaries_are_only_in_the_phi_field_and_the_query(tmp_path: Path) -> None:
    entries, messages = run(tmp_path, log_phi=True)
    for entry in entries:
        outside = " ".join(f"{k}={v}" for k, v in entry.items() if k != "phi")
        assert canaries_in(outside) == [], entry
    assert any(canaries_in(e.get("phi", "")) for e in entries)
    seen_in_queries = False
    for message in messages:
        root = body(message)
        for obj in root.iter("ParticipantObjectIdentification"):
            for query in obj.findall("ParticipantObjectQuery"):
                seen_in_queries |= bool(canaries_in(base64.b64decode(query.text or "").decode()))
                obj.remove(query)
        rest = ET.tostring(root, encoding="unicode")
        assert canaries_in(re.sub(r"\s+", " ", rest)) == [], rest
    assert seen_in_queries

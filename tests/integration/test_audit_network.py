"""The audit trail of a real broker's network faces: MLLP and DICOM connections refused (an
unlisted address, a cap, a failed TLS handshake), associations accepted and rejected, every
C-FIND (DCMTK findscu), MPPS N-CREATE/N-SET, HL7 messages refused at the door.

127.0.0.2 is another address of this machine (the loopback range): a client socket bound to
it is a second host for the broker's checks.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.app import Broker
from broker.audit.events import AuditEvent, AuditType, Outcome, from_fields
from broker.mllp.client import summarize_ack
from broker.settings import Settings
from tests.conftest import require_tool
from tests.dicom_pdus import HEADER, associated
from tests.integration.test_dicom_guard import hung_up
from tests.integration.test_mllp_senders import ORDER, connect, exchange, settings
from tests.integration.test_mpps import n_create_list, n_set_final
from tests.redis_replies import stream_rows
from tests.scu import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    Verification,
)
from tests.tls_certs import issue, make_ca

SCANNERS = '[scanners.CT1]\naddresses = ["127.0.0.1"]\nscope = "all"\n'
RIS = '[hl7_senders.RIS]\naddresses = ["127.0.0.2"]\napplication = "RIS"\n'


def audit_events(broker: Broker, kind: AuditType | None = None) -> list[AuditEvent]:
    """The broker's audit records so far (all written first), oldest first."""
    assert broker.audit is not None and broker.store is not None
    assert broker.audit.writer.flush(30)
    client: redis.Redis = broker.store.client
    found = []
    for entry_id, fields in stream_rows(client, "mwl:audit"):
        stored = from_fields(entry_id.decode(), fields)
        assert stored is not None
        if kind is None or stored.event.type is kind:
            found.append(stored.event)
    return found


@contextmanager
def broker_with(tmp_path: Path, tables: str, **extra: Any) -> Iterator[Broker]:
    from tests.broker_runner import running_broker

    s: Settings = settings(tmp_path, tables, dicom_allow_unknown_callers=False, **extra)
    with running_broker(s) as broker:
        yield broker


def associate(
    broker: Broker, calling: str, context: str, source: str | None = None, called: str = ""
) -> Any:
    assert broker.endpoints is not None
    ae = AE(ae_title=calling)
    ae.add_requested_context(context)
    bind = (source, 0) if source else None
    return ae.associate(
        "127.0.0.1", broker.endpoints.dicom_port, ae_title=called or broker.endpoints.ae_title,
        bind_address=bind,
    )  # fmt: skip


def test_mllp_refusals_are_recorded_with_their_address(tmp_path: Path) -> None:
    with broker_with(tmp_path, SCANNERS + RIS, hl7_max_connections_per_address=1) as broker:
        with connect(broker, "127.0.0.1") as stranger:
            assert exchange(stranger, ORDER) == b""
        with connect(broker, "127.0.0.2") as ris, connect(broker, "127.0.0.2") as second:
            assert summarize_ack(exchange(ris, ORDER)).code == "AA"
            assert exchange(second, ORDER) == b""
        refused = audit_events(broker, AuditType.CONNECTION_REFUSED)
        assert start_recorded(broker)
    assert [(e.address, e.outcome, e.details["listener"]) for e in refused] == [
        ("127.0.0.1", Outcome.REFUSED, "hl7"),
        ("127.0.0.2", Outcome.REFUSED, "hl7"),
    ]
    assert "not a configured sender" in refused[0].reason
    assert refused[1].reason == "1 connections open from this address"


def start_recorded(broker: Broker) -> bool:
    (start,) = audit_events(broker, AuditType.APPLICATION_START)
    assert broker.endpoints is not None
    return bool(start.details["hl7_port"] == broker.endpoints.hl7_port)


def test_a_failed_tls_handshake_is_recorded(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "pki")
    server = issue(ca, tmp_path / "pki", "broker", ip="127.0.0.1")
    tls = {"hl7_tls_cert": server.cert, "hl7_tls_key": server.key}
    with broker_with(tmp_path, SCANNERS, **tls) as broker:
        with connect(broker, "127.0.0.1") as plain:
            assert exchange(plain, ORDER) == b""  # not TLS: the handshake fails
        context = ssl.create_default_context(cafile=ca.cert)
        assert broker.endpoints is not None
        raw = socket.create_connection(("127.0.0.1", broker.endpoints.hl7_port), timeout=10)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as secure:
            assert summarize_ack(exchange(secure, ORDER)).code == "AA"
        refused = audit_events(broker, AuditType.CONNECTION_REFUSED)
    assert len(refused) == 1 and refused[0].address == "127.0.0.1"
    assert refused[0].reason.startswith("TLS handshake failed (")


MR1_ON_2 = '[scanners.MR1]\naddresses = ["127.0.0.2"]\nscope = "own"\n'


def test_associations_accepted_and_rejected(tmp_path: Path) -> None:
    with broker_with(tmp_path, SCANNERS + MR1_ON_2) as broker:
        assoc = associate(broker, "CT1", Verification)
        assert assoc.is_established and assoc.send_c_echo().Status == 0
        assoc.release()
        assert associate(broker, "STRANGER", Verification).is_rejected
        assert associate(broker, "CT1", Verification, source="127.0.0.2").is_rejected
        assert associate(broker, "CT1", Verification, called="NOT_THE_BROKER").is_rejected
        accepted = audit_events(broker, AuditType.ASSOCIATION_ACCEPTED)
        rejected = audit_events(broker, AuditType.ASSOCIATION_REJECTED)
    assert [(e.ae, e.address) for e in accepted] == [("CT1", "127.0.0.1")]
    assert [(e.ae, e.address, e.outcome) for e in rejected] == [
        ("STRANGER", "127.0.0.1", Outcome.REFUSED),
        ("CT1", "127.0.0.2", Outcome.REFUSED),
        ("CT1", "127.0.0.1", Outcome.REFUSED),  # rejected by pynetdicom itself
    ]
    assert all(e.reason for e in rejected)
    assert rejected[-1].reason == "called AE title not recognized"


def test_a_connection_from_an_address_no_scanner_may_use_is_recorded(tmp_path: Path) -> None:
    with broker_with(tmp_path, SCANNERS) as broker:
        assert broker.endpoints is not None
        address = ("127.0.0.1", broker.endpoints.dicom_port)
        with socket.create_connection(address, timeout=10, source_address=("127.0.0.2", 0)) as s:
            assert hung_up(s) == b""  # closed as it is accepted
        refused = audit_events(broker, AuditType.CONNECTION_REFUSED)
    assert [(e.address, e.reason) for e in refused] == [
        ("127.0.0.2", "no scanner may connect from this address")
    ]


def test_the_dicom_guard_refusal_is_recorded(tmp_path: Path) -> None:
    with broker_with(tmp_path, SCANNERS, dicom_max_connections_per_address=1) as broker:
        assert broker.endpoints is not None
        port = broker.endpoints.dicom_port
        held = socket.create_connection(("127.0.0.1", port), timeout=10)  # the one allowed
        with held, socket.create_connection(("127.0.0.1", port), timeout=10) as second:
            assert second.recv(1) == b""  # closed at once, unread
        refused = audit_events(broker, AuditType.CONNECTION_REFUSED)
    assert [(e.address, e.details["listener"]) for e in refused] == [("127.0.0.1", "dicom")]
    assert refused[0].reason == "1 DICOM connections open from this address"


def test_the_transport_guard_refusals_are_recorded(tmp_path: Path) -> None:
    """A first PDU that is not an A-ASSOCIATE-RQ, and a P-DATA-TF over the maximum the
    broker announced within an association (``broker.dicom.transport``)."""
    with broker_with(tmp_path, SCANNERS) as broker:
        assert broker.endpoints is not None
        address = ("127.0.0.1", broker.endpoints.dicom_port)
        with socket.create_connection(address, timeout=30) as sock:
            sock.sendall(HEADER.pack(0x04, 10) + b"\x00" * 10)  # P-DATA-TF first
            assert hung_up(sock)
        with socket.create_connection(address, timeout=30) as sock:
            maximum = associated(sock, "CT1", broker.endpoints.ae_title)
            sock.sendall(HEADER.pack(0x04, maximum + 7) + b"\x00" * 1024)
            assert hung_up(sock)
        refused = audit_events(broker, AuditType.CONNECTION_REFUSED)
    assert [(e.address, e.details["listener"]) for e in refused] == [("127.0.0.1", "dicom")] * 2
    assert refused[0].reason == "P-DATA-TF where an A-ASSOCIATE-RQ was due"
    assert (
        refused[1].reason == f"P-DATA-TF of {maximum + 7} bytes announced (at most {maximum + 6})"
    )


def test_every_c_find_with_its_keys_answers_and_status(tmp_path: Path) -> None:
    findscu = require_tool("findscu")
    with broker_with(tmp_path, SCANNERS + RIS) as broker:
        with connect(broker, "127.0.0.2") as ris:
            assert summarize_ack(exchange(ris, ORDER)).code == "AA"
        assert broker.endpoints is not None
        found = subprocess.run(
            [findscu, "-W", "-aet", "CT1", "-aec", broker.endpoints.ae_title,
             "-k", "PatientName=M*", "-k", "PatientID", "-k", "(0040,0100)[0].Modality",
             "127.0.0.1", str(broker.endpoints.dicom_port)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert found.returncode == 0, found.stderr
        long_key = Dataset()
        long_key.AccessionNumber = "A" * 17  # SH holds 16: refused A900
        assoc = associate(broker, "CT1", ModalityWorklistInformationFind)
        statuses = [
            int(s.Status) for s, _ in assoc.send_c_find(long_key, ModalityWorklistInformationFind)
        ]
        assoc.release()
        queries = audit_events(broker, AuditType.QUERY)
    assert statuses == [0xA900]
    first, refused = queries
    assert (first.ae, first.address, first.outcome) == ("CT1", "127.0.0.1", Outcome.SUCCESS)
    assert first.details["answers"] == 1 and first.details["status"] == "0000"
    assert first.details["keys"] == ["00100010*", "00100020", "00400100.00080060"]
    assert not first.phi
    assert refused.outcome is Outcome.REFUSED and refused.details["status"] == "A900"
    assert refused.details["answers"] == 0 and refused.details["keys"] == []
    assert refused.reason == "AccessionNumber: longer than SH allows (16)"


def test_mpps_create_and_set_are_recorded_with_their_instance(tmp_path: Path) -> None:
    with broker_with(tmp_path, SCANNERS) as broker:
        assoc = associate(broker, "CT1", ModalityPerformedProcedureStep)
        uid = "1.2.826.0.1.3680043.10.1234.77"
        status, _ = assoc.send_n_create(n_create_list(None), ModalityPerformedProcedureStep, uid)
        assert status.Status == 0
        status, _ = assoc.send_n_set(n_set_final(), ModalityPerformedProcedureStep, uid)
        assert status.Status == 0
        status, _ = assoc.send_n_set(n_set_final(), ModalityPerformedProcedureStep, uid + ".9")
        assert status.Status == 0x0112
        assoc.release()
        created = audit_events(broker, AuditType.MPPS_CREATE)
        changed = audit_events(broker, AuditType.MPPS_SET)
    assert [(e.ae, e.target, e.details["performed"]) for e in created] == [
        ("CT1", uid, "IN PROGRESS")
    ]
    assert [(e.target, e.outcome, e.details["status"]) for e in changed] == [
        (uid, Outcome.SUCCESS, "0000"),
        (uid + ".9", Outcome.REFUSED, "0112"),
    ]
    assert changed[0].details["performed"] == "COMPLETED"
    assert changed[1].reason.startswith("no MPPS with this")


def test_refused_hl7_messages_are_recorded_without_their_content(tmp_path: Path) -> None:
    with broker_with(tmp_path, SCANNERS + RIS) as broker:
        future = ORDER.replace(b"20261125083000", b"20991125083000", 1)
        forged = ORDER.replace(b"MSH|^~\\&|RIS|", b"MSH|^~\\&|HIS|", 1)
        with connect(broker, "127.0.0.2") as ris:
            assert summarize_ack(exchange(ris, future)).code == "AE"
            assert summarize_ack(exchange(ris, forged)).code == "AR"
        refused = audit_events(broker, AuditType.MESSAGE_REFUSED)
    assert [(e.address, e.sender, e.details["location"], e.details["ack"]) for e in refused] == [
        ("127.0.0.2", "RIS^RADIOLOGY", "MSH-7", "AE 102"),
        ("127.0.0.2", "HIS^RADIOLOGY", "MSH-3", "AR 207"),
    ]
    assert all(e.target == "ORM-1001" and e.details["type"] == "ORM^O01" for e in refused)
    text = " ".join(str(e) for e in refused)
    assert "Müller" not in text and "PAT-1001" not in text and "ACC-1001" not in text

"""Who may connect: the acceptance policy at association, for C-ECHO, C-FIND and MPPS alike.

Real associations over loopback: pynetdicom SCUs (bound to 127.0.0.2 where a test needs a
source address other than 127.0.0.1), DCMTK echoscu/findscu, and a hand-made A-ASSOCIATE-RQ
for AE titles no library would send. A rejection is an A-ASSOCIATE-RJ (PS3.8 9.3.4) with
the codes of ``broker.dicom.status``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.dicom.find import WorklistFindService
from broker.dicom.mpps import MppsService, MppsStatus
from broker.dicom.profiles import LOOPBACK, ProfileSet, UnknownCallers
from broker.dicom.server import DicomServer, configure_pynetdicom_logging
from broker.dicom.status import RejectReason, RejectResult, RejectSource, Status
from broker.store.mpps import MppsStore
from broker.store.worklist import WorklistStore
from tests.conftest import require_tool
from tests.integration.test_mpps import entry, n_create_list, put
from tests.scu import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    Verification,
)

LOCAL = ["127.0.0.1"]  # where the test scanners connect from
AE_TITLE = "MWL_TEST"
SERVICES = [Verification, ModalityWorklistInformationFind, ModalityPerformedProcedureStep]
SERVICE_IDS = ["C-ECHO", "C-FIND", "MPPS"]
OTHER_LOOPBACK = "127.0.0.2"  # on Linux the whole of 127.0.0.0/8 is the loopback interface


@contextmanager
def serving(
    store: WorklistStore,
    scanners: dict[str, Any],
    *,
    allow_unknown: UnknownCallers = LOOPBACK,
    host: str = "127.0.0.1",
) -> Iterator[DicomServer]:
    """The broker's DICOM side as ``build_dicom_server`` wires it: one ProfileSet for the
    association check, C-FIND and MPPS."""
    configure_pynetdicom_logging()
    profiles = ProfileSet.parse(scanners, allow_unknown=allow_unknown)
    server = DicomServer(
        ae_title=AE_TITLE,
        host=host,
        port=0,
        find_service=WorklistFindService(store, max_answers=100, profiles=profiles),
        mpps_service=MppsService(MppsStore(store, events_max=100), profiles=profiles),
        admission=profiles.decide,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def associated(
    server: DicomServer,
    calling: str,
    context: str,
    source: str | None = None,
    host: str = "127.0.0.1",
) -> Iterator[Any]:
    """An association request for one SOP class from ``calling``, optionally from the
    source address ``source``; yields the association, established or not."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(context)
    bind = (source, 0) if source else None
    assoc = ae.associate(host, server.port, ae_title=AE_TITLE, bind_address=bind)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def use(assoc: Any, context: str) -> int:
    """One request of the service ``context``; its final status."""
    if context == Verification:
        return int(assoc.send_c_echo().Status)
    if context == ModalityWorklistInformationFind:
        query = Dataset()
        query.AccessionNumber = ""
        query.ScheduledProcedureStepSequence = [Dataset()]
        return int(list(assoc.send_c_find(query, context))[-1][0].Status)
    status, _ = assoc.send_n_create(n_create_list(None), context, None)  # unscheduled
    return int(status.Status)


def rejection(assoc: Any) -> tuple[int, int, int]:
    """(result, source, reason) of the A-ASSOCIATE-RJ the association got."""
    assert assoc.is_rejected and not assoc.is_established
    rj = assoc.acceptor.primitive
    return rj.result, rj.result_source, rj.diagnostic


AE_NOT_RECOGNIZED = (
    RejectResult.PERMANENT,
    RejectSource.SERVICE_USER,
    RejectReason.CALLING_AE_TITLE_NOT_RECOGNIZED,
)
ADDRESS_NOT_LISTED = (
    RejectResult.PERMANENT,
    RejectSource.SERVICE_USER,
    RejectReason.NO_REASON_GIVEN,
)


@pytest.mark.parametrize("context", SERVICES, ids=SERVICE_IDS)
def test_by_default_an_unknown_caller_on_loopback_is_served(
    store: WorklistStore, context: str
) -> None:
    with serving(store, {}) as server, associated(server, "FINDSCU", context) as assoc:
        assert assoc.is_established
        assert use(assoc, context) == Status.SUCCESS


@pytest.mark.parametrize("context", SERVICES, ids=SERVICE_IDS)
def test_a_scanner_from_an_address_its_table_omits_is_rejected(
    store: WorklistStore, context: str, caplog: pytest.LogCaptureFixture
) -> None:
    scanners = {"CT1": {"addresses": [OTHER_LOOPBACK], "scope": "own"}}
    with (
        caplog.at_level(logging.WARNING, logger="broker.dicom.server"),
        serving(store, scanners) as server,
    ):
        with associated(server, "CT1", context) as assoc:  # from 127.0.0.1
            assert rejection(assoc) == ADDRESS_NOT_LISTED
        with associated(server, "CT1", context, source=OTHER_LOOPBACK) as assoc:
            assert assoc.is_established
            assert use(assoc, context) == Status.SUCCESS
    (line,) = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert line.startswith("DICOM association from 127.0.0.1, calling AE title 'CT1', rejected")
    assert "permanent, no reason given" in line and "addresses omit" in line
    assert "calling AE title not recognized" not in line


@pytest.mark.parametrize("context", SERVICES, ids=SERVICE_IDS)
def test_unknown_callers_narrowed_to_one_address_are_rejected_from_another(
    store: WorklistStore, context: str
) -> None:
    scanners = {"*": {"addresses": [f"{OTHER_LOOPBACK}/32"]}}
    with serving(store, scanners) as server:
        with associated(server, "STRANGER", context) as assoc:
            assert rejection(assoc) == AE_NOT_RECOGNIZED
        with associated(server, "STRANGER", context, source=OTHER_LOOPBACK) as assoc:
            assert assoc.is_established and use(assoc, context) == Status.SUCCESS


@pytest.mark.parametrize("context", SERVICES, ids=SERVICE_IDS)
def test_unknown_callers_not_allowed_are_rejected(store: WorklistStore, context: str) -> None:
    with serving(
        store, {"CT1": {"addresses": LOCAL, "scope": "own"}}, allow_unknown=False
    ) as server:
        with associated(server, "STRANGER", context) as assoc:
            assert rejection(assoc) == AE_NOT_RECOGNIZED
        with associated(server, "CT1", context) as assoc:
            assert assoc.is_established and use(assoc, context) == Status.SUCCESS


def network_address() -> str:
    """An address of this machine outside loopback (no packet is sent); without one the
    test fails in CI (whose machines have one) and skips elsewhere."""
    address = ""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route is looked up
        address = str(probe.getsockname()[0])
    if not address or address.startswith("127."):
        message = "no network interface besides loopback"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return address


def test_by_default_unknown_callers_from_the_network_are_rejected(store: WorklistStore) -> None:
    address = network_address()  # served there, and the client's source address
    default = serving(store, {}, host=address)
    with default as server, associated(server, "FINDSCU", Verification, address, address) as assoc:
        assert rejection(assoc) == AE_NOT_RECOGNIZED
    anyone = serving(store, {}, host=address, allow_unknown=True)
    with anyone as server, associated(server, "FINDSCU", Verification, address, address) as assoc:
        assert assoc.is_established and use(assoc, Verification) == Status.SUCCESS


def dcmtk(tool: str, server: DicomServer, *args: str, out: Path | None = None) -> Any:
    exe = require_tool(tool)
    extra = ["-W", "-k", "AccessionNumber", "-X", "-od", str(out)] if out is not None else []
    return subprocess.run(
        [exe, "-aet", "CT1", "-aec", AE_TITLE, *extra, *args, "127.0.0.1", str(server.port)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "TCP_NODELAY": "1"},
    )  # fmt: skip


@pytest.mark.interop
def test_dcmtk_is_served_on_loopback_and_rejected_from_an_address_not_listed(
    store: WorklistStore, tmp_path: Path
) -> None:
    put(store, entry("ACC-1"))
    with serving(store, {}) as server:
        assert dcmtk("echoscu", server).returncode == 0
        found = dcmtk("findscu", server, out=tmp_path)
        assert found.returncode == 0, found.stderr
        assert len(list(tmp_path.glob("rsp*.dcm"))) == 1
    (tmp_path / "none").mkdir()
    with serving(store, {"CT1": {"addresses": ["10.1.2.3"]}}) as server:
        for tool, out in (("echoscu", None), ("findscu", tmp_path / "none")):
            refused = dcmtk(tool, server, out=out)
            assert refused.returncode != 0
            assert "Association Rejected" in refused.stderr + refused.stdout, tool
            assert "Reason: No Reason" in refused.stderr + refused.stdout
    with serving(store, {"MR1": {"addresses": LOCAL}}, allow_unknown=False) as server:
        refused = dcmtk("echoscu", server)
        assert "Reason: Calling AE Title Not Recognized" in refused.stderr + refused.stdout


def raw_associate_rq(called: bytes, calling: bytes) -> bytes:
    """An A-ASSOCIATE-RQ PDU (PS3.8 9.3.2) proposing Verification, with AE title fields
    taken as given (16 bytes each)."""

    def item(kind: int, body: bytes) -> bytes:
        return struct.pack(">BxH", kind, len(body)) + body

    context = item(0x30, Verification.encode()) + item(0x40, b"1.2.840.10008.1.2")
    body = (
        struct.pack(">H2x", 1)
        + called.ljust(16)[:16]
        + calling.ljust(16)[:16]
        + bytes(32)
        + item(0x10, b"1.2.840.10008.3.1.1.1")
        + item(0x20, bytes([1, 0, 0, 0]) + context)
        + item(0x50, item(0x51, struct.pack(">I", 16384)))
    )
    return struct.pack(">BxI", 0x01, len(body)) + body


def exchange(server: DicomServer, pdu: bytes) -> bytes:
    """Send one PDU on a fresh connection; the first bytes of the reply."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(pdu)
        return conn.recv(64)


def test_odd_calling_ae_titles_are_rejected_and_logged_as_sent(
    store: WorklistStore, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="broker.dicom.server"),
        serving(store, {"CT1": {"addresses": LOCAL}}, allow_unknown=False) as server,
    ):
        odd = exchange(server, raw_associate_rq(AE_TITLE.encode(), b"%s' OR '1'='1"))
        raw = exchange(server, raw_associate_rq(AE_TITLE.encode(), b"CT1\nFORGED\x1b[2J"))
    assert odd[0] == 0x03 and tuple(odd[7:10]) == AE_NOT_RECOGNIZED  # A-ASSOCIATE-RJ
    (line,) = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert "calling AE title '%s' OR '1'='1'" in line
    assert "(permanent, calling AE title not recognized)" in line
    # control characters: pynetdicom cannot decode the request and aborts (A-ABORT) before
    # the policy runs; no association either way
    assert raw[0] == 0x07, raw


def test_a_failing_policy_rejects(store: WorklistStore) -> None:
    def broken(calling: str, address: str) -> Any:
        raise RuntimeError("bug")

    configure_pynetdicom_logging()
    server = DicomServer(
        ae_title=AE_TITLE,
        host="127.0.0.1",
        port=0,
        find_service=WorklistFindService(store, max_answers=10),
        admission=broken,
    )
    server.start()
    try:
        with associated(server, "CT1", Verification) as assoc:
            assert rejection(assoc) == (
                RejectResult.TRANSIENT,
                RejectSource.SERVICE_USER,
                RejectReason.NO_REASON_GIVEN,
            )
    finally:
        server.stop()


def test_a_find_service_without_the_association_check_still_refuses(
    store: WorklistStore,
) -> None:
    """C-FIND keeps its own check (it needs the caller's profile anyway)."""
    profiles = ProfileSet.parse({"CT1": {"addresses": [OTHER_LOOPBACK]}})
    configure_pynetdicom_logging()
    server = DicomServer(
        ae_title=AE_TITLE,
        host="127.0.0.1",
        port=0,
        find_service=WorklistFindService(store, max_answers=10, profiles=profiles),
        mpps_service=MppsService(MppsStore(store, events_max=10), profiles=profiles),
        admission=ProfileSet({}, allow_unknown=True).decide,  # lets anyone in
    )
    server.start()
    try:
        with associated(server, "CT1", ModalityWorklistInformationFind) as assoc:
            assert use(assoc, ModalityWorklistInformationFind) == Status.UNABLE_TO_PROCESS
        with associated(server, "CT1", ModalityPerformedProcedureStep) as assoc:
            assert use(assoc, ModalityPerformedProcedureStep) == MppsStatus.NOT_AUTHORIZED
    finally:
        server.stop()

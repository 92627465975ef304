"""The transport guard beneath pynetdicom, on real sockets against a real DicomServer on a
real redis-server: PDUs over the cap of their type are aborted, PDUs that do not arrive
whole within the network timeout are closed, a connection counts against its address's
cap until its association ends, a peer that does not read its answers loses its
association and its slot, and refused peers are closed at once, never held.

The misbehaving peers are plain sockets speaking raw PDUs (``tests.dicom_pdus``); the
legitimate scanner beside them is pynetdicom's SCU.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.dicom.find import WorklistFindService
from broker.dicom.profiles import ProfileSet
from broker.dicom.server import DicomServer, configure_pynetdicom_logging
from broker.dicom.status import Status
from broker.dicom.transport import MAX_ASSOCIATE_RQ_BYTES, AbortReason, abort_pdu
from broker.store.worklist import WorklistStore
from tests.dicom_pdus import HEADER, associate_rq, associated, c_echo_rq, c_find_rq
from tests.integration.dicom_find_helpers import entry, put, query
from tests.integration.test_dicom_guard import hung_up
from tests.scu import ModalityWorklistInformationFind, Verification

AE_TITLE = "MWL_TEST"
CALLING = "RAW_SCU"
LISTED = "CT_LISTED"
INVALID_PARAMETER = abort_pdu(AbortReason.INVALID_PARAMETER_VALUE)


@contextmanager
def serving(
    store: WorklistStore, *, broker_logging: bool = True, **options: Any
) -> Iterator[DicomServer]:
    """A DicomServer on ``store``; with ``broker_logging``, pynetdicom's logging set as
    the broker sets it (identifiers off)."""
    if broker_logging:
        configure_pynetdicom_logging()
    server = DicomServer(
        ae_title=AE_TITLE,
        host="127.0.0.1",
        port=0,
        find_service=WorklistFindService(store, max_answers=5000),
        **options,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def connect(
    server: DicomServer, source: str = "127.0.0.1", receive_buffer: int | None = None
) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:  # before connecting, so that the window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(30)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", server.port))
    return sock


def echo(server: DicomServer, source: str = "127.0.0.1", calling: str = CALLING) -> bool:
    """A legitimate scanner's C-ECHO: associate, echo, release."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", server.port, ae_title=AE_TITLE, bind_address=(source, 0))
    if not assoc.is_established:
        # pynetdicom's SCU leaves its socket open when the connection was closed under it
        # (its shutdown fails, and the close after it is skipped)
        if assoc.dul.socket is not None and assoc.dul.socket.socket is not None:
            assoc.dul.socket.socket.close()
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0


def eventually(condition: Any, within: float = 60) -> None:
    """Wait for ``condition()``; a generous bound, not a measured time."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "not within the test's bound"
        time.sleep(0.05)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_p_data_pdu_over_the_announced_maximum_is_aborted(
    store: WorklistStore, caplog: pytest.LogCaptureFixture
) -> None:
    with serving(store) as server, connect(server) as sock:
        maximum = associated(sock, CALLING, AE_TITLE)
        sock.sendall(HEADER.pack(0x04, maximum + 7) + b"\x00" * 1024)  # the body is not read
        assert hung_up(sock) == INVALID_PARAMETER
        (line,) = [w for w in warnings_of(caplog) if "P-DATA-TF" in w]
        assert line == (
            f"DICOM association from 127.0.0.1, calling AE title '{CALLING}': P-DATA-TF of "
            f"{maximum + 7} bytes announced (at most {maximum + 6}); aborted"
        )
        assert echo(server)


@pytest.mark.parametrize(
    ("pdu_type", "length"),
    [
        (0x01, MAX_ASSOCIATE_RQ_BYTES + 1),  # A-ASSOCIATE-RQ (unexpected too, but too long first)
        (0x02, MAX_ASSOCIATE_RQ_BYTES + 1),  # A-ASSOCIATE-AC
        (0x03, 5),  # A-ASSOCIATE-RJ
        (0x04, 0xFFFFFFFF),  # P-DATA-TF of 4 GiB
        (0x05, 5),  # A-RELEASE-RQ
        (0x06, 5),  # A-RELEASE-RP
        (0x07, 1_000_000),  # A-ABORT
    ],
    ids=[
        "associate-rq",
        "associate-ac",
        "associate-rj",
        "p-data",
        "release-rq",
        "release-rp",
        "abort",
    ],
)
def test_every_pdu_type_has_a_cap(store: WorklistStore, pdu_type: int, length: int) -> None:
    with serving(store) as server, connect(server) as sock:
        associated(sock, CALLING, AE_TITLE)
        sock.sendall(HEADER.pack(pdu_type, length) + b"\x00" * 64)
        assert hung_up(sock) == INVALID_PARAMETER


def test_p_data_pdus_of_the_announced_maximum_pass(store: WorklistStore) -> None:
    """pynetdicom's SCU cuts a 20 KB identifier into P-DATA-TF PDUs of exactly the maximum
    the broker announced: they are served."""
    with serving(store) as server:
        ae = AE(ae_title=CALLING)
        ae.add_requested_context(ModalityWorklistInformationFind)
        assoc = ae.associate("127.0.0.1", server.port, ae_title=AE_TITLE)
        assert assoc.is_established
        identifier = query()
        identifier.PatientComments = "x" * 10_240  # LT: at most 10,240 characters
        identifier.ImagingServiceRequestComments = "y" * 10_240
        assert len(c_find_rq(identifier)) > 20_000
        responses = list(assoc.send_c_find(identifier, ModalityWorklistInformationFind))
        assert responses[-1][0].Status == Status.SUCCESS
        assoc.release()


def test_a_first_pdu_other_than_an_association_request_is_aborted(
    store: WorklistStore, caplog: pytest.LogCaptureFixture
) -> None:
    with serving(store) as server, connect(server) as sock:
        sock.sendall(c_echo_rq())
        assert hung_up(sock) == abort_pdu(AbortReason.UNEXPECTED_PDU)
    assert "DICOM 127.0.0.1: P-DATA-TF where an A-ASSOCIATE-RQ was due; aborted" in (
        warnings_of(caplog)
    )


def trickle(sock: socket.socket, data: bytes, sent: list[int]) -> threading.Thread:
    """Send ``data`` a byte at a time, far inside the network timeout between two bytes,
    until it is all sent or the broker hangs up; ``sent`` counts the bytes."""

    def run() -> None:
        for byte in data:
            try:
                sock.send(bytes((byte,)))
            except OSError:
                return
            sent[0] += 1
            time.sleep(0.2)

    thread = threading.Thread(target=run, name="trickle", daemon=True)
    thread.start()
    return thread


def test_an_association_request_sent_a_byte_at_a_time_is_closed_at_its_deadline(
    store: WorklistStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Its header at once, then its body a byte at a time: every read gets a byte well
    within the 1 s network timeout, yet the whole A-ASSOCIATE-RQ must arrive within it,
    and the connection is closed long before it has."""
    request, sent = associate_rq(CALLING, AE_TITLE), [0]
    with serving(store, network_timeout=1) as server, connect(server) as sock:
        sock.sendall(request[:6])
        sender = trickle(sock, request[6:], sent)
        assert hung_up(sock) == b""  # closed without a word, as the ARTIM timer closes
        sender.join()
        assert sent[0] < len(request) - 6
        assert echo(server)
    assert any("A-ASSOCIATE-RQ of" in w and "not whole within" in w for w in warnings_of(caplog))


def test_a_peer_that_sends_part_of_a_header_and_waits_is_closed(store: WorklistStore) -> None:
    with serving(store, network_timeout=1) as server, connect(server) as sock:
        sock.sendall(b"\x01\x00\x00")
        assert hung_up(sock) == b""


def test_a_pdu_sent_a_byte_at_a_time_in_an_association_is_closed_at_its_deadline(
    store: WorklistStore, caplog: pytest.LogCaptureFixture
) -> None:
    request, sent = c_echo_rq(), [0]
    with serving(store, network_timeout=1) as server, connect(server) as sock:
        associated(sock, CALLING, AE_TITLE)
        sock.sendall(request[:6])
        sender = trickle(sock, request[6:], sent)
        assert hung_up(sock) is not None
        sender.join()
        assert sent[0] < len(request) - 6
    assert any(f"calling AE title '{CALLING}': P-DATA-TF" in w for w in warnings_of(caplog))


def test_an_association_counts_against_the_per_address_cap_until_it_ends(
    store: WorklistStore,
) -> None:
    with serving(store, max_per_address=1) as server:
        ae = AE(ae_title=CALLING)
        ae.add_requested_context(Verification)
        first = ae.associate("127.0.0.1", server.port, ae_title=AE_TITLE)
        assert first.is_established
        with connect(server) as second:  # from the same address: closed before a thread
            assert hung_up(second) == b""
        assert echo(server, "127.0.0.2")  # another address is served
        first.release()
        eventually(lambda: echo(server))  # once the association has ended, its slot is free


def large_answers(store: WorklistStore) -> Dataset:
    """1,500 entries whose answers are 8 KB each, 12 MB in all: far more than the socket
    buffers hold. The query that asks for all of them."""
    for start in range(0, 1500, 500):
        batch = [entry(f"A{n:05d}", "CT1", "20261125") for n in range(start, start + 500)]
        for ds in batch:
            ds.PatientComments = "C" * 8000
        put(store, *batch)
    identifier = query()
    identifier.PatientComments = ""
    return identifier


def test_a_peer_that_stops_reading_its_answers_is_aborted_and_its_slot_freed(
    store: WorklistStore,
) -> None:
    """A peer with a 4 KiB receive buffer sends a C-FIND and never reads: the association
    ends after the network timeout, and the address's only slot serves a scanner again."""
    identifier = large_answers(store)
    with (
        serving(store, network_timeout=1, max_per_address=1) as server,
        connect(server, receive_buffer=4096) as sock,
    ):
        associated(sock, CALLING, AE_TITLE)
        sock.sendall(c_find_rq(identifier))
        eventually(lambda: server.active_associations == 0)
        # the slot is freed once the connection's thread has closed the socket, just after
        eventually(lambda: echo(server))  # from the same address, whose cap is 1
        received = hung_up(sock)
        assert received is not None and len(received) < 1500 * 8000


def test_a_peer_that_reads_its_answers_too_slowly_is_reset(
    store: WorklistStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A peer that reads 1 KiB now and then: each of the broker's sends makes some
    progress, so no send times out, but 32 answers are not taken within the network
    timeout, and the connection is reset while the peer still reads."""
    identifier = large_answers(store)
    with (
        serving(store, network_timeout=1) as server,
        connect(server, receive_buffer=4096) as sock,
    ):
        associated(sock, CALLING, AE_TITLE)
        sock.sendall(c_find_rq(identifier))
        sock.settimeout(0.1)

        def reads_a_little() -> bool:
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                sock.recv(1024)
            return server.active_associations == 0

        eventually(reads_a_little)
    assert (
        f"DICOM C-FIND from 127.0.0.1, calling AE title '{CALLING}': answers not read for 1 s; "
        "connection reset"
    ) in warnings_of(caplog)


def test_500_idle_connections_get_their_address_cap_and_a_listed_scanner_is_served(
    store: WorklistStore,
) -> None:
    profiles = ProfileSet.parse({LISTED: {"addresses": ["127.0.0.2"]}}, allow_unknown=False)
    options: dict[str, Any] = {"max_per_address": 8, "max_associations": 32, "network_timeout": 300}
    with serving(store, admission=profiles.decide, **options) as server:
        idle = [connect(server) for _ in range(500)]
        try:
            with selectors.DefaultSelector() as watch:
                for sock in idle:
                    watch.register(sock, selectors.EVENT_READ)
                closed: set[socket.socket] = set()

                def refused() -> bool:
                    for key, _ in watch.select(timeout=0.1):
                        sock = key.fileobj
                        assert isinstance(sock, socket.socket)
                        if hung_up(sock) is not None:
                            closed.add(sock)
                            watch.unregister(sock)
                    return len(closed) >= 492

                eventually(refused)  # each refused at once, not held for the 300 s timeout
                assert not watch.select(timeout=0.5)  # the 8 admitted ones are held
            assert echo(server, "127.0.0.2", LISTED)
        finally:
            for sock in idle:
                sock.close()


def test_a_refused_caller_is_closed_at_once_after_its_rejection(
    store: WorklistStore, caplog: pytest.LogCaptureFixture
) -> None:
    """An A-ASSOCIATE-RJ, then the connection closed: not held for the ARTIM timer (here
    300 s) waiting for the caller to close it."""
    profiles = ProfileSet.parse({LISTED: {"addresses": ["127.0.0.2"]}}, allow_unknown=False)
    with (
        serving(store, admission=profiles.decide, acse_timeout=300, network_timeout=300) as server,
        connect(server) as sock,
    ):
        sock.sendall(associate_rq("STRANGER", AE_TITLE))
        answer = hung_up(sock)
        assert answer is not None and answer[:1] == b"\x03"  # A-ASSOCIATE-RJ, then closed
        eventually(lambda: server.active_associations == 0)
    assert any("'STRANGER', rejected" in w for w in warnings_of(caplog))


def test_an_address_no_scanner_may_use_is_closed_as_it_connects(
    store: WorklistStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Idle connections from many unlisted addresses cannot take the association slots:
    each is closed before a thread starts or a byte is read, and the log says so once per
    address a minute, with a count, not once per connection."""
    profiles = ProfileSet.parse({LISTED: {"addresses": ["127.0.0.2"]}}, allow_unknown=False)
    options: dict[str, Any] = {"max_per_address": 8, "max_associations": 4, "network_timeout": 300}
    with (
        caplog.at_level(logging.WARNING, logger="broker.dicom.guard"),
        serving(
            store, admission=profiles.decide, reachable=profiles.may_connect, **options
        ) as server,
    ):
        for n in range(20):  # 20 addresses x 3 connections: far over the 4 slots
            for _ in range(3):
                with connect(server, f"127.0.1.{n + 1}") as sock:
                    assert hung_up(sock) == b""  # closed unread, nothing sent
        assert echo(server, "127.0.0.2", LISTED)  # every slot still free for it
    lines = [w for w in warnings_of(caplog) if "no scanner may connect" in w]
    assert len(lines) == 20 and all("127.0.1." in line for line in lines)

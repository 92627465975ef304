"""The guard in front of pynetdicom, on real sockets: an over-long A-ASSOCIATE-RQ is closed
unread, connections are capped per address and in all before a thread is started, and a
silent peer is closed; a legitimate C-ECHO is served throughout."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pynetdicom import AE

from broker.app import Broker
from broker.dicom.transport import AbortReason, abort_pdu
from tests.broker_runner import broker_settings, running_broker

VERIFICATION = "1.2.840.10008.1.1"


@contextmanager
def broker(tmp_path: Path, **settings: object) -> Iterator[Broker]:
    with running_broker(broker_settings(tmp_path / "data", **settings)) as b:
        yield b


def port(b: Broker) -> int:
    assert b.endpoints is not None
    return b.endpoints.dicom_port


def raw(b: Broker, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port(b)), timeout=30, source_address=(source, 0))


def hung_up(sock: socket.socket) -> bytes | None:
    """What the broker sent before it closed the connection (EOF or reset); None when it
    kept the connection open for the client's timeout."""
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return data


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the broker closes the connection (EOF or reset) rather than waiting."""
    return hung_up(sock) is not None


def echo(b: Broker, source: str = "127.0.0.1") -> bool:
    ae = AE(ae_title="GUARD_TEST")
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", port(b), ae_title="MWL_BROKER", bind_address=(source, 0))
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0


def test_a_4_gib_association_request_is_closed_unread(tmp_path: Path) -> None:
    with broker(tmp_path) as b:
        with raw(b) as attacker:
            attacker.sendall(struct.pack(">BxL", 0x01, 0xFFFFFFFF) + b"\x00" * 1024)
            assert hung_up(attacker) == abort_pdu(AbortReason.INVALID_PARAMETER_VALUE)
        assert echo(b)


def test_connections_are_capped_per_address_before_a_thread(tmp_path: Path) -> None:
    with broker(tmp_path, dicom_max_connections_per_address=2) as b:
        idle = [raw(b, "127.0.0.2"), raw(b, "127.0.0.2")]
        try:
            with raw(b, "127.0.0.2") as third:
                assert closed_by_peer(third)
            assert echo(b, "127.0.0.1")  # another address is served
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 30
        while not echo(b, "127.0.0.2"):  # the address is served again once they are gone
            assert time.monotonic() < deadline


def test_connections_are_capped_in_all(tmp_path: Path) -> None:
    with broker(tmp_path, dicom_max_associations=2) as b:
        idle = [raw(b, "127.0.0.2"), raw(b, "127.0.0.3")]
        try:
            with raw(b, "127.0.0.4") as third:
                assert closed_by_peer(third)
        finally:
            for sock in idle:
                sock.close()


def test_a_silent_peer_is_closed(tmp_path: Path) -> None:
    with broker(tmp_path, dicom_network_timeout=1) as b, raw(b) as silent:
        assert closed_by_peer(silent)  # within the client's 30 s: the broker's 1 s timeout
        assert echo(b)

"""DICOM over TLS on real sockets (pynetdicom SCUs): BCP 195 only, the handshake off the
accepting thread, and client certificates that must name the calling AE title."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pynetdicom import AE

from broker.app import Broker
from tests.broker_runner import broker_settings, running_broker
from tests.tls_certs import Pair, issue, make_ca

VERIFICATION = "1.2.840.10008.1.1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair]:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder)
    return {
        "ca": ca,
        "server": issue(ca, folder, "broker", ip="127.0.0.1"),
        "ct1": issue(ca, folder, "CT1"),
        "mr1": issue(ca, folder, "mr-scanner", dns="MR1"),
    }


@contextmanager
def broker(tmp_path: Path, pki: dict[str, Pair], *, client_ca: bool) -> Iterator[Broker]:
    settings = broker_settings(
        tmp_path / "data",
        dicom_tls_cert=pki["server"].cert,
        dicom_tls_key=pki["server"].key,
        dicom_tls_client_ca=pki["ca"].cert if client_ca else None,
        dicom_network_timeout=5,
    )
    with running_broker(settings) as b:
        yield b


def echo(b: Broker, pki: dict[str, Pair], calling: str, cert: str | None) -> bool:
    context = ssl.create_default_context(cafile=pki["ca"].cert)
    if cert is not None:
        context.load_cert_chain(pki[cert].cert, pki[cert].key)
    ae = AE(ae_title=calling)
    ae.add_requested_context(VERIFICATION)
    assert b.endpoints is not None
    assoc = ae.associate(
        "127.0.0.1", b.endpoints.dicom_port, ae_title="MWL_BROKER", tls_args=(context, "127.0.0.1")
    )
    if not assoc.is_established:
        transport = assoc.dul.socket  # pynetdicom leaves a refused TLS socket open
        if transport is not None and transport.socket is not None:
            transport.socket.close()
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0


def test_tls_echo_and_a_plain_client_is_not_served(tmp_path: Path, pki: dict[str, Pair]) -> None:
    with broker(tmp_path, pki, client_ca=False) as b:
        assert echo(b, pki, "ANY_SCU", None)
        assert b.endpoints is not None
        with socket.create_connection(("127.0.0.1", b.endpoints.dicom_port), timeout=30) as plain:
            plain.sendall(b"\x01\x00\x00\x00\x00\x44" + b"\x00" * 68)  # A-ASSOCIATE-RQ, no TLS
            with contextlib.suppress(ConnectionResetError):  # a reset is a refusal too
                assert plain.recv(1) in (b"", b"\x15")  # closed, or a TLS alert: never an AC


def test_a_silent_client_does_not_stall_the_others(tmp_path: Path, pki: dict[str, Pair]) -> None:
    """The handshake runs in the connection's thread: a client that never sends its hello
    holds only its own connection."""
    with broker(tmp_path, pki, client_ca=False) as b:
        assert b.endpoints is not None
        with socket.create_connection(("127.0.0.1", b.endpoints.dicom_port), timeout=30):
            assert echo(b, pki, "ANY_SCU", None)


def test_client_certificates_must_name_the_calling_ae(tmp_path: Path, pki: dict[str, Pair]) -> None:
    with broker(tmp_path, pki, client_ca=True) as b:
        assert echo(b, pki, "CT1", "ct1")
        assert echo(b, pki, "mr1", "mr1")  # the DNS alternative name, any case
        assert not echo(b, pki, "MR1", "ct1")  # a valid certificate of another scanner
        assert not echo(b, pki, "CT1", None)  # no certificate: the handshake fails

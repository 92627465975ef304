"""MLLP access over real sockets: an address no sender lists is closed before a byte is read,
a listed one is served, its messages must carry its MSH-3, and each address has a cap.

127.0.0.2 is another address of this machine (the loopback range): a client socket bound
to it is a second host for the broker's checks.
"""

from __future__ import annotations

import socket
from pathlib import Path

from broker.app import Broker
from broker.mllp.client import summarize_ack
from broker.settings import Settings, load_settings
from tests.broker_runner import DATA, MAPPINGS, running_broker

ORDER = (DATA / "orm_o01_nw_latin1.hl7").read_bytes().replace(b"\r\n", b"\r")  # MSH-3 RIS


def settings(tmp_path: Path, senders: str, **extra: object) -> Settings:
    config = tmp_path / "broker.toml"
    config.write_text(senders, encoding="utf-8")
    values = {
        "hl7_host": "127.0.0.1", "hl7_port": 0, "dicom_host": "127.0.0.1", "dicom_port": 0,
        "admin_port": 0,
        "data_dir": tmp_path / "data", "mappings_dir": MAPPINGS, **extra,
    }  # fmt: skip
    return load_settings(config_file=config, environ={}, overrides=values)


def connect(broker: Broker, source: str) -> socket.socket:
    assert broker.endpoints is not None
    sock = socket.create_connection(
        ("127.0.0.1", broker.endpoints.hl7_port), timeout=10, source_address=(source, 0)
    )
    return sock


def exchange(sock: socket.socket, message: bytes) -> bytes:
    """Send one framed message; the framed answer, or b"" if the broker closed the socket."""
    try:
        sock.sendall(b"\x0b" + message + b"\x1c\r")
    except OSError:
        return b""
    answer = b""
    while not answer.endswith(b"\x1c\r"):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return b""
        if not chunk:
            return b""
        answer += chunk
    return answer[1:-2]


RIS_ON_2 = '[hl7_senders.RIS]\naddresses = ["127.0.0.2"]\napplication = "RIS"\n'


def test_an_unlisted_address_is_closed_and_a_listed_one_served(tmp_path: Path) -> None:
    with running_broker(settings(tmp_path, RIS_ON_2)) as broker:
        with connect(broker, "127.0.0.1") as stranger:
            assert exchange(stranger, ORDER) == b""  # no ACK: closed before reading
        with connect(broker, "127.0.0.2") as ris:
            assert summarize_ack(exchange(ris, ORDER)).code == "AA"
        assert broker.store is not None and broker.store.count() == 1


def test_a_message_naming_another_sender_is_refused_at_msh3(tmp_path: Path) -> None:
    with running_broker(settings(tmp_path, RIS_ON_2)) as broker:
        forged = ORDER.replace(b"MSH|^~\\&|RIS|", b"MSH|^~\\&|HIS|", 1)
        with connect(broker, "127.0.0.2") as ris:
            ack = summarize_ack(exchange(ris, forged))
        assert ack.code == "AR" and ack.errors[0].startswith("MSH-3 207")
        assert "belongs to sender RIS" in ack.text
        assert broker.store is not None and broker.store.count() == 0


def test_with_no_sender_loopback_is_served(tmp_path: Path) -> None:
    with running_broker(settings(tmp_path, "")) as broker:
        for source in ("127.0.0.1", "127.0.0.2"):
            with connect(broker, source) as local:
                assert summarize_ack(exchange(local, ORDER)).code == "AA"


def test_connections_per_address_are_capped(tmp_path: Path) -> None:
    cap = settings(tmp_path, "", hl7_max_connections_per_address=2)
    with running_broker(cap) as broker:
        first, second = connect(broker, "127.0.0.2"), connect(broker, "127.0.0.2")
        try:
            assert summarize_ack(exchange(first, ORDER)).code == "AA"
            assert summarize_ack(exchange(second, ORDER)).code == "AA"  # a resend: same ACK
            with connect(broker, "127.0.0.2") as third:
                assert exchange(third, ORDER) == b""
            with connect(broker, "127.0.0.3") as other:  # another address has its own cap
                assert summarize_ack(exchange(other, ORDER)).code == "AA"
        finally:
            first.close()
            second.close()

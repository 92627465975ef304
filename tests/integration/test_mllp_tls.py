"""MLLP over TLS on real sockets: BCP 195 only, client certificates bound to senders."""

from __future__ import annotations

import socket
import ssl
from dataclasses import replace
from pathlib import Path

import pytest

from broker.app import Broker
from broker.common.tls import server_context
from broker.errors import ConfigError
from broker.mllp.client import summarize_ack
from broker.settings import Settings, load_settings
from tests.broker_runner import MAPPINGS, running_broker
from tests.integration.test_mllp_senders import ORDER, exchange
from tests.tls_certs import Pair, issue, make_ca


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair]:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder)
    other_ca = make_ca(folder / "other", "Other CA")
    return {
        "ca": ca,
        "server": issue(ca, folder, "broker", ip="127.0.0.1"),
        "ris": issue(ca, folder, "ris.hospital.example"),
        "lab": issue(ca, folder, "lab", dns="lab.hospital.example"),
        "stranger": issue(other_ca, folder / "other", "ris.hospital.example"),
    }


def settings(
    tmp_path: Path, pki: dict[str, Pair], *, client_ca: bool, senders: str = ""
) -> Settings:
    config = tmp_path / "broker.toml"
    config.write_text(senders, encoding="utf-8")
    values = {
        "hl7_host": "127.0.0.1", "hl7_port": 0, "dicom_host": "127.0.0.1", "dicom_port": 0,
        "admin_port": 0,
        "data_dir": tmp_path / "data", "mappings_dir": MAPPINGS,
        "hl7_tls_cert": pki["server"].cert, "hl7_tls_key": pki["server"].key,
        "hl7_tls_client_ca": pki["ca"].cert if client_ca else None,
    }  # fmt: skip
    return load_settings(config_file=config, environ={}, overrides=values)


def tls_client(
    broker: Broker, pki: dict[str, Pair], client: str | None = None, **options: object
) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=pki["ca"].cert)
    for name, value in options.items():
        setattr(context, name, value)
    if client is not None:
        context.load_cert_chain(pki[client].cert, pki[client].key)
    assert broker.endpoints is not None
    raw = socket.create_connection(("127.0.0.1", broker.endpoints.hl7_port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_tls_is_served_and_plain_tcp_gets_nothing(tmp_path: Path, pki: dict[str, Pair]) -> None:
    with running_broker(settings(tmp_path, pki, client_ca=False)) as broker:
        with tls_client(broker, pki) as secure:
            assert secure.version() in ("TLSv1.2", "TLSv1.3")
            assert summarize_ack(exchange(secure, ORDER)).code == "AA"
        assert broker.endpoints is not None
        with socket.create_connection(
            ("127.0.0.1", broker.endpoints.hl7_port), timeout=10
        ) as plain:
            assert exchange(plain, ORDER) == b""


def test_weak_ciphers_are_refused(tmp_path: Path, pki: dict[str, Pair]) -> None:
    context = server_context("x", pki["server"].cert, pki["server"].key)
    offered = context.get_ciphers()
    assert all(c["aead"] for c in offered), [c["name"] for c in offered if not c["aead"]]
    assert {c["protocol"] for c in offered} <= {"TLSv1.2", "TLSv1.3"}
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with running_broker(settings(tmp_path, pki, client_ca=False)) as broker:
        client = ssl.create_default_context(cafile=pki["ca"].cert)
        client.maximum_version = ssl.TLSVersion.TLSv1_2
        client.set_ciphers("AES128-SHA256")  # RSA key exchange, CBC: not in BCP 195
        assert broker.endpoints is not None
        raw = socket.create_connection(("127.0.0.1", broker.endpoints.hl7_port), timeout=10)
        with pytest.raises(ssl.SSLError):
            client.wrap_socket(raw, server_hostname="127.0.0.1")
        raw.close()


def refused(sock: ssl.SSLSocket) -> bool:
    """Whether the broker ends the connection without answering (TLS 1.3 reports a client
    certificate it refuses after the handshake, on the first read)."""
    try:
        return exchange(sock, ORDER) == b""
    except (ssl.SSLError, ConnectionError):
        return True


RIS = (
    '[hl7_senders.RIS]\naddresses = ["127.0.0.1"]\napplication = "RIS"\n'
    'tls_names = ["ris.hospital.example"]\n'
)


def test_client_certificates_are_bound_to_the_sender(tmp_path: Path, pki: dict[str, Pair]) -> None:
    with running_broker(settings(tmp_path, pki, client_ca=True, senders=RIS)) as broker:
        with tls_client(broker, pki, "ris") as ris:
            assert summarize_ack(exchange(ris, ORDER)).code == "AA"
        with tls_client(broker, pki, "lab") as lab:  # a valid certificate, another name
            assert refused(lab)
        with tls_client(broker, pki) as anonymous:  # no certificate at all
            assert refused(anonymous)
        with tls_client(broker, pki, "stranger") as forged:  # the right name, another CA
            assert refused(forged)
        assert broker.store is not None and broker.store.count() == 1


def test_unusable_files_stop_the_start_naming_the_setting(
    tmp_path: Path, pki: dict[str, Pair]
) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate\n")
    values = settings(tmp_path, pki, client_ca=False)
    with pytest.raises(ConfigError) as info, running_broker(replace(values, hl7_tls_cert=broken)):
        pass
    assert info.value.setting == "hl7_tls_cert" and "broken.pem" in info.value.message
    with pytest.raises(ConfigError) as half:
        load_settings(environ={}, overrides={"hl7_tls_cert": pki["server"].cert})
    assert half.value.setting == "hl7_tls_key"

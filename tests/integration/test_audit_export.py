"""The syslog export against real collectors on 127.0.0.1: UDP, TCP with octet counting and
TLS; it resumes after the collector was away, and with two exporters each record is sent
once."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.typing import EncodableT, FieldT

from broker.audit.atna import AtnaSource
from broker.audit.events import AuditEvent, AuditType, Outcome, to_fields
from broker.audit.exporter import SyslogExporter
from broker.audit.syslog import SyslogSender, SyslogTarget, client_context
from broker.audit.writer import AuditWriter
from broker.store.connection import EmbeddedRedis
from broker.store.keys import KeySchema
from tests.conftest import require_tool
from tests.tls_certs import issue, make_ca

KEYS = KeySchema("mwl")
SOURCE = AtnaSource("mwl-broker", "MWL_BROKER", "broker-host")
_HEADER = re.compile(rb"^<(\d+)>1 (\S+) (\S+) (\S+) (\d+) (\S+) - \xef\xbb\xbf")


class Collector:
    """A syslog collector: UDP datagrams, or TCP/TLS with RFC 6587 octet counting."""

    def __init__(self, protocol: str, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.protocol = protocol
        self.messages: list[bytes] = []
        self._tls = tls
        self._arrived = threading.Condition()
        kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        if protocol != "udp":
            self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            if self.protocol == "udp":
                while True:
                    self._add(self.sock.recv(65536))
            while True:
                conn, _ = self.sock.accept()
                if self._tls is not None:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                self._connections.append(conn)
                threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buffer = b""
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                buffer += chunk
                while b" " in buffer:
                    length, _, rest = buffer.partition(b" ")
                    if len(rest) < int(length):
                        break
                    self._add(rest[: int(length)])
                    buffer = rest[int(length) :]

    def _add(self, message: bytes) -> None:
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 60) -> list[bytes]:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.messages) >= count, timeout), (
                f"{len(self.messages)} of {count} messages arrived"
            )
            return list(self.messages)

    def close(self) -> None:
        for conn in self._connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Said(logging.Handler):
    """Set when a log record holding ``text`` is emitted."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.WARNING)
        self.text = text
        self.said = ""
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.said = record.getMessage()
            self.event.set()

    def wait(self, timeout: float) -> bool:
        return self.event.wait(timeout)


def body(message: bytes, host: str | None = None) -> ET.Element:
    """The audit message of a syslog message, its header checked (and its host)."""
    match = _HEADER.match(message)
    assert match, message[:120]
    assert match[4] == b"mwl-broker" and match[6] == b"IHE+RFC-3881"
    assert host is None or match[3] == host.encode()
    return ET.fromstring(message[match.end() :])


def targets(messages: list[bytes]) -> list[str]:
    return [
        body(m, "broker-host").findtext("EventIdentification/EventOutcomeDescription") or ""
        for m in messages
    ]


def numbered(n: int) -> AuditEvent:
    return AuditEvent(AuditType.CONNECTION_REFUSED, Outcome.REFUSED, address="10.0.0.9",
                      reason=f"event {n}", node="broker-host")  # fmt: skip


def entry_fields(event: AuditEvent) -> dict[FieldT, EncodableT]:
    """The event's stream entry, typed as redis-py's XADD takes it."""
    return dict(to_fields(event).items())


@contextlib.contextmanager
def exporting(
    client: redis.Redis, target: str, tls: ssl.SSLContext | None = None
) -> Iterator[SyslogExporter]:
    sender = SyslogSender(SyslogTarget.parse(target), timeout=5, tls=tls)
    exporter = SyslogExporter(client, KEYS, sender, SOURCE)
    exporter.start()
    try:
        yield exporter
    finally:
        exporter.stop(10)


@pytest.fixture
def writer(redis_client: redis.Redis) -> Iterator[AuditWriter]:
    w = AuditWriter(redis_client, KEYS.audit(), max_events=10_000, node="broker-host")
    w.start()
    yield w
    w.stop(10)


def write(writer: AuditWriter, numbers: range) -> None:
    for n in numbers:
        writer.record(numbered(n))
    assert writer.flush(30)


def test_udp_one_datagram_per_record(redis_client: redis.Redis, writer: AuditWriter) -> None:
    collector = Collector("udp")
    try:
        write(writer, range(3))
        with exporting(redis_client, f"127.0.0.1:{collector.port}"):
            messages = collector.wait_for(3)
        assert targets(messages) == ["event 0", "event 1", "event 2"]
        assert all(m.startswith(b"<84>1 ") for m in messages)  # authpriv.warning: refusals
        event_id = body(messages[0]).find("EventIdentification/EventID")
        assert event_id is not None and event_id.get("csd-code") == "110113"
    finally:
        collector.close()


def test_tcp_resumes_where_it_stopped_after_the_collector_was_away(
    redis_client: redis.Redis, writer: AuditWriter
) -> None:
    collector = Collector("tcp")
    port = collector.port
    with exporting(redis_client, f"tcp://127.0.0.1:{port}") as exporter:
        write(writer, range(5))
        assert targets(collector.wait_for(5)) == [f"event {n}" for n in range(5)]
        failed = Said("cannot send")
        logging.getLogger("broker.audit.exporter").addHandler(failed)
        try:
            collector.close()  # the collector goes away; records keep coming
            write(writer, range(5, 12))
            assert failed.wait(60)  # the exporter tried, and could not
        finally:
            logging.getLogger("broker.audit.exporter").removeHandler(failed)
        back = Collector("tcp", port)
        try:
            received = targets(back.wait_for(7))
        finally:
            back.close()
    assert received == [f"event {n}" for n in range(5, 12)]
    assert exporter.sent == 12


def test_tls_to_a_verified_collector(
    redis_client: redis.Redis, writer: AuditWriter, tmp_path: Path
) -> None:
    ca = make_ca(tmp_path / "pki")
    server = issue(ca, tmp_path / "pki", "siem", ip="127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server.cert, server.key)
    collector = Collector("tls", tls=context)
    try:
        write(writer, range(2))
        with exporting(redis_client, f"tls://127.0.0.1:{collector.port}", client_context(ca.cert)):
            assert targets(collector.wait_for(2)) == ["event 0", "event 1"]
    finally:
        collector.close()


def test_an_exporter_restarted_or_doubled_sends_each_record_once(
    redis_client: redis.Redis, writer: AuditWriter
) -> None:
    collector = Collector("tcp")
    address = f"tcp://127.0.0.1:{collector.port}"
    try:
        write(writer, range(3))
        with exporting(redis_client, address):
            collector.wait_for(3)
        write(writer, range(3, 6))
        with exporting(redis_client, address) as one, exporting(redis_client, address) as two:
            messages = collector.wait_for(6)
            write(writer, range(6, 9))
            messages = collector.wait_for(9)
        assert targets(messages) == [f"event {n}" for n in range(9)]
        assert one.sent + two.sent == 6 and len(collector.messages) == 9
    finally:
        collector.close()


def test_records_trimmed_before_they_were_sent_are_said(tmp_path: Path) -> None:
    """Redis 7 tells the newest id it trimmed; the exporter says when that is past its
    position, and goes on from the oldest record left."""
    binary = require_tool("redis-server", "redis-server")
    server = EmbeddedRedis(tmp_path / "redis7", binary=Path(binary))
    server.start()
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    collector = Collector("tcp")
    trimmed = Said("trimmed")
    logging.getLogger("broker.audit.exporter").addHandler(trimmed)
    try:
        stream = KEYS.audit()
        for n in range(3):
            client.xadd(stream, entry_fields(numbered(n)))
        with exporting(client, f"tcp://127.0.0.1:{collector.port}"):
            collector.wait_for(3)
        for n in range(3, 13):  # the collector's export is away; the stream keeps 5
            client.xadd(stream, entry_fields(numbered(n)), maxlen=5, approximate=False)
        with exporting(client, f"tcp://127.0.0.1:{collector.port}"):
            received = targets(collector.wait_for(8))
        assert trimmed.wait(30) and "5 record(s) were trimmed" in trimmed.said
    finally:
        logging.getLogger("broker.audit.exporter").removeHandler(trimmed)
        collector.close()
        client.close()
        server.stop()
    assert received == [f"event {n}" for n in (0, 1, 2, 8, 9, 10, 11, 12)]

"""The asyncio MLLP server on real loopback sockets (port 0), driven by python-hl7's
MLLP client, by raw sockets and by our own client: messages in order, framing and junk,
handler errors, oversize frames. Connections' lifecycle: ``test_mllp_server_lifecycle.py``.

Each test runs its scenario with ``asyncio.run``; blocking peers run in
threads (``asyncio.to_thread``). Readiness comes from events and log records,
never from sleeping; socket timeouts are only a safety net.
"""

from __future__ import annotations

import asyncio
import logging

import hl7.client
import pytest

from broker.mllp.client import MLLPClient, MLLPClientError, summarize_ack
from broker.mllp.framing import MLLPDecoder, frame
from broker.mllp.server import MAX_JUNK_BYTES
from tests.integration.mllp_server_helpers import (
    HOST,
    IO_TIMEOUT,
    App,
    ack_payload,
    connect,
    exchange,
    msg,
    no_nak,
    read_frames,
    read_to_eof,
    run,
    serving,
)

pytestmark = pytest.mark.usefixtures("server_logs")  # no patient data in the server's logs


def test_python_hl7_client_many_messages_in_order() -> None:
    cids = [f"M{i:03d}" for i in range(60)]

    def drive(port: int) -> list[bytes]:
        with hl7.client.MLLPClient(HOST, port) as client:
            client.socket.settimeout(IO_TIMEOUT)
            return [client.send_message(msg(cid)) for cid in cids]

    async def scenario() -> None:
        app = App()
        async with serving(app) as server:
            raw = await asyncio.to_thread(drive, server.port)
        assert app.seen == cids
        decoder = MLLPDecoder(1 << 20)
        acks = [payload for r in raw for payload in decoder.feed(r)]
        assert [summarize_ack(a).control_id for a in acks] == cids
        assert {summarize_ack(a).code for a in acks} == {"AA"}

    run(scenario)


def test_python_hl7_client_unicode_message() -> None:
    def drive(port: int) -> bytes:
        with hl7.client.MLLPClient(HOST, port, encoding="utf-8") as client:
            client.socket.settimeout(IO_TIMEOUT)
            text = msg("U1").decode().replace("JANE", "J\u00f6rg M\u00fcller")
            return bytes(client.send_message(text))

    async def scenario() -> None:
        async with serving(App()) as server:
            raw = await asyncio.to_thread(drive, server.port)
        assert MLLPDecoder(1 << 20).feed(raw) == [ack_payload("AA", "U1")]

    run(scenario)


def test_one_message_in_flight_per_connection_and_connections_in_parallel() -> None:
    async def scenario() -> None:
        app = App()
        entered, release = app.hold("A1")
        async with serving(app) as server:
            first = asyncio.create_task(
                asyncio.to_thread(exchange, server.port, [msg("A1"), msg("A2"), msg("A3")])
            )
            await entered.wait()
            # A1 is held: A2 and A3 arrived in the same read but wait their turn,
            # while another connection is served meanwhile.
            other = await asyncio.to_thread(exchange, server.port, [msg("B1")])
            assert app.seen == ["A1", "B1"]
            release.set()
            acks = await first
        assert [summarize_ack(a).control_id for a in acks] == ["A1", "A2", "A3"]
        assert other == [ack_payload("AA", "B1")]
        assert app.seen == ["A1", "B1", "A2", "A3"]

    run(scenario)


def test_junk_and_single_byte_writes() -> None:
    def drive(port: int) -> list[bytes]:
        with connect(port) as sock:
            wire = b"\x00\r\n" + frame(msg("J1")) + b"\x00\x00" + frame(msg("J2"))[:-1]
            for i in range(len(wire)):
                sock.sendall(wire[i : i + 1])
            return read_frames(sock, 2)

    async def scenario() -> None:
        async with serving(App()) as server:
            acks = await asyncio.to_thread(drive, server.port)
        assert acks == [ack_payload("AA", "J1"), ack_payload("AA", "J2")]

    run(scenario)


def test_non_mllp_traffic_is_closed_without_waiting_for_idle_timeout() -> None:
    http = b"GET / HTTP/1.1\r\nHost: broker\r\nUser-Agent: probe\r\n\r\n"

    def drive(port: int) -> list[bytes]:
        with connect(port) as sock:
            sock.sendall(http * (MAX_JUNK_BYTES // len(http) + 2))
            return read_to_eof(sock)

    async def scenario() -> None:
        async with serving(App(), idle_timeout=3600) as server:
            assert await asyncio.to_thread(drive, server.port) == []

    run(scenario)


def test_junk_between_frames_below_the_limit_is_tolerated_each_time() -> None:
    junk = b"\x00\r\n" * (MAX_JUNK_BYTES // 4)

    def drive(port: int) -> list[bytes]:
        with connect(port) as sock:
            sock.sendall(junk + frame(msg("K1")))
            first = read_frames(sock, 1)
            sock.sendall(junk + frame(msg("K2")))
            return first + read_frames(sock, 1)

    async def scenario() -> None:
        async with serving(App()) as server:
            acks = await asyncio.to_thread(drive, server.port)
        assert acks == [ack_payload("AA", "K1"), ack_payload("AA", "K2")]

    run(scenario)


def test_handler_error_gets_rejecter_nak_and_connection_stays_open(
    server_logs: pytest.LogCaptureFixture,
) -> None:
    def drive(port: int) -> list[bytes]:
        with MLLPClient(HOST, port, timeout=IO_TIMEOUT) as client:
            return [client.send(msg("BOOM1")), client.send(msg("OK2"))]

    async def scenario() -> None:
        async with serving(App()) as server:
            acks = await asyncio.to_thread(drive, server.port)
        assert acks == [ack_payload("AR", "BOOM1", "internal error"), ack_payload("AA", "OK2")]

    run(scenario)
    failures = [r for r in server_logs.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert "BOOM1" in failures[0].getMessage()


def test_handler_error_without_nak_closes_and_our_client_reports_it() -> None:
    def drive(port: int) -> str:
        with MLLPClient(HOST, port, timeout=IO_TIMEOUT) as client:
            with pytest.raises(MLLPClientError) as info:
                client.send(msg("BOOM1"))
            return str(info.value)

    async def scenario() -> None:
        async with serving(App(), no_nak) as server:
            error = await asyncio.to_thread(drive, server.port)
            assert error == f"{HOST}:{server.port} closed the connection without a response"

    run(scenario)


@pytest.mark.parametrize("with_end_block", [True, False], ids=["complete", "streaming"])
def test_oversize_frame_gets_nak_then_close(with_end_block: bool) -> None:
    def drive(port: int) -> list[bytes]:
        with connect(port) as sock:
            big = frame(msg("BIG1", filler=20_000))
            sock.sendall(frame(msg("S1")) + (big if with_end_block else big[:-2]))
            return read_to_eof(sock)

    async def scenario() -> None:
        app = App()
        async with serving(app, max_frame_bytes=4000) as server:
            responses = await asyncio.to_thread(drive, server.port)
        assert responses == [ack_payload("AA", "S1"), ack_payload("AR", "BIG1", "frame too large")]
        assert app.seen == ["S1"]

    run(scenario)


def test_oversize_frame_without_nak_just_closes() -> None:
    def drive(port: int) -> list[bytes]:
        with connect(port) as sock:
            sock.sendall(frame(msg("BIG1", filler=5000)))
            return read_to_eof(sock)

    async def scenario() -> None:
        async with serving(App(), no_nak, max_frame_bytes=1000) as server:
            assert await asyncio.to_thread(drive, server.port) == []

    run(scenario)

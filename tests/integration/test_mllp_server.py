"""The asyncio MLLP server on real loopback sockets (port 0), driven by python-hl7's
MLLP client, by raw sockets and by our own client.

Each test runs its scenario with ``asyncio.run``; blocking peers run in
threads (``asyncio.to_thread``). Readiness comes from events and log records,
never from sleeping; socket timeouts are only a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import hl7.client
import pytest

from broker.mllp.client import MLLPClient, MLLPClientError, summarize_ack
from broker.mllp.framing import MLLPDecoder, frame
from broker.mllp.server import MAX_JUNK_BYTES, MLLPServer, Rejecter, control_id

HOST = "127.0.0.1"
IO_TIMEOUT = 10.0  # safety net against a hung test, never asserted
SERVER_LOGGER = "broker.mllp.server"
SECRET = b"SECRET-ID-4711"  # a patient identifier that must never reach the logs
T = TypeVar("T")


def msg(cid: str, filler: int = 0) -> bytes:
    return (
        b"MSH|^~\\&|RIS|HOSP|MWL|HOSP|20240101120000||ORM^O01|"
        + cid.encode()
        + b"|P|2.5.1\rPID|1||"
        + SECRET
        + b"^^^HOSP||DOE^JANE\r"
        + b"NTE|1||"
        + b"x" * filler
        + b"\r"
    )


def ack_payload(code: str, cid: str, text: str = "") -> bytes:
    header = b"MSH|^~\\&|MWL|HOSP|RIS|HOSP|20240101120000||ACK|ACK-" + cid.encode() + b"|P|2.5.1"
    return header + f"\rMSA|{code}|{cid}|{text}\r".encode()


def nak(raw: bytes, reason: str, peer: str) -> bytes | None:
    """The test's rejecter: AR echoing MSH-10 of whatever it was given."""
    return ack_payload("AR", control_id(raw), reason)


def no_nak(raw: bytes, reason: str, peer: str) -> bytes | None:
    return None


class App:
    """The handler behind the server: records, can hold a message, can fail."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.active = 0
        self.max_active = 0
        self.entered: dict[str, asyncio.Event] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.cancelled: list[str] = []

    def hold(self, cid: str) -> tuple[asyncio.Event, asyncio.Event]:
        """(entered, release) events for the message with control id ``cid``."""
        self.entered[cid], self.gates[cid] = asyncio.Event(), asyncio.Event()
        return self.entered[cid], self.gates[cid]

    async def __call__(self, payload: bytes, peer: str) -> bytes:
        cid = control_id(payload)
        assert peer.startswith(f"{HOST}:")
        self.seen.append(cid)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if cid in self.entered:
                self.entered[cid].set()
                await self.gates[cid].wait()
            if cid.startswith("BOOM"):
                raise RuntimeError("handler bug")
            return ack_payload("AA", cid)
        except asyncio.CancelledError:
            self.cancelled.append(cid)
            raise
        finally:
            self.active -= 1


@contextlib.asynccontextmanager
async def serving(
    app: App,
    rejecter: Rejecter = nak,
    *,
    max_frame_bytes: int = 64 * 1024,
    idle_timeout: float = 30.0,
    max_connections: int = 16,
) -> AsyncIterator[MLLPServer]:
    server = MLLPServer(
        app,
        rejecter,
        host=HOST,
        port=0,
        max_frame_bytes=max_frame_bytes,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop(drain_timeout=5.0)


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(scenario())


# Blocking peers (run in threads).


def connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=IO_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_frames(sock: socket.socket, count: int) -> list[bytes]:
    """Exactly ``count`` response payloads, or AssertionError on EOF."""
    decoder, frames = MLLPDecoder(1 << 20), list[bytes]()
    while len(frames) < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(frames)} of {count} responses"
        frames.extend(decoder.feed(chunk))
    assert len(frames) == count
    return frames


def read_to_eof(sock: socket.socket) -> list[bytes]:
    """All response payloads until the server closes the connection."""
    decoder, frames = MLLPDecoder(1 << 20), list[bytes]()
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            assert not decoder.has_partial_frame
            return frames
        frames.extend(decoder.feed(chunk))


def exchange(port: int, payloads: list[bytes]) -> list[bytes]:
    """Send all payloads in one write, read as many responses, close."""
    with connect(port) as sock:
        sock.sendall(b"".join(frame(p) for p in payloads))
        return read_frames(sock, len(payloads))


# Log records as readiness signals.


class LogWaiter(logging.Handler):
    def __init__(self, loop: asyncio.AbstractEventLoop, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.loop, self.text, self.event = loop, text, asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.loop.call_soon_threadsafe(self.event.set)


@contextlib.contextmanager
def log_event(text: str) -> Iterator[asyncio.Event]:
    """An event set when the server logs a record containing ``text``."""
    waiter = LogWaiter(asyncio.get_running_loop(), text)
    logger = logging.getLogger(SERVER_LOGGER)
    logger.addHandler(waiter)
    try:
        yield waiter.event
    finally:
        logger.removeHandler(waiter)


@pytest.fixture(autouse=True)
def server_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOGGER)
    yield caplog
    assert SECRET.decode() not in caplog.text
    assert "DOE" not in caplog.text


# Tests


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


def test_idle_connection_is_closed() -> None:
    def drive(port: int) -> list[bytes]:
        with connect(port) as sock:
            sock.sendall(frame(msg("I1")) + b"\x0bMSH|^~\\&|partial")
            return read_to_eof(sock)

    async def scenario() -> None:
        app = App()
        async with serving(app, idle_timeout=0.2) as server:
            with log_event("no complete frame") as idle_logged:
                responses = await asyncio.to_thread(drive, server.port)
                await idle_logged.wait()
        assert responses == [ack_payload("AA", "I1")]
        assert app.seen == ["I1"]

    run(scenario)


def test_max_connections() -> None:
    async def scenario() -> None:
        async with serving(App(), max_connections=1) as server:
            first = await asyncio.to_thread(connect, server.port)
            with first:
                first.sendall(frame(msg("C1")))
                assert await asyncio.to_thread(read_frames, first, 1) == [ack_payload("AA", "C1")]
                with log_event("refused") as refused:
                    with await asyncio.to_thread(connect, server.port) as second:
                        assert await asyncio.to_thread(read_to_eof, second) == []
                    await refused.wait()
                first.sendall(frame(msg("C2")))
                assert await asyncio.to_thread(read_frames, first, 1) == [ack_payload("AA", "C2")]
                with log_event("closed after") as closed:
                    first.close()
                    await closed.wait()
            assert server.connection_count == 0
            assert await asyncio.to_thread(exchange, server.port, [msg("C3")]) == [
                ack_payload("AA", "C3")
            ]

    run(scenario)


def test_peer_closing_mid_frame_is_not_handled() -> None:
    def drive(port: int) -> None:
        with connect(port) as sock:
            sock.sendall(b"\x0b" + msg("P1")[:30])

    async def scenario() -> None:
        app = App()
        async with serving(app) as server:
            with log_event("closed mid-frame") as logged:
                await asyncio.to_thread(drive, server.port)
                await logged.wait()
        assert app.seen == []

    run(scenario)


def test_stop_drains_in_flight_message() -> None:
    def refused(port: int) -> bool:
        try:
            socket.create_connection((HOST, port), timeout=IO_TIMEOUT).close()
        except ConnectionRefusedError:
            return True
        return False

    async def scenario() -> None:
        app = App()
        entered, release = app.hold("D1")
        server = MLLPServer(
            app, nak, host=HOST, port=0, max_frame_bytes=10_000, idle_timeout=30, max_connections=4
        )
        await server.start()
        port = server.port
        idle = await asyncio.to_thread(connect, port)
        with idle:
            assert await asyncio.to_thread(exchange, port, [msg("D0")]) == [ack_payload("AA", "D0")]
            busy = asyncio.create_task(asyncio.to_thread(exchange, port, [msg("D1")]))
            await entered.wait()
            with log_event("MLLP stopping") as stopping:
                stopper = asyncio.create_task(server.stop(drain_timeout=30))
                await stopping.wait()
            assert await asyncio.to_thread(refused, port)
            assert await asyncio.to_thread(read_to_eof, idle) == []
            assert not stopper.done()
            release.set()
            assert await busy == [ack_payload("AA", "D1")]
            await stopper
        assert server.connection_count == 0
        assert app.cancelled == []

    run(scenario)


def test_stop_gives_up_after_drain_timeout() -> None:
    def drive(port: int) -> list[bytes]:
        with connect(port) as sock:
            sock.sendall(frame(msg("H1")))
            return read_to_eof(sock)

    async def scenario() -> None:
        app = App()
        entered, _never = app.hold("H1")
        async with serving(app) as server:
            responses = asyncio.create_task(asyncio.to_thread(drive, server.port))
            await entered.wait()
            with log_event("drain timeout") as gave_up:
                await server.stop(drain_timeout=0.1)
                await gave_up.wait()
            assert await responses == []
        assert app.cancelled == ["H1"]

    run(scenario)


def test_our_client_times_out() -> None:
    def drive(port: int) -> str:
        with MLLPClient(HOST, port, timeout=0.2) as client:
            with pytest.raises(MLLPClientError) as info:
                client.send(msg("T1"))
            return str(info.value)

    async def scenario() -> None:
        app = App()
        app.hold("T1")
        async with serving(app) as server:
            error = await asyncio.to_thread(drive, server.port)
            await server.stop(drain_timeout=0.1)
        assert error == f"no response from {HOST}:{server.port} within 0.2 s"

    run(scenario)


def test_our_client_connection_refused() -> None:
    async def scenario() -> int:
        async with serving(App()) as server:
            return server.port

    port = run(scenario)
    with pytest.raises(MLLPClientError, match=f"cannot connect to {HOST}:{port}"):
        MLLPClient(HOST, port, timeout=IO_TIMEOUT)


def test_server_properties_and_argument_checks() -> None:
    async def scenario() -> None:
        server = MLLPServer(
            App(), nak, host=HOST, port=0, max_frame_bytes=1, idle_timeout=1, max_connections=1
        )
        with pytest.raises(RuntimeError):
            _ = server.port
        await server.start()
        assert server.host == HOST
        assert server.port > 0
        with pytest.raises(RuntimeError):
            await server.start()
        await server.stop(drain_timeout=1)
        await server.stop(drain_timeout=1)

    run(scenario)
    with pytest.raises(ValueError):
        MLLPServer(
            App(), nak, host=HOST, port=0, max_frame_bytes=0, idle_timeout=1, max_connections=1
        )

"""The MLLP server tests' harness: a recording handler, a server on 127.0.0.1 port 0,
blocking peers (run in threads) and log records as readiness signals.

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

from broker.mllp.framing import MLLPDecoder, frame
from broker.mllp.server import MLLPServer, Rejecter, control_id

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

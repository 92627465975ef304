"""The asyncio MLLP server's connections on real loopback sockets (port 0): idle timeout,
connection limit, a peer leaving mid-frame, stopping (drain, drain timeout), our client's
timeout and refused connection, the server's argument checks.

Each test runs its scenario with ``asyncio.run``; blocking peers run in
threads (``asyncio.to_thread``). Readiness comes from events and log records,
never from sleeping; socket timeouts are only a safety net.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from broker.mllp.client import MLLPClient, MLLPClientError
from broker.mllp.framing import frame
from broker.mllp.server import MLLPServer
from tests.integration.mllp_server_helpers import (
    HOST,
    IO_TIMEOUT,
    App,
    ack_payload,
    connect,
    exchange,
    log_event,
    msg,
    nak,
    read_frames,
    read_to_eof,
    run,
    serving,
)

pytestmark = pytest.mark.usefixtures("server_logs")  # no patient data in the server's logs


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

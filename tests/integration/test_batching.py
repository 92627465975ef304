"""The batching handler (``broker.services.batching``): messages that waited while the worker
was busy are taken as one group, each answered on its own; closing, faults, raising operations."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import redis

from broker.services.batching import BatchingHandler
from broker.store import steps
from tests.integration.batching_helpers import blocked_clients


def another_client(client: redis.Redis) -> redis.Redis:
    return redis.Redis(unix_socket_path=client.connection_pool.connection_kwargs["path"])


def answer(raw: bytes, peer: str, result: object) -> bytes:
    return result if isinstance(result, bytes) else b"NAK " + repr(result).encode()


def test_batching_handler_takes_what_waited_as_one_group(redis_client: redis.Redis) -> None:
    events: list[str] = []
    release = threading.Event()

    def start(raw: bytes, peer: str) -> steps.Steps[bytes]:
        events.append(f"start {peer}")
        if peer == "a":
            release.wait(5)  # the worker is busy with the first message
        return operation(raw, peer)

    def operation(raw: bytes, peer: str) -> steps.Steps[bytes]:
        events.append(f"map {peer}")
        (count,) = yield [steps.Command(("INCR", "n"))]
        return b"ACK " + raw + b" " + str(count).encode()

    async def scenario() -> list[bytes]:
        handler = BatchingHandler(start, answer, redis_client)
        try:
            first = asyncio.ensure_future(handler(b"1", "a"))
            while not events:  # the first message was taken at once, alone
                await asyncio.sleep(0.01)
            rest = [asyncio.ensure_future(handler(raw, p)) for raw, p in ((b"2", "b"), (b"3", "c"))]
            await asyncio.sleep(0)  # one turn of the loop: both calls queue their message
            release.set()
            return list(await asyncio.gather(first, *rest))
        finally:
            await asyncio.to_thread(handler.close)

    assert asyncio.run(scenario()) == [b"ACK 1 1", b"ACK 2 2", b"ACK 3 3"]
    # b and c waited together: both started, then both mapped, as one group
    assert events == ["start a", "map a", "start b", "start c", "map b", "map c"]


def test_a_message_is_started_while_redis_works_on_another(redis_client: redis.Redis) -> None:
    """B arrives while A's step is in Redis; only B's start can release A's step."""
    side = another_client(redis_client)

    def start(raw: bytes, peer: str) -> steps.Steps[bytes]:
        return waits_for_b() if raw == b"A" else releases_a()

    def waits_for_b() -> steps.Steps[bytes]:
        (reply,) = yield [steps.Command(("BLPOP", "q", 5))]
        return b"A timed out" if reply is None else b"A got " + reply[1]

    def releases_a() -> steps.Steps[bytes]:
        side.rpush("q", "B's push")  # done as B is started, on another connection
        (count,) = yield [steps.Command(("INCR", "n"))]
        return b"B " + str(count).encode()

    async def scenario() -> list[bytes]:
        handler = BatchingHandler(start, answer, redis_client)
        try:
            a = asyncio.ensure_future(handler(b"A", "a"))
            while blocked_clients(side) == 0:  # A's BLPOP waits in Redis
                await asyncio.sleep(0.01)
            b = asyncio.ensure_future(handler(b"B", "b"))
            return list(await asyncio.gather(a, b))
        finally:
            await asyncio.to_thread(handler.close)

    assert asyncio.run(scenario()) == [b"A got B's push", b"B 1"]
    side.close()


def test_close_answers_what_is_in_flight(redis_client: redis.Redis) -> None:
    side = another_client(redis_client)

    def start(raw: bytes, peer: str) -> steps.Steps[bytes]:
        reply: list[bytes]
        (reply,) = yield [steps.Command(("BLPOP", "q", 5))]
        return b"got " + reply[1]

    async def scenario() -> bytes:
        handler = BatchingHandler(start, answer, redis_client)
        call = asyncio.ensure_future(handler(b"1", "a"))
        while blocked_clients(side) == 0:
            await asyncio.sleep(0.01)
        closing = asyncio.ensure_future(asyncio.to_thread(handler.close))
        await asyncio.sleep(0.05)
        assert not closing.done()  # close waits for the step in flight
        side.rpush("q", "x")
        await closing
        with pytest.raises(RuntimeError, match="stopping"):
            await handler(b"2", "b")
        return await call

    assert asyncio.run(scenario()) == b"got x"
    side.close()


def test_a_worker_fault_is_passed_to_every_message_of_the_group(
    redis_client: redis.Redis,
) -> None:
    def start(raw: bytes, peer: str) -> steps.Steps[bytes]:
        raise RuntimeError("broken")

    async def scenario() -> list[Any]:
        handler = BatchingHandler(start, answer, redis_client)
        try:
            calls = [handler(b"1", "a"), handler(b"2", "b")]
            return list(await asyncio.gather(*calls, return_exceptions=True))
        finally:
            await asyncio.to_thread(handler.close)

    results = asyncio.run(scenario())
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]


def test_an_operation_that_raises_is_answered(redis_client: redis.Redis) -> None:
    def start(raw: bytes, peer: str) -> steps.Steps[bytes]:
        (count,) = yield [steps.Command(("INCR", "n"))]
        if raw == b"bad":
            raise ValueError("mapping bug")
        return b"ACK " + str(count).encode()

    async def scenario() -> list[bytes]:
        handler = BatchingHandler(start, answer, redis_client)
        try:
            return list(await asyncio.gather(handler(b"ok", "a"), handler(b"bad", "b")))
        finally:
            await asyncio.to_thread(handler.close)

    ok, bad = asyncio.run(scenario())
    assert ok.startswith(b"ACK ") and bad == b"NAK ValueError('mapping bug')"

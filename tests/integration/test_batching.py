"""Messages processed together: shared round trips, each message's own outcome and ACK."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from broker.errors import StoreError
from broker.mapping.registry import MappingRegistry
from broker.mllp.client import split_messages, summarize_ack
from broker.services.batching import BatchingHandler
from broker.services.routing import HL7Router, RouterConfig
from broker.store import steps
from broker.store.message_records import MessageQuery, Outcome
from broker.store.msglog import MessageLog
from broker.store.msglog_lua import RECORD_SCRIPT
from broker.store.worklist import WorklistStore
from tests.broker_runner import DATA, MAPPINGS
from tests.conftest import KEYS


class CountingRedis(redis.Redis):
    """A real client that counts the pipelines it sends (one round trip each)."""

    pipelines = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        CountingRedis.pipelines += 1
        return super().pipeline(*args, **kwargs)


@pytest.fixture
def counting(redis_client: redis.Redis) -> redis.Redis:
    CountingRedis.pipelines = 0
    kwargs = redis_client.connection_pool.connection_kwargs
    return CountingRedis(unix_socket_path=kwargs["path"], socket_timeout=5)


def unreachable(tmp_path: Path) -> redis.Redis:
    """A client of a server that is not there (no retries, to keep the test short)."""
    socket = str(tmp_path / "none.sock")
    return redis.Redis(unix_socket_path=socket, socket_timeout=1, retry=Retry(NoBackoff(), 0))


def incr_twice(key: str) -> steps.Steps[tuple[int, int]]:
    (first,) = yield [steps.Command(("INCR", key))]
    (second,) = yield [steps.Command(("INCR", key))]
    return int(first), int(second)


def pipelined(client: redis.Redis, operations: Sequence[steps.Steps[Any]]) -> list[Any]:
    """Drive operations as one group of a StepPipeline, the way the HL7 worker does."""
    pipeline = steps.StepPipeline(client)
    results: list[list[Any]] = []
    pipeline.start(operations, results.append)
    while len(pipeline):
        pipeline.receive()
    pipeline.close()
    (group,) = results
    return group


DRIVERS = pytest.mark.parametrize("drive", [steps.run_all, pipelined], ids=["lockstep", "pipeline"])


def test_operations_in_lockstep_share_each_round_trip(counting: redis.Redis) -> None:
    results = steps.run_all(counting, [incr_twice("a"), incr_twice("b"), incr_twice("a")])
    assert results == [(1, 3), (1, 2), (2, 4)]  # commands run in the order listed
    assert CountingRedis.pipelines == 2  # two steps, whatever the number of operations


@DRIVERS
def test_an_error_reply_goes_to_its_own_operation(counting: redis.Redis, drive: Any) -> None:
    counting.set("text", "not a number")

    def caught(key: str) -> steps.Steps[str]:
        try:
            yield [steps.Command(("INCR", key))]
        except StoreError as e:
            return f"refused: {e}"
        return "ok"

    ok, refused = drive(counting, [caught("n"), caught("text")])
    assert ok == "ok"
    assert refused.startswith("refused: worklist store unavailable") and "integer" in refused
    assert counting.get("n") == b"1"


@DRIVERS
def test_a_flushed_script_cache_is_reloaded_and_runs_once(
    counting: redis.Redis, drive: Any
) -> None:
    script = counting.register_script("return redis.call('INCR', ARGV[1])")

    def call(key: str) -> steps.Steps[int]:
        (reply,) = yield [steps.script_call(script, key)]
        return int(reply)

    assert steps.run(counting, call("k")) == 1
    counting.script_flush()
    assert drive(counting, [call("k"), call("k")]) == [2, 3]
    assert counting.get("k") == b"3"


@DRIVERS
def test_a_lost_connection_is_a_store_error_for_every_operation(tmp_path: Path, drive: Any) -> None:
    gone = unreachable(tmp_path)
    results = drive(gone, [incr_twice("a"), incr_twice("b")])
    assert all(isinstance(r, StoreError) for r in results)
    with pytest.raises(StoreError, match="unavailable"):
        steps.run(gone, incr_twice("a"))


def test_groups_are_in_flight_together_and_answered_in_order(redis_client: redis.Redis) -> None:
    pipeline = steps.StepPipeline(redis_client)
    done: list[tuple[str, list[Any]]] = []
    pipeline.start([incr_twice("a"), incr_twice("b")], lambda r: done.append(("first", r)))
    pipeline.start([incr_twice("a")], lambda r: done.append(("second", r)))
    assert len(pipeline) == 2 and not done  # both first steps sent, no reply read yet
    while len(pipeline):
        pipeline.receive()
    pipeline.close()
    # Redis ran the steps in the order they were sent: first's, second's, first's, second's
    assert done == [("first", [(1, 3), (1, 2)]), ("second", [(2, 4)])]


@pytest.mark.parametrize("health_check", [0.0, 0.001], ids=["written-to", "pinged-first"])
def test_a_connection_redis_closed_while_idle_is_replaced_before_the_next_step(
    redis_client: redis.Redis, health_check: float
) -> None:
    """Closed by Redis (as its idle timeout does) with nothing in flight: the next step
    is sent on a new connection, whether the PING of a due health check (the broker
    checks after 30 s idle) or the write of the step itself finds it closed."""
    path = redis_client.connection_pool.connection_kwargs["path"]
    # redis-py annotates the interval as int but reads it as seconds, a float (0.001: due at once)
    checked = redis.Redis(unix_socket_path=path, health_check_interval=health_check)  # type: ignore[arg-type]

    def incr(key: str) -> steps.Steps[Any]:
        (reply,) = yield [steps.Command(("INCR", key))]
        return int(reply)

    pipeline = steps.StepPipeline(checked)
    done: list[list[Any]] = []
    pipeline.start([incr("a")], done.append)
    pipeline.receive()
    redis_client.client_kill_filter(_type="normal", skipme=True)
    time.sleep(0.01)  # past the health-check interval, when there is one
    pipeline.start([incr("a")], done.append)
    pipeline.receive()
    pipeline.close()
    assert done == [[1], [2]]


def another_client(client: redis.Redis) -> redis.Redis:
    return redis.Redis(unix_socket_path=client.connection_pool.connection_kwargs["path"])


def blocked_clients(client: redis.Redis) -> int:
    return int(client.info("clients")["blocked_clients"])


def test_a_connection_lost_with_steps_in_flight_fails_them_all(redis_client: redis.Redis) -> None:
    def blpop() -> steps.Steps[Any]:
        (reply,) = yield [steps.Command(("BLPOP", "never-filled", 0))]
        return reply

    def incr(key: str) -> steps.Steps[Any]:
        (reply,) = yield [steps.Command(("INCR", key))]
        return int(reply)

    pipeline = steps.StepPipeline(redis_client)
    done: list[list[Any]] = []
    pipeline.start([blpop()], done.append)
    pipeline.start([incr("b")], done.append)  # queued behind the BLPOP on the same connection
    while blocked_clients(redis_client) == 0:
        time.sleep(0.01)
    redis_client.client_kill_filter(_type="normal", skipme=True)
    pipeline.receive()
    assert len(pipeline) == 0  # the second step's reply was lost with the first's
    assert [type(r) for (r,) in done] == [StoreError, StoreError]
    pipeline.start([incr("c")], done.append)  # the next group gets a new connection
    pipeline.receive()
    pipeline.close()
    assert done[-1] == [1]
    assert redis_client.get("b") is None  # never executed


def order(control_id: str) -> bytes:
    raw = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
    return raw.replace(b"ORM-1001", control_id.encode())


def handled_together(
    router: HL7Router, client: redis.Redis, messages: Sequence[tuple[bytes, str]]
) -> list[bytes]:
    """Messages from different connections processed as one group, in lockstep."""
    results = steps.run_all(client, [router.handle_steps(raw, peer) for raw, peer in messages])
    return [router.answer(raw, peer, r) for (raw, peer), r in zip(messages, results, strict=True)]


def test_messages_handled_together_each_get_their_own_answer(counting: redis.Redis) -> None:
    registry = MappingRegistry.load(MAPPINGS)
    mlog = MessageLog(counting)
    store = WorklistStore(counting, keys=KEYS)
    router = HL7Router(store, lambda: registry, RouterConfig(), recorder=mlog)
    first = order("B-1")
    missing_pid3 = split_messages((DATA / "orm_o01_missing_pid3.hl7").read_bytes())[0]
    other_content = first.replace(b"V-5001", b"V-5002")  # same control ID, other content
    batch = [(first, "p1"), (missing_pid3, "p2"), (first, "p3"), (other_content, "p4")]
    assert summarize_ack(router.handle(order("WARM-UP"), "p0")).code == "AA"  # scripts loaded
    counting.script_load(RECORD_SCRIPT)  # an applied order's record is written by its apply
    CountingRedis.pipelines = 0
    acks = handled_together(router, counting, batch)
    codes = [summarize_ack(a).code for a in acks]
    assert codes == ["AA", "AE", "AA", "AE"]
    assert acks[2] == acks[0]  # the resend got the very same ACK
    assert summarize_ack(acks[3]).errors == ("MSH-10 205 Duplicate key identifier",)
    # the reads, the atomic updates (with B-1's record) and the other log writes of all four:
    # one round trip each
    assert CountingRedis.pipelines == 3
    assert store.count() == 1  # WARM-UP and B-1 are the same order: one entry
    outcomes = [row.outcome for row in mlog.find(MessageQuery()).items]
    assert sorted(outcomes) == sorted(
        [Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.ERROR, Outcome.DUPLICATE, Outcome.ERROR]
    )


def test_an_applied_order_is_recorded_by_the_call_that_applies_it(counting: redis.Redis) -> None:
    registry = MappingRegistry.load(MAPPINGS)
    mlog = MessageLog(counting)
    store = WorklistStore(counting, keys=KEYS)
    router = HL7Router(store, lambda: registry, RouterConfig(), recorder=mlog)
    assert summarize_ack(router.handle(order("WARM-UP"), "p0")).code == "AA"  # scripts loaded
    CountingRedis.pipelines = 0
    ack = router.handle(order("R-1"), "p1")
    assert CountingRedis.pipelines == 2  # the reads, then the changes with their record
    (row, _) = mlog.find(MessageQuery()).items
    record = mlog.get(row.id)
    assert record is not None and record.ack == ack and record.raw == order("R-1")
    assert (row.control_id, row.outcome, row.ack_code, row.created, row.removed) == (
        "R-1", Outcome.ACCEPTED, "AA", 1, 1,  # R-1 replaces WARM-UP's entry: the same order
    )  # fmt: skip
    assert list(record.entry_ids) == store.order_entry_ids(record.order_keys[0])
    accepted = mlog.find(MessageQuery(outcome=Outcome.ACCEPTED)).items
    assert [r.control_id for r in accepted] == ["R-1", "WARM-UP"]
    assert counting.ttl(KEYS.message(row.id)) > 0


def test_messages_handled_together_are_answered_ar_when_redis_is_gone(tmp_path: Path) -> None:
    registry = MappingRegistry.load(MAPPINGS)
    gone = unreachable(tmp_path)
    router = HL7Router(WorklistStore(gone, keys=KEYS), lambda: registry, RouterConfig())
    acks = handled_together(router, gone, [(order("G-1"), "p1"), (order("G-2"), "p2")])
    assert [summarize_ack(a).code for a in acks] == ["AR", "AR"]


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

"""Messages processed together: shared round trips, each message's own outcome and ACK."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from broker.errors import StoreError
from broker.hl7.batching import BatchingHandler
from broker.hl7.client import split_messages, summarize_ack
from broker.hl7.intake import MessageQuery, Outcome
from broker.hl7.msglog import MessageLog
from broker.hl7.routing import HL7Router, RouterConfig
from broker.mapping.registry import MappingRegistry
from broker.worklist import steps
from broker.worklist.store import WorklistStore
from tests.broker_runner import DATA, MAPPINGS


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


def test_operations_in_lockstep_share_each_round_trip(counting: redis.Redis) -> None:
    results = steps.run_all(counting, [incr_twice("a"), incr_twice("b"), incr_twice("a")])
    assert results == [(1, 3), (1, 2), (2, 4)]  # commands run in the order listed
    assert CountingRedis.pipelines == 2  # two steps, whatever the number of operations


def test_an_error_reply_goes_to_its_own_operation(counting: redis.Redis) -> None:
    counting.set("text", "not a number")

    def caught(key: str) -> steps.Steps[str]:
        try:
            yield [steps.Command(("INCR", key))]
        except StoreError as e:
            return f"refused: {e}"
        return "ok"

    ok, refused = steps.run_all(counting, [caught("n"), caught("text")])
    assert ok == "ok"
    assert refused.startswith("refused: worklist store unavailable") and "integer" in refused
    assert counting.get("n") == b"1"


def test_a_flushed_script_cache_is_reloaded_and_runs_once(counting: redis.Redis) -> None:
    script = counting.register_script("return redis.call('INCR', ARGV[1])")

    def call(key: str) -> steps.Steps[int]:
        (reply,) = yield [steps.script_call(script, key)]
        return int(reply)

    assert steps.run(counting, call("k")) == 1
    counting.script_flush()
    assert steps.run_all(counting, [call("k"), call("k")]) == [2, 3]
    assert counting.get("k") == b"3"


def test_a_lost_connection_is_a_store_error_for_every_operation(tmp_path: Path) -> None:
    gone = unreachable(tmp_path)
    results = steps.run_all(gone, [incr_twice("a"), incr_twice("b")])
    assert all(isinstance(r, StoreError) for r in results)
    with pytest.raises(StoreError, match="unavailable"):
        steps.run(gone, incr_twice("a"))


def order(control_id: str) -> bytes:
    raw = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
    return raw.replace(b"ORM-1001", control_id.encode())


def test_handle_many_gives_each_message_its_own_answer(counting: redis.Redis) -> None:
    registry = MappingRegistry.load(MAPPINGS)
    mlog = MessageLog(counting)
    store = WorklistStore(counting)
    router = HL7Router(store, lambda: registry, RouterConfig(), recorder=mlog)
    first = order("B-1")
    missing_pid3 = split_messages((DATA / "orm_o01_missing_pid3.hl7").read_bytes())[0]
    other_content = first.replace(b"V-5001", b"V-5002")  # same control ID, other content
    batch = [(first, "p1"), (missing_pid3, "p2"), (first, "p3"), (other_content, "p4")]
    assert summarize_ack(router.handle(order("WARM-UP"), "p0")).code == "AA"  # scripts loaded
    CountingRedis.pipelines = 0
    acks = router.handle_many(batch)
    codes = [summarize_ack(a).code for a in acks]
    assert codes == ["AA", "AE", "AA", "AE"]
    assert acks[2] == acks[0]  # the resend got the very same ACK
    assert summarize_ack(acks[3]).errors == ("MSH-10 205 Duplicate key identifier",)
    # the reads, the atomic updates and the log writes of all four: one round trip each
    assert CountingRedis.pipelines == 3
    assert store.count() == 1  # WARM-UP and B-1 are the same order: one entry
    outcomes = [row.outcome for row in mlog.find(MessageQuery()).items]
    assert sorted(outcomes) == sorted(
        [Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.ERROR, Outcome.DUPLICATE, Outcome.ERROR]
    )


def test_handle_many_answers_ar_when_redis_is_gone(tmp_path: Path) -> None:
    registry = MappingRegistry.load(MAPPINGS)
    gone = unreachable(tmp_path)
    router = HL7Router(WorklistStore(gone), lambda: registry, RouterConfig())
    acks = router.handle_many([(order("G-1"), "p1"), (order("G-2"), "p2")])
    assert [summarize_ack(a).code for a in acks] == ["AR", "AR"]


def test_batching_handler_takes_what_waited_as_one_batch() -> None:
    batches: list[list[str]] = []
    release = threading.Event()

    def handle_many(messages: Sequence[tuple[bytes, str]]) -> list[bytes]:
        batches.append([peer for _, peer in messages])
        release.wait(5)
        return [b"ACK " + raw for raw, _ in messages]

    async def scenario() -> list[bytes]:
        handler = BatchingHandler(handle_many)
        try:
            first = asyncio.ensure_future(handler(b"1", "a"))
            while not batches:  # the first message was taken at once, alone
                await asyncio.sleep(0.01)
            rest = [
                asyncio.ensure_future(handler(str(n).encode(), p)) for n, p in ((2, "b"), (3, "c"))
            ]
            await asyncio.sleep(0.05)
            release.set()
            return list(await asyncio.gather(first, *rest))
        finally:
            handler.close()

    assert asyncio.run(scenario()) == [b"ACK 1", b"ACK 2", b"ACK 3"]
    assert batches == [["a"], ["b", "c"]]


def test_batching_handler_passes_a_failure_to_every_waiting_message() -> None:
    def handle_many(messages: Sequence[tuple[bytes, str]]) -> list[bytes]:
        raise RuntimeError("broken")

    async def scenario() -> list[Any]:
        handler = BatchingHandler(handle_many)
        try:
            calls = [handler(b"1", "a"), handler(b"2", "b")]
            return list(await asyncio.gather(*calls, return_exceptions=True))
        finally:
            handler.close()

    results = asyncio.run(scenario())
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]

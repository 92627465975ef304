"""Operations driven together by the step pipeline (``broker.store.steps``) on a real
redis-server: shared round trips, each operation's own reply or error, lost connections."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from broker.errors import StoreError
from broker.store import scripts, steps
from tests.integration.batching_helpers import CountingRedis, blocked_clients, unreachable


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
    script = scripts.Script("incr", "return redis.call('INCR', KEYS[1])")

    def call(key: str) -> steps.Steps[int]:
        (reply,) = yield [script.command([key])]
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

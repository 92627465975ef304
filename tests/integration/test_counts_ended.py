"""The ended entries by station (``broker.store.counts``): ZINTERCARD on Redis 7 and the
read-only script ``lua/count_ended.lua`` (the only way on the wheel's Redis 6.2) give the
same counts, whichever index is the smaller, across the script's chunks of 1,000 ids; a
station over the limit is left out by both; the script writes nothing.

The indexes are written directly (a station's set, the ended sorted set): the counts read
nothing else, and thousands of entries through the order path would only be slower."""

from __future__ import annotations

import random

import pytest
import redis

from broker.store import counts as counts_module
from broker.store.counts import Counts
from tests.conftest import KEYS

# station: (entries, of which ended): CT1 walks its own ids, CT2 the ended ones (4,410)
STATIONS = {"CT1": (2_500, 1_200), "CT2": (6_000, 1_500), "MR1": (10, 10), "US1": (7, 0)}
OTHER_ENDED = 1_700  # ended ids whose station index is gone (purged since): in no station


def _seed(client: redis.Redis) -> dict[str, int]:
    """The indexes of :data:`STATIONS`; each station's ended count."""
    rng = random.Random(7)
    pipe = client.pipeline(transaction=False)
    ended: list[str] = [f"gone-{n}" for n in range(OTHER_ENDED)]
    for station, (size, done) in STATIONS.items():
        ids = [f"{station}-{n:05d}" for n in range(size)]
        pipe.sadd(KEYS.by_station(station), *ids)
        pipe.sadd(KEYS.all_entries(), *ids)
        ended += rng.sample(ids, done)
    pipe.zadd(KEYS.entries_ended(), {entry: rng.random() for entry in ended})
    pipe.execute()
    return {station: done for station, (_, done) in STATIONS.items()}


def _ended_by_station(client: redis.Redis, *, intercard: bool) -> dict[str, int] | None:
    counts = Counts(client, KEYS, intercard=intercard)
    return counts.worklist(0.0, ["EMPTY"], by_status=True).ended_by_station


def test_both_ways_count_alike_on_redis_7(redis7_client: redis.Redis) -> None:
    expected = _seed(redis7_client) | {"EMPTY": 0}
    assert _ended_by_station(redis7_client, intercard=True) == expected
    assert _ended_by_station(redis7_client, intercard=False) == expected


def test_the_script_counts_on_redis_6(redis_client: redis.Redis) -> None:
    assert redis_client.info("server")["redis_version"].startswith("6.2")
    expected = _seed(redis_client) | {"EMPTY": 0}
    assert _ended_by_station(redis_client, intercard=True) == expected  # no ZINTERCARD here
    # Redis 6.2 writes a SCRIPT LOAD to its AOF (and replicas), once per server run, as
    # for every script; the counts themselves write nothing
    before = redis_client.info("persistence")["aof_current_size"]
    assert _ended_by_station(redis_client, intercard=False) == expected
    assert _ended_by_station(redis_client, intercard=True) == expected
    assert redis_client.info("persistence")["aof_current_size"] == before


@pytest.mark.parametrize("server", ["redis_client", "redis7_client"])
@pytest.mark.parametrize("intercard", [True, False])
def test_a_station_over_the_limit_is_left_out(
    server: str, intercard: bool, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    client: redis.Redis = request.getfixturevalue(server)
    expected = _seed(client)
    limit = "MAX_INTERCARD_IDS" if intercard and server == "redis7_client" else "MAX_SCRIPT_IDS"
    monkeypatch.setattr(counts_module, limit, 1_300)  # CT1 walks 2,500 ids, CT2 4,410
    found = _ended_by_station(client, intercard=intercard)
    assert found == {"MR1": expected["MR1"], "US1": 0, "EMPTY": 0}

"""Worklist entries by station and status at scrape time, on real Redis servers: with
Redis 7 (ZINTERCARD) by station and status together, stations no scanner table names
folded into ``other``; with Redis 6.2 (the wheel's) the cross is left out, the station
and status totals stay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from broker.common.metrics import BrokerMetrics
from broker.store.connection import EmbeddedRedis
from broker.store.counts import Counts
from broker.store.worklist import WorklistStore
from tests.conftest import KEYS, require_tool
from tests.integration.outbound_helpers import put_orders, set_status

FAMILY = "mwl_broker_worklist_entries_by_station_status"


@pytest.fixture
def redis7(tmp_path: Path) -> Iterator[redis.Redis]:
    binary = require_tool("redis-server", "redis-server")
    server = EmbeddedRedis(tmp_path / "redis7", binary=Path(binary))
    server.start()
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    try:
        yield client
    finally:
        client.close()
        server.stop()


def _scrape(store: WorklistStore, scanners: list[str]) -> dict[tuple[str, ...], float]:
    metrics = BrokerMetrics(scanners=scanners)
    counts = Counts(store.client, store.keys)

    def worklist() -> tuple[dict[str, int], int, int, dict[str, int] | None]:
        found = counts.worklist(0.0, scanners, by_status=True)
        return found.by_station, found.total, found.ended, found.ended_by_station

    metrics.worklist_counts = worklist
    found: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        if family.name.startswith("mwl_broker_worklist"):
            for s in family.samples:
                found[(s.name, *(f"{k}={v}" for k, v in sorted(s.labels.items())))] = s.value
    return found


def _seed(store: WorklistStore) -> None:
    ids = put_orders(store, 4)  # station CT1
    set_status(store, ids[0], "COMPLETED")
    set_status(store, ids[1], "DISCONTINUED")
    set_status(store, ids[2], "STARTED")


def test_by_station_and_status_on_redis_7(redis7: redis.Redis) -> None:
    store = WorklistStore(redis7, keys=KEYS)
    _seed(store)
    found = _scrape(store, ["CT1", "MR1"])
    assert found[(FAMILY, "station=CT1", "status=ended")] == 2
    assert found[(FAMILY, "station=CT1", "status=open")] == 2
    assert found[(FAMILY, "station=MR1", "status=open")] == 0
    folded = _scrape(store, ["MR1"])  # CT1 is no configured scanner now: other
    assert folded[(FAMILY, "station=other", "status=ended")] == 2
    assert not any("CT1" in part for key in folded for part in key)


def test_redis_6_keeps_the_totals_without_the_cross(store: WorklistStore) -> None:
    _seed(store)
    found = _scrape(store, ["CT1"])
    assert not any(key[0] == FAMILY for key in found)
    assert found[("mwl_broker_worklist_entries", "station=CT1")] == 4
    assert found[("mwl_broker_worklist_entries_by_status", "status=ended")] == 2

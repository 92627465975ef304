"""Worklist entries by station and status at scrape time, on real Redis servers: by
station and status together (ZINTERCARD on Redis 7, ``lua/count_ended.lua`` on the
wheel's 6.2), stations no scanner table names folded into ``other``, a station too large
to count cheaply left out (and ``other`` with it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from broker.common.metrics import BrokerMetrics
from broker.store import counts as counts_module
from broker.store.counts import MAX_INTERCARD_IDS, MAX_SCRIPT_IDS, Counts
from broker.store.worklist import WorklistStore
from tests.conftest import KEYS
from tests.integration.outbound_helpers import put_orders, set_status

FAMILY = "mwl_broker_worklist_entries_by_station_status"


@pytest.fixture(params=["redis 6.2", "redis 7"])
def any_store(request: pytest.FixtureRequest) -> WorklistStore:
    """A store on the wheel's Redis 6.2, then on the system's Redis 7.0."""
    name = "redis_client" if request.param == "redis 6.2" else "redis7_client"
    client: redis.Redis = request.getfixturevalue(name)
    return WorklistStore(client, keys=KEYS)


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


def test_by_station_and_status(any_store: WorklistStore) -> None:
    store = any_store
    _seed(store)
    found = _scrape(store, ["CT1", "MR1"])
    assert found[(FAMILY, "station=CT1", "status=ended")] == 2
    assert found[(FAMILY, "station=CT1", "status=open")] == 2
    assert found[(FAMILY, "station=MR1", "status=open")] == 0
    folded = _scrape(store, ["MR1"])  # CT1 is no configured scanner now: other
    assert folded[(FAMILY, "station=other", "status=ended")] == 2
    assert not any("CT1" in part for key in folded for part in key)


def test_a_station_over_the_limit_is_left_out_and_other_with_it(
    any_store: WorklistStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = any_store
    _seed(store)  # CT1: 4 entries, 2 of the 2 ended; MR1: none
    monkeypatch.setattr(counts_module, "MAX_INTERCARD_IDS", 1)
    monkeypatch.setattr(counts_module, "MAX_SCRIPT_IDS", 1)
    found = _scrape(store, ["CT1", "MR1"])
    assert not any(key[:2] == (FAMILY, "station=CT1") for key in found)
    assert found[(FAMILY, "station=MR1", "status=open")] == 0
    assert found[("mwl_broker_worklist_entries", "station=CT1")] == 4  # the totals stay
    assert found[("mwl_broker_worklist_entries_by_status", "status=ended")] == 2
    folded = _scrape(store, ["MR1"])
    assert not any(key[:2] == (FAMILY, "station=other") for key in folded)


def test_the_help_and_the_readme_name_the_limits() -> None:
    metrics = BrokerMetrics(scanners=["CT1"])
    metrics.worklist_counts = lambda: ({"CT1": 1}, 1, 0, {"CT1": 0})
    limits = f"{MAX_INTERCARD_IDS:,} on Redis 7, {MAX_SCRIPT_IDS:,} before"
    assert limits in metrics.exposition().decode()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith(f"| `{FAMILY}`"))
    assert limits in row

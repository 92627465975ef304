"""The dashboard's worklist by station and state (``worklist.stations`` of a snapshot), on
the wheel's Redis 6.2 (``lua/count_ended.lua``) and the system's Redis 7.0 (ZINTERCARD),
fed through the intake and ended through the console's entry service: one pass shared
with the metrics and kept ``max_age`` seconds (dated in the snapshot), a station over the
limit shown as not counted (null), never as a wrong number; and over real HTTP as the
OpenAPI document declares it."""

from __future__ import annotations

from contextlib import closing
from typing import Any

import pytest
import redis

from broker.common.clock import ManualClock
from broker.services.application import Services
from broker.services.dashboard import DashboardService
from broker.services.worklist_counts import SharedWorklistCounts
from broker.store import counts as counts_module
from broker.store.counts import MAX_INTERCARD_IDS, MAX_SCRIPT_IDS, Counts
from broker.store.keys import KeySchema
from tests.integration.admin_helpers import admin_settings, caller, running_api, services_for
from tests.integration.hl7_seed import send, send_orders, two_step_order
from tests.redis_replies import as_text

SERVERS = {
    "redis 6.2": ("redis_client", MAX_SCRIPT_IDS),
    "redis 7": ("redis7_client", MAX_INTERCARD_IDS),
}


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> tuple[Services, int]:
    """Services on Redis 6.2, then on 7.0; the limit of the way each counts."""
    name, limit = SERVERS[request.param]
    services = services_for(admin_settings(), request.getfixturevalue(name))
    services.live_mappings.load()
    return services, limit


def _seed(services: Services) -> None:
    """Two orders naming no station, two OMIs of two steps (MR1, MR2); one MR1 step ended."""
    send_orders(services, 2)
    assert send(services, two_step_order()) == "AA"
    assert send(services, two_step_order().replace(b"2001", b"2002")) == "AA"
    _cancel(services, "MR1")


def _cancel(services: Services, station: str) -> None:
    """Cancel one step of ``station`` (the first by entry id) from the console."""
    keys = KeySchema(services.settings.redis_key_prefix)
    entry_id = min(as_text(m) for m in services.client.smembers(keys.by_station(station)))
    revision = services.entries.read(entry_id).revision
    services.entries.cancel(entry_id, expect=revision, reason="test", user="test")


def _dashboard(services: Services, clock: ManualClock) -> DashboardService:
    keys = KeySchema(services.settings.redis_key_prefix)
    shared = SharedWorklistCounts(Counts(services.client, keys), (), clock=clock)
    return DashboardService(Counts(services.client, keys), {}, shared, clock=clock)


def test_each_station_open_and_ended_with_the_whole(server: tuple[Services, int]) -> None:
    services, limit = server
    _seed(services)
    snap = services.dashboard.snapshot().as_json()
    stations = snap["worklist"]["stations"]
    assert stations["rows"] == [
        {"station": "MR1", "entries": 2, "open": 1, "ended": 1},
        {"station": "MR2", "entries": 2, "open": 2, "ended": 0},
    ]
    assert stations["all"] == {"entries": 6, "open": 5, "ended": 1}  # 2 ORMs name none
    assert stations["limit"] == limit
    assert stations["counted_at"] <= snap["time"] and stations["age_seconds"] >= 0
    assert snap["worklist"]["by_station"] == {"MR1": 2, "MR2": 2}  # unchanged for old clients


def test_one_pass_is_kept_then_counted_again_and_dated(server: tuple[Services, int]) -> None:
    services, _ = server
    _seed(services)
    clock = ManualClock()
    dashboard = _dashboard(services, clock)
    first = dashboard.snapshot().as_json()["worklist"]["stations"]
    assert [row["ended"] for row in first["rows"]] == [1, 0] and first["age_seconds"] == 0
    _cancel(services, "MR2")
    clock.advance(4.0)
    kept = dashboard.snapshot().as_json()
    assert kept["worklist"]["by_status"]["ended"] == 2  # read at each snapshot
    assert kept["worklist"]["stations"]["rows"] == first["rows"]  # the pass of 4 s before
    assert kept["worklist"]["stations"]["all"]["ended"] == 1
    assert kept["worklist"]["stations"]["age_seconds"] == 4.0
    assert kept["worklist"]["stations"]["counted_at"] == first["counted_at"]
    clock.advance(1.0)
    again = dashboard.snapshot().as_json()["worklist"]["stations"]
    assert again["age_seconds"] == 0 and again["counted_at"] == first["counted_at"] + 5
    assert [row["ended"] for row in again["rows"]] == [1, 1]
    assert again["all"]["ended"] == 2


def _calls(client: redis.Redis, command: str) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_the_dashboard_and_the_metrics_share_a_pass(redis_client: redis.Redis) -> None:
    services = services_for(admin_settings(), redis_client)
    services.live_mappings.load()
    _seed(services)
    services.dashboard.snapshot()
    before = _calls(redis_client, "evalsha")
    assert before >= 2  # one count by station
    assert b"mwl_broker_worklist_entries_by_station_status" in services.metrics.exposition()
    services.dashboard.snapshot()
    assert _calls(redis_client, "evalsha") == before  # nor counted again for either


def test_a_station_over_the_limit_is_not_counted_and_said_so(
    server: tuple[Services, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    services, limit = server
    _seed(services)
    name = "MAX_SCRIPT_IDS" if limit == MAX_SCRIPT_IDS else "MAX_INTERCARD_IDS"
    monkeypatch.setattr(counts_module, name, 0)  # MR1 and MR2 would walk the 1 ended id
    with running_api(services) as api:
        client, _ = caller(api, "viewer")
        with closing(client):
            answer = client.get("/api/dashboard")
    assert answer.status_code == 200
    stations = answer.json()["worklist"]["stations"]
    assert stations["rows"] == [
        {"station": "MR1", "entries": 2, "open": None, "ended": None},
        {"station": "MR2", "entries": 2, "open": None, "ended": None},
    ]
    assert stations["all"] == {"entries": 6, "open": 5, "ended": 1}
    assert stations["limit"] == 0


def test_the_document_describes_the_field(server: tuple[Services, int]) -> None:
    services, _ = server
    with running_api(services) as api:
        client, _ = caller(api, "viewer")
        with closing(client):
            document = client.get("/api/openapi.json").json()
    schemas = document["components"]["schemas"]
    worklist = schemas["DashboardWorklist"]["properties"]
    assert set(worklist) == {"total", "by_status", "by_station", "stations"}
    stations = schemas["DashboardStations"]["properties"]
    assert all(stations[name].get("description") for name in ("counted_at", "age_seconds", "limit"))

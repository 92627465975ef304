"""The audit writer against a real redis-server: batches in order, a capped stream, a full
queue counted and said, a Redis outage that blocks and breaks nothing, a drained stop."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from broker.audit.events import AuditEvent, AuditType, Outcome, from_fields
from broker.audit.record import RefusalRecords
from broker.audit.writer import AuditWriter, CommandAudit, os_user
from broker.common.clock import ManualClock
from broker.store.connection import EmbeddedRedis
from tests.redis_replies import stream_rows

STREAM = "mwl:audit"


def events(client: redis.Redis) -> list[AuditEvent]:
    found = []
    for entry_id, fields in stream_rows(client, STREAM):
        stored = from_fields(entry_id.decode(), fields)
        assert stored is not None
        found.append(stored.event)
    return found


def refused(n: int) -> AuditEvent:
    return AuditEvent(AuditType.CONNECTION_REFUSED, Outcome.REFUSED, address=f"10.0.0.{n % 250}",
                      details={"n": n})  # fmt: skip


def test_records_reach_the_stream_in_order_and_the_stream_is_capped(
    redis_client: redis.Redis,
) -> None:
    writer = AuditWriter(redis_client, STREAM, max_events=100, node="here")
    writer.start()
    try:
        for n in range(1000):
            writer.record(refused(n))
        assert writer.flush(60)
    finally:
        writer.stop(10)
    kept = events(redis_client)
    assert 100 <= len(kept) < 1000  # MAXLEN ~ trims whole nodes: about 100
    numbers = [e.details["n"] for e in kept]
    assert numbers == sorted(numbers) and numbers[-1] == 999
    assert all(e.node == "here" and e.type is AuditType.CONNECTION_REFUSED for e in kept)


def test_a_full_queue_drops_counts_and_says_so(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    writer = AuditWriter(redis_client, STREAM, max_events=1000, capacity=10)
    for n in range(25):  # the thread is not running yet: the queue fills
        writer.record(refused(n))
    assert writer.dropped == 15
    with caplog.at_level(logging.WARNING, logger="broker.audit.writer"):
        writer.start()
        try:
            assert writer.flush(60)
        finally:
            writer.stop(10)
    kept = events(redis_client)
    assert kept[0].type is AuditType.AUDIT_DROPPED and kept[0].details == {"dropped": 15}
    assert [e.details["n"] for e in kept[1:]] == list(range(10))
    assert writer.dropped == 0
    assert "15 record(s) dropped" in caplog.text


class Outage:
    """A redis-server the test stops and starts again (same data, same socket), and a
    client with short timeouts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server = EmbeddedRedis(folder)
        self.server.start()
        self.client = redis.Redis.from_url(
            self.server.url, socket_timeout=1, socket_connect_timeout=1
        )

    def restart(self) -> None:
        self.server = EmbeddedRedis(self.folder)
        self.server.start()


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Outage]:
    o = Outage(tmp_path / "redis")
    yield o
    o.client.close()
    o.server.stop()


def test_redis_away_blocks_nothing_and_every_record_is_written_or_counted(
    outage: Outage, caplog: pytest.LogCaptureFixture
) -> None:
    server, client = outage.server, outage.client
    writer = AuditWriter(client, STREAM, max_events=10_000, capacity=50)
    writer.start()
    try:
        writer.record(refused(0))
        assert writer.flush(60)
        server.stop()  # Redis away: record() must neither block nor raise
        with caplog.at_level(logging.WARNING, logger="broker.audit.writer"):
            for n in range(1, 401):
                writer.record(refused(n))
            assert not writer.flush(3)  # the writer tried, and could not
            outage.restart()  # back, same data and socket
            assert writer.flush(120)
        kept = events(client)
        written = [e.details["n"] for e in kept if e.type is AuditType.CONNECTION_REFUSED]
        dropped = sum(e.details["dropped"] for e in kept if e.type is AuditType.AUDIT_DROPPED)
        assert written[0] == 0 and written == sorted(set(written))
        assert len(written) - 1 + dropped == 400  # nothing lost without being counted
        assert dropped > 0 and "cannot write to Redis" in caplog.text
    finally:
        writer.stop(10)


def test_stop_writes_what_is_queued(redis_client: redis.Redis) -> None:
    writer = AuditWriter(redis_client, STREAM, max_events=10_000)
    writer.start()
    for n in range(500):
        writer.record(refused(n))
    writer.stop(30)
    assert [e.details["n"] for e in events(redis_client)] == list(range(500))


def test_stop_with_redis_away_says_what_was_not_written(
    outage: Outage, caplog: pytest.LogCaptureFixture
) -> None:
    writer = AuditWriter(outage.client, STREAM, max_events=100)
    writer.start()
    outage.server.stop()
    for n in range(20):
        writer.record(refused(n))
    with caplog.at_level(logging.WARNING, logger="broker.audit.writer"):
        writer.stop(5)
    assert "not written at shutdown" in caplog.text


def test_a_command_records_its_user_and_command_at_once(redis_client: redis.Redis) -> None:
    audit = CommandAudit(redis_client, STREAM, max_events=100, command="purge")
    audit.record(AuditEvent(AuditType.PURGE, details={"entries": 3}))
    (event,) = events(redis_client)
    assert event.user == os_user() and event.node
    assert event.details == {"command": "purge", "entries": 3}


def test_a_command_whose_record_cannot_be_written_warns_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis(unix_socket_path=str(tmp_path / "none.sock"), socket_timeout=1)
    audit = CommandAudit(client, STREAM, max_events=100, command="import")
    with caplog.at_level(logging.WARNING, logger="broker.audit.writer"):
        audit.record(AuditEvent(AuditType.IMPORT))
    assert "could not record this import" in caplog.text


def test_a_flood_of_refusals_is_recorded_at_a_bounded_rate(redis_client: redis.Redis) -> None:
    """The first refusal of an address for a reason at once, the rest of its minute as one
    record with their number: when the minute is over, when the table is full, at stop."""
    writer = AuditWriter(redis_client, STREAM, max_events=10_000)
    clock = ManualClock()
    records = RefusalRecords(writer, "hl7", max_addresses=2, clock=clock)
    writer.start()
    for _ in range(500):
        records.refused("10.0.0.1", "not a configured sender")
    records.refused("10.0.0.1", "16 connections open from this address")
    assert writer.flush(30)
    first = [(e.address, e.reason, e.details.get("more")) for e in events(redis_client)]
    assert first == [
        ("10.0.0.1", "not a configured sender", None),
        ("10.0.0.1", "16 connections open from this address", None),
    ]
    clock.advance(61)  # the minute is over: the next tick records the count
    records.tick()
    for address in ("10.0.0.2", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.4"):
        records.refused(address, "not a configured sender")  # the table holds 2: .2 goes
    writer.stop(30)  # the counts still open are recorded
    later = [(e.address, e.details.get("more")) for e in events(redis_client)[2:]]
    assert later == [
        ("10.0.0.1", 499),  # the minute over
        ("10.0.0.2", None),
        ("10.0.0.3", None),
        ("10.0.0.2", 1),  # out of the table
        ("10.0.0.4", None),
        ("10.0.0.4", 1),  # at stop
    ]

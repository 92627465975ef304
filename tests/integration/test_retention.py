"""Retention purge on a real redis-server: what expires goes with every index membership,
the rest stays; ``mwl-broker purge`` while a broker runs. Time is passed in, never waited."""

from __future__ import annotations

import datetime
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import redis
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from broker.common.clock import ManualClock
from broker.errors import ConfigError
from broker.settings import load_settings
from broker.store import scripts
from broker.store.guards import value_digest
from broker.store.mpps import MppsStore
from broker.store.retention import (
    PurgeReport,
    Retention,
    RetentionPolicy,
    RetentionScheduler,
)
from broker.store.scripts import KeyList, ScriptRunner
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria, OrderAction, OrderChange
from broker.worklist.mpps import StepRef
from tests.broker_runner import broker_settings, running_broker
from tests.conftest import KEYS
from tests.redis_replies import as_text, bytes_or_none

DAY = 86_400.0
T0 = time.time()


def day(offset: float, now: float = T0) -> str:
    """The local date ``offset`` days from ``now``, as an SPS Start Date."""
    return datetime.datetime.fromtimestamp(now + offset * DAY).strftime("%Y%m%d")


def entry(acc: str, date: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = "SECRET^NAME"
    ds.PatientID = f"P-{acc}"
    ds.AccessionNumber = acc
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.77.{sum(map(ord, acc))}"
    ds.RequestedProcedureID = f"RP-{acc}"
    sps = Dataset()
    sps.ScheduledStationAETitle = "CT1"
    sps.Modality = "CT"
    sps.ScheduledProcedureStepStartDate = date
    sps.ScheduledProcedureStepID = f"SPS-{acc}"
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def schedule(store: WorklistStore, order: str, *entries: Dataset) -> list[str]:
    store.apply([OrderChange(order, OrderAction.SCHEDULE, entries)], None)
    return store.order_entry_ids(order)


def set_status(store: WorklistStore, order: str, status: str) -> None:
    store.apply([OrderChange(order, OrderAction.SET_STATUS, status=status)], None)


def perform(store: WorklistStore, ds: Dataset, at: float, final: str = "COMPLETED") -> str:
    """An MPPS for the entry's step, created and finished at ``at``."""
    mpps = MppsStore(store, clock=ManualClock(at))
    uid = generate_uid()
    performed = Dataset()
    performed.PerformedProcedureStepStatus = "IN PROGRESS"
    step = StepRef(
        ds.StudyInstanceUID,
        ds.AccessionNumber,
        ds.RequestedProcedureID,
        ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID,
    )
    mpps.create(uid, performed, [step], patient_id=ds.PatientID, aet="CT1")
    done = Dataset()
    done.PerformedProcedureStepStatus = final
    mpps.update(uid, done, aet="CT1")
    return uid


def memberships(client: redis.Redis, member: str) -> list[str]:
    """Every set and sorted set in Redis that still names ``member``, and its entry hash."""
    found = []
    for raw in client.scan_iter(count=1000):
        key = as_text(raw)
        kind = as_text(client.type(key))
        named = (
            (kind == "set" and client.sismember(key, member))
            or (kind == "zset" and client.zscore(key, member) is not None)
            or (key.startswith(f"{KEYS.prefix}:entry:") and key.endswith(member))
        )
        if named:
            found.append(key)
    return sorted(found)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def retention(store: WorklistStore, clock: ManualClock) -> Retention:
    policy = RetentionPolicy(ended_days=7, stale_days=30, mpps_days=30)
    return Retention(store, policy, clock=clock)


class EachKind(NamedTuple):
    """The entry ids of one worklist with each kind of entry the purge tells apart."""

    performed: str  # yesterday's, completed by its MPPS
    mpps_uid: str  # that MPPS
    canceled: str  # today's, canceled by the RIS
    stale: str  # 40 days old, never done
    recent: str  # 10 days old, never done
    future: str  # in 60 days
    mixed: list[str]  # one order: an entry 40 days old and one in 3 days


def schedule_each_kind(store: WorklistStore) -> EachKind:
    """Seven entries in six orders, at ``T0``: one of each kind the purge tells apart."""
    performed_entry = entry("ACC-MPPS", day(-1))
    (performed,) = schedule(store, "O-MPPS", performed_entry)
    mpps_uid = perform(store, performed_entry, at=T0)
    (canceled,) = schedule(store, "O-CA", entry("ACC-CA", day(0)))
    set_status(store, "O-CA", "CANCELED")
    (stale,) = schedule(store, "O-OLD", entry("ACC-OLD", day(-40)))
    (recent,) = schedule(store, "O-RECENT", entry("ACC-RECENT", day(-10)))
    (future,) = schedule(store, "O-FUTURE", entry("ACC-FUTURE", day(60)))
    mixed = schedule(store, "O-MIXED", entry("ACC-M1", day(-40)), entry("ACC-M2", day(3)))
    return EachKind(performed, mpps_uid, canceled, stale, recent, future, mixed)


def complete_an_order_later(store: WorklistStore, retention: Retention, clock: ManualClock) -> str:
    """ACC-LATE, scheduled for today and completed; a purge six days later sees it end."""
    (late,) = schedule(store, "O-LATE", entry("ACC-LATE", day(0)))
    set_status(store, "O-LATE", "COMPLETED")
    clock.set(T0 + 6 * DAY)
    retention.run()  # times ACC-LATE: it ended six days after the others
    return late


def test_purge_removes_exactly_what_expired(
    store: WorklistStore, retention: Retention, redis_client: redis.Redis, clock: ManualClock
) -> None:
    performed, mpps_uid, canceled, stale, recent, future, mixed = schedule_each_kind(store)
    everything = [performed, canceled, stale, recent, future, *mixed]
    assert store.count() == 7

    dry = retention.run(dry_run=True)
    assert dry.dry_run and (dry.removed_entries, dry.removed_mpps) == (0, 0)
    assert {(i.reason, i.accession) for i in dry.entries} == {
        ("stale", "ACC-OLD"),
        ("stale", "ACC-M1"),
    }
    assert store.count() == 7
    assert all(memberships(redis_client, i) for i in everything)
    assert redis_client.zscore(KEYS.entries_ended(), canceled) is None  # a dry run writes nothing

    first = retention.run()
    assert first.removed_entries == 2 and first.by_reason == {"stale": 2}
    stale_m1 = next(i.entry_id for i in first.entries if i.accession == "ACC-M1")
    for gone in (stale, stale_m1):
        assert memberships(redis_client, gone) == []
    statuses = KEYS.order_status()
    assert not redis_client.hexists(statuses, KEYS.order_field("O-OLD"))  # the order is gone
    assert redis_client.hexists(statuses, KEYS.order_field("O-MIXED"))  # ACC-M2 still serves it
    assert store.order_entry_ids("O-MIXED") == [i for i in mixed if i != stale_m1]
    # the RIS's cancel is timed by the purge that first saw it
    assert redis_client.zscore(KEYS.entries_ended(), canceled) == pytest.approx(T0, abs=1)

    late = complete_an_order_later(store, retention, clock)

    clock.set(T0 + 8 * DAY)
    dry = retention.run(dry_run=True)
    assert sorted(i.accession for i in dry.entries) == ["ACC-CA", "ACC-MPPS"]
    assert {i.reason for i in dry.entries} == {"ended"}
    assert store.count() == 6

    report = retention.run()
    assert report.removed_entries == 2 and report.by_reason == {"ended": 2}
    assert sorted((i.status, i.accession) for i in report.entries) == [
        ("CANCELED", "ACC-CA"),
        ("COMPLETED", "ACC-MPPS"),
    ]
    for gone in (performed, canceled):
        assert memberships(redis_client, gone) == []
    for kept in (recent, future, late):
        assert KEYS.all_entries() in memberships(redis_client, kept)
    assert redis_client.exists(KEYS.mpps(mpps_uid))  # MPPS retention is 30 days

    clock.set(T0 + 31 * DAY)
    last = retention.run()
    assert last.mpps == (mpps_uid,) and last.removed_mpps == 1
    assert not redis_client.exists(KEYS.mpps(mpps_uid))
    assert memberships(redis_client, mpps_uid) == []
    assert sorted((i.reason, i.accession) for i in last.entries) == [
        ("ended", "ACC-LATE"),
        ("stale", "ACC-RECENT"),
    ]
    remaining = sorted(str(e.AccessionNumber) for e in store.candidates(CandidateCriteria()))
    assert remaining == ["ACC-FUTURE", "ACC-M2"]


def test_a_step_changed_meanwhile_is_kept(
    store: WorklistStore, retention: Retention, redis_client: redis.Redis
) -> None:
    """The removal script re-checks each entry: one an order message changed after the
    purge read it is not removed."""
    (stale,) = schedule(store, "O-OLD", entry("ACC-OLD", day(-40)))
    found = retention.run(dry_run=True)
    assert [i.entry_id for i in found.entries] == [stale]
    as_read = bytes_or_none(redis_client.hget(KEYS.entry(stale), "ds"))
    # the RIS reschedules the order between the purge's read and its removal
    schedule(store, "O-OLD", entry("ACC-OLD", day(-39)))
    call = KeyList(
        KEYS.all_entries(), KEYS.entries_ended(), KEYS.order_status(), KEYS.order_time(),
        KEYS.mpps_by_time(),
    )  # fmt: skip
    entries = [
        {
            "id": stale,
            "key": call.add(KEYS.entry(stale)),
            "digest": value_digest(as_read),
            "status": "SCHEDULED",
            "order_field": KEYS.order_field("O-OLD"),
            "order_set": call.add(KEYS.order("O-OLD")),
        }
    ]
    payload = {"entries": entries, "mpps": [], "mpps_cutoff": 0}
    removal = scripts.load("retention_remove")
    reply = ScriptRunner(redis_client).run(removal, call.names, [json.dumps(payload)])
    assert json.loads(reply[0]) == []
    assert store.count() == 1


def test_zero_days_keeps_everything(store: WorklistStore) -> None:
    schedule(store, "O-OLD", entry("ACC-OLD", day(-400)))
    set_status(store, "O-OLD", "COMPLETED")
    clock = ManualClock(T0)
    keep = Retention(store, RetentionPolicy(ended_days=0, stale_days=0, mpps_days=0), clock=clock)
    keep.run()
    clock.set(T0 + 400 * DAY)
    report = keep.run()
    assert report.entries == () and store.count() == 1


def purge_cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", "purge", "--data-dir", str(data), *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("MWL_BROKER_")},
    )  # fmt: skip


def test_purge_command_while_the_broker_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_broker(broker_settings(data)) as broker:
        store = broker.store
        assert store is not None
        done = entry("ACC-DONE", day(-12))
        schedule(store, "O-DONE", done)
        perform(store, done, at=T0 - 10 * DAY)  # finished ten days ago
        schedule(store, "O-OLD", entry("ACC-OLD", day(-40)))
        schedule(store, "O-NEXT", entry("ACC-NEXT", day(2)))

        dry = purge_cli(data, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "would remove 2 worklist entries and 0 MPPS instances" in dry.stdout
        assert "ended: 1" in dry.stdout and "stale: 1" in dry.stdout
        assert "ACC-DONE" in dry.stdout and "ACC-OLD" in dry.stdout
        assert "ACC-NEXT" not in dry.stdout
        assert "SECRET" not in dry.stdout  # no patient names
        assert store.count() == 3

        real = purge_cli(data)
        assert real.returncode == 0, real.stderr
        assert "removed 2 worklist entries" in real.stdout
        assert store.count() == 1
        assert purge_cli(data).stdout.startswith("removed 0 worklist entries")


def test_the_scheduler_purges_in_the_background_and_logs_counts(
    store: WorklistStore, caplog: pytest.LogCaptureFixture
) -> None:
    schedule(store, "O-OLD", entry("ACC-OLD", day(-40)))
    purged = threading.Event()

    class Observed(Retention):
        def run(self, *, dry_run: bool = False) -> PurgeReport:
            report = super().run(dry_run=dry_run)
            purged.set()
            return report

    scheduler = RetentionScheduler(Observed(store, RetentionPolicy()), interval=3600, first_delay=0)
    with caplog.at_level(logging.INFO, logger="broker.store.retention"):
        scheduler.start()
        try:
            assert purged.wait(30)
        finally:
            scheduler.stop()
    assert store.count() == 0
    (line,) = [r.getMessage() for r in caplog.records if "retention purge" in r.getMessage()]
    assert "removed 1 worklist entries (expired: 1 stale) and 0 MPPS instances" in line
    assert "ACC-OLD" not in line and "SECRET" not in line


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("retention_ended_days", -1),
        ("retention_stale_days", 5000),
        ("retention_mpps_days", "soon"),
        ("retention_interval_seconds", 5),
        ("mpps_events_max", 0),
    ],
)
def test_retention_settings_are_checked(setting: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={f"MWL_BROKER_{setting.upper()}": str(value)})
    assert setting in str(info.value.setting).lower()

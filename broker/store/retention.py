"""Retention: worklist entries and MPPS instances that are over leave Redis after a while.

Three rules, each with its own setting (``retention_*``; 0 turns a rule off):

- **ended**: a step COMPLETED, CANCELED or DISCONTINUED is removed ``ended_days``
  after it ended. When it ended is the ``{p}:ended`` sorted set: an MPPS that
  finishes a step writes the exact time (``broker.store.mpps``); a step
  ended by the RIS (the store writes only its status field) is marked by the
  first purge that sees it, so it goes at most one purge interval late.
- **stale**: a step not ended (SCHEDULED, ARRIVED, READY, STARTED…) whose SPS
  Start Date is more than ``stale_days`` days before today (the site's local
  date) is removed: nobody performed it. Steps without a start date stay.
- **mpps**: an MPPS instance not changed for ``mpps_days`` days is removed,
  with its index memberships.

Removing an entry does what the store's apply script does when it replaces an
order's entries (its index memberships from its ``idx`` list, ``idx:all``, the
entry hash), and also takes it out of its order's set; when the order has no
entry left, its ``order-status`` and ``order-time`` fields go too, so the
purge leaves nothing behind (a message for that order arriving afterwards is
treated as new). Each removal re-checks, inside the script, that the entry is
as it was read (sha1 of its dataset, its status): an entry that an order
message changed in between stays. Purges are idempotent, so several brokers
on one Redis may each run theirs.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from pydicom.dataset import Dataset

from broker.common import jsontext
from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.errors import BrokerError, store_error
from broker.store.guards import value_digest
from broker.store.retention_lua import MARK_SCRIPT, REMOVE_SCRIPT
from broker.store.worklist import WorklistStore

__all__ = [
    "ENDED_STATUSES",
    "PurgeItem",
    "PurgeReport",
    "Retention",
    "RetentionPolicy",
    "RetentionScheduler",
]

log = logging.getLogger(__name__)

ENDED_STATUSES = frozenset({"COMPLETED", "CANCELED", "DISCONTINUED"})
_DAY = 86_400.0
_BATCH = 500  # ids per read pipeline
_REMOVE_BATCH = 200  # entries or instances per removal script call


@dataclass(frozen=True)
class RetentionPolicy:
    """How long things stay, in days; 0 keeps them forever."""

    ended_days: float = 7.0
    stale_days: float = 30.0
    mpps_days: float = 30.0
    zone: datetime.tzinfo | None = None  # whose "today" dates are in (the site's); None: local


@dataclass(frozen=True)
class PurgeItem:
    """One entry the purge removes (or would remove), described without patient data."""

    entry_id: str
    reason: str  # "ended" or "stale"
    status: str
    accession: str
    start_date: str  # SPS Start Date (YYYYMMDD), or ""


@dataclass(frozen=True)
class PurgeReport:
    """What a purge found and what it removed (nothing on a dry run)."""

    entries: tuple[PurgeItem, ...] = ()
    mpps: tuple[str, ...] = ()  # SOP Instance UIDs of expired MPPS instances
    removed_entries: int = 0
    removed_mpps: int = 0
    dry_run: bool = False
    by_reason: dict[str, int] = field(default_factory=dict)


@dataclass
class _Read:
    entry_id: str
    raw: bytes
    status: str  # the status field as stored ("" when absent)
    order_key: str
    ds: Dataset

    @property
    def effective_status(self) -> str:
        if self.status:
            return self.status
        seq = self.ds.get("ScheduledProcedureStepSequence") or [Dataset()]
        return str(seq[0].get("ScheduledProcedureStepStatus", "")).strip()


class Retention:
    """Finds and removes what the policy says has expired, at ``clock``'s time; see the
    module docstring."""

    def __init__(
        self, store: WorklistStore, policy: RetentionPolicy, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._store = store
        self._clock = clock
        self._redis = store.client
        self._keys = store.keys
        self._policy = policy
        self._remove = self._redis.register_script(REMOVE_SCRIPT)
        self._mark = self._redis.register_script(MARK_SCRIPT)

    def __repr__(self) -> str:
        return f"Retention({self._policy!r})"

    @property
    def policy(self) -> RetentionPolicy:
        return self._policy

    def run(self, *, dry_run: bool = False) -> PurgeReport:
        """One purge, now: time newly ended steps, then remove what expired. A dry run
        reads only, and reports what would go."""
        now = self._clock.now()
        try:
            self._time_ended_steps(now, dry_run)
            items, reads = self._expired_entries(now)
            uids = self._expired_mpps(now)
            if dry_run or (not items and not uids):
                removed, instances = 0, 0
            else:
                removed, instances = self._purge(reads, items, uids, now)
        except redis.RedisError as e:
            raise store_error(e) from e
        return PurgeReport(
            entries=tuple(items),
            mpps=tuple(uids),
            removed_entries=removed,
            removed_mpps=instances,
            dry_run=dry_run,
            by_reason=dict(Counter(i.reason for i in items)),
        )

    # -- when did a step end ------------------------------------------------

    def _time_ended_steps(self, now: float, dry_run: bool) -> None:
        """Give ended steps without a time "now"; drop times of steps not ended or gone."""
        k = self._keys
        timed = {_text(m) for m in self._redis.zrange(k.entries_ended(), 0, -1)}
        mark: list[str] = []
        unmark: list[str] = []
        seen: set[str] = set()
        for batch in self._batches(self._redis.sscan_iter(k.all_entries(), count=_BATCH)):
            pipe = self._redis.pipeline(transaction=False)
            for entry_id in batch:
                pipe.hget(k.entry(entry_id), "status")
            for entry_id, status in zip(batch, pipe.execute(), strict=True):
                seen.add(entry_id)
                is_ended = _text(status) in ENDED_STATUSES
                if is_ended and entry_id not in timed:
                    mark.append(entry_id)
                elif not is_ended and entry_id in timed:
                    unmark.append(entry_id)
        unmark += sorted(timed - seen)
        if dry_run or not (mark or unmark):
            return
        for start in range(0, max(len(mark), len(unmark)), _REMOVE_BATCH):
            payload = {
                "mark": mark[start : start + _REMOVE_BATCH],
                "unmark": unmark[start : start + _REMOVE_BATCH],
                "now": round(now, 3),
                "ended": k.entries_ended(),
                "entry_prefix": k.entry_prefix(),
            }
            self._store.run_script(self._mark, jsontext.dumps(payload))

    # -- what expired -------------------------------------------------------

    def _expired_entries(self, now: float) -> tuple[list[PurgeItem], dict[str, _Read]]:
        k = self._keys
        candidates: dict[str, str] = {}  # id -> reason
        if self._policy.ended_days > 0:
            cutoff = now - self._policy.ended_days * _DAY
            for m in self._redis.zrangebyscore(k.entries_ended(), "-inf", cutoff):
                candidates[_text(m)] = "ended"
        if self._policy.stale_days > 0:
            before = _stale_before(now, self._policy.stale_days, self._policy.zone)
            for m in self._redis.zrangebyscore(k.by_date(), "-inf", f"({before}"):
                candidates.setdefault(_text(m), "stale")
        items: list[PurgeItem] = []
        reads: dict[str, _Read] = {}
        for read in self._read(sorted(candidates)):
            reason = candidates[read.entry_id]
            ended = read.effective_status in ENDED_STATUSES
            if reason == "ended" and not (ended and read.status):
                continue  # reopened since it was timed: the next purge drops its time
            if reason == "stale" and ended:
                continue  # the ended rule decides, from when it ended
            reads[read.entry_id] = read
            seq = read.ds.get("ScheduledProcedureStepSequence") or [Dataset()]
            items.append(
                PurgeItem(
                    entry_id=read.entry_id,
                    reason=reason,
                    status=read.effective_status,
                    accession=str(read.ds.get("AccessionNumber", "") or ""),
                    start_date=str(seq[0].get("ScheduledProcedureStepStartDate", "") or ""),
                )
            )
        return items, reads

    def _expired_mpps(self, now: float) -> list[str]:
        if self._policy.mpps_days <= 0:
            return []
        cutoff = now - self._policy.mpps_days * _DAY
        found = self._redis.zrangebyscore(self._keys.mpps_by_time(), "-inf", cutoff)
        return [_text(m) for m in found]

    def _read(self, ids: list[str]) -> Iterator[_Read]:
        for start in range(0, len(ids), _BATCH):
            batch = ids[start : start + _BATCH]
            pipe = self._redis.pipeline(transaction=False)
            for entry_id in batch:
                pipe.hmget(self._keys.entry(entry_id), "ds", "status", "order")
            for entry_id, (raw, status, order) in zip(batch, pipe.execute(), strict=True):
                if raw is not None:
                    ds = Dataset.from_json(jsontext.loads(raw))
                    yield _Read(entry_id, raw, _text(status), _text(order), ds)

    # -- removal ------------------------------------------------------------

    def _purge(
        self, reads: dict[str, _Read], items: list[PurgeItem], uids: list[str], now: float
    ) -> tuple[int, int]:
        k = self._keys
        entries = []
        for item in items:
            read = reads[item.entry_id]
            order_set, order_field = (
                k.order_and_field(read.order_key) if read.order_key else ("", "")
            )
            entries.append(
                {
                    "id": item.entry_id,
                    "digest": value_digest(read.raw),
                    "status": read.status,
                    "order_field": order_field,
                    "order_set": order_set,
                }
            )
        mpps = [{"uid": uid, "key": k.mpps(uid)} for uid in uids]
        removed = instances = 0
        cutoff = now - self._policy.mpps_days * _DAY
        for start in range(0, max(len(entries), len(mpps)), _REMOVE_BATCH):
            payload: dict[str, Any] = {
                "entries": entries[start : start + _REMOVE_BATCH],
                "mpps": mpps[start : start + _REMOVE_BATCH],
                "mpps_cutoff": cutoff,
                "entry_prefix": k.entry_prefix(),
                "all": k.all_entries(),
                "ended": k.entries_ended(),
                "order_status": k.order_status(),
                "order_time": k.order_time(),
                "mpps_time": k.mpps_by_time(),
            }
            reply = self._store.run_script(self._remove, jsontext.dumps(payload))
            removed += len(jsontext.loads(reply[0]))
            instances += int(reply[1])
        return removed, instances

    @staticmethod
    def _batches(ids: Iterator[Any]) -> Iterator[list[str]]:
        batch: list[str] = []
        for raw in ids:
            batch.append(_text(raw))
            if len(batch) >= _BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


class RetentionScheduler:
    """Runs a :class:`Retention` purge in a background thread, every ``interval``
    seconds; each run logs its counts at INFO.

    The first purge comes ``first_delay`` seconds after start (default: the
    interval, at most five minutes), not at once, so a broker restarted to
    look at its data still finds it as it was left.
    """

    def __init__(
        self, retention: Retention, interval: float, *, first_delay: float | None = None
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be greater than 0")
        self._retention = retention
        self._interval = interval
        self._first_delay = min(interval, 300.0) if first_delay is None else first_delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"RetentionScheduler(interval={self._interval})"

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("RetentionScheduler already started")
        self._thread = threading.Thread(target=self._loop, name="retention-purge", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop; a purge under way finishes its current script call first."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _loop(self) -> None:
        delay = self._first_delay
        while not self._stop.wait(delay):
            self.run_once()
            delay = self._interval

    def run_once(self) -> PurgeReport | None:
        """One purge, its outcome logged; failures are logged, never raised."""
        try:
            report = self._retention.run()
        except BrokerError as e:
            log.warning("retention purge failed (next try in %.0f s): %s", self._interval, e)
            return None
        except Exception:
            log.exception("retention purge failed")
            return None
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(report.by_reason.items())) or "none"
        log.info(
            "retention purge: removed %d worklist entries (expired: %s) and %d MPPS instances",
            report.removed_entries,
            reasons,
            report.removed_mpps,
        )
        return report


def _stale_before(now: float, days: float, zone: datetime.tzinfo | None) -> int:
    """The SPS Start Date (YYYYMMDD) from which a step is not stale: ``days`` before today."""
    today = datetime.datetime.fromtimestamp(now, zone).date()
    cutoff = today - datetime.timedelta(days=days)
    return int(cutoff.strftime("%Y%m%d"))


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)

"""The worklist store: entries as DICOM JSON in Redis, index sets, atomic updates.

The client is synchronous (redis-py with its thread-safe connection pool): the
DICOM service calls it from pynetdicom's association threads, and the asyncio
HL7 side from one worker thread (``broker.services.batching``), whose messages share
round trips through ``broker.store.steps``. One client style, one code path.

Every multi-key change is one Lua script call, so it is atomic: either a
message's whole effect (its entries, their index memberships and its dedup
record) is in Redis or none of it. Scripts are files (``broker/store/lua/``), run
through one :class:`~broker.store.scripts.ScriptRunner` per store, which also waits
for replicas when configured. A script is given every key its caller can name;
those it finds in stored data (an order's current entries) it derives from a
prefix it is given, which is fine on one primary (with replicas and Sentinel);
Redis Cluster is not a target (see DESIGN.md). The apply script's keys and payload
are built by ``broker.store.apply_script``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import redis
from pydicom.dataset import Dataset

from broker.common import jsontext
from broker.errors import store_error
from broker.store import scripts, steps
from broker.store.apply_script import apply_keys, apply_payload
from broker.store.candidates import CandidateSelector
from broker.store.entry_cache import EntryCache
from broker.store.guards import Guard, guard_payload
from broker.store.keys import KeySchema
from broker.store.scripts import KeyList, ScriptRunner
from broker.store.steps import Command, Steps
from broker.worklist.model import (
    ApplyOutcome,
    CandidateCriteria,
    DedupKey,
    DedupRecord,
    LogRecord,
    OrderChange,
)
from broker.worklist.ordering import MessageTime

__all__ = ["WorklistStore", "decode_dedup", "version_number"]

log = logging.getLogger(__name__)

_FETCH_BATCH = 256
_APPLY = scripts.load("apply")


class WorklistStore:
    """Worklist entries in Redis; see ``broker.store.keys`` for the schema."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        keys: KeySchema,
        dedup_ttl_seconds: int = 7 * 24 * 3600,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
        entry_cache: int = 10_000,
        alias_ttl_seconds: int = 365 * 86_400,
    ) -> None:
        if not keys.keyed:
            raise ValueError("the worklist store needs the site secret: KeySchema(prefix, secret)")
        self._redis = client
        self._keys = keys
        self._scripts = ScriptRunner(
            client, wait_replicas=wait_replicas, wait_timeout_ms=wait_timeout_ms
        )
        self._selector = CandidateSelector(client, self._keys)
        self._cache = EntryCache(entry_cache)  # decoded entries for reads; 0: off
        self._dedup_ttl = dedup_ttl_seconds
        self._alias_ttl = alias_ttl_seconds

    def __repr__(self) -> str:
        return f"WorklistStore(prefix={self._keys.prefix!r})"

    @property
    def keys(self) -> KeySchema:
        return self._keys

    @property
    def alias_ttl(self) -> int:
        """Seconds a Patient ID alias (A40, A47) lives (``patient_alias_days``)."""
        return self._alias_ttl

    @property
    def entry_cache(self) -> EntryCache:
        """The decoded entries kept for reads (its size, for metrics)."""
        return self._cache

    @property
    def client(self) -> redis.Redis:
        """The Redis client, for the patient store's reads."""
        return self._redis

    @property
    def scripts(self) -> ScriptRunner:
        """How the stores on this Redis run their scripts (and wait for replicas)."""
        return self._scripts

    # -- writes ---------------------------------------------------------

    def confirm_steps(self) -> Steps[None]:
        """With replicas to wait for: a write they must confirm, made after whatever this
        primary holds (a resend's dedup record and order), so an AA answered from it is
        as safe as the first one; StoreError when they do not. Without: nothing."""
        if self._scripts.waits:
            keys = [self._keys.replica_confirm()]
            yield from self._scripts.steps(scripts.load("replica_confirm"), keys)

    def apply(
        self,
        changes: Sequence[OrderChange],
        dedup: tuple[DedupKey, DedupRecord] | None,
        guards: Sequence[Guard] = (),
        sent: MessageTime | None = None,
        log: LogRecord | None = None,
    ) -> ApplyOutcome:
        """Apply a message's order changes and record its dedup entry, atomically.

        If ``dedup`` names a message that was applied before, nothing changes and
        the earlier record is returned in ``ApplyOutcome.duplicate``. If a guard
        no longer holds, nothing changes and ``ApplyOutcome.conflict`` is set.
        ``sent`` is the message's MSH-7: a change to an order that already took a
        newer message is skipped (``ApplyOutcome.stale``, see
        ``broker.worklist.ordering``); None applies without that check. ``log``, if
        given, is written to the message log in the same call when the changes are
        applied (``ApplyOutcome.logged`` is its id).
        """
        return steps.run(self._redis, self.apply_steps(changes, dedup, guards, sent, log))

    def apply_steps(
        self,
        changes: Sequence[OrderChange],
        dedup: tuple[DedupKey, DedupRecord] | None,
        guards: Sequence[Guard] = (),
        sent: MessageTime | None = None,
        log: LogRecord | None = None,
    ) -> Steps[ApplyOutcome]:
        """:meth:`apply` as steps (``broker.store.steps``)."""
        documents: list[str | bytes] = []
        call = apply_keys(self._keys)
        body = apply_payload(self._keys, changes, call, documents)
        if (dedup_body := self.dedup_body(dedup, call)) is not None:
            body["dedup"] = dedup_body
        body["guards"] = guard_payload(guards, call)
        if sent is not None:  # absent, not null: cjson's null would be true in Lua
            body["sent"] = {"earliest": sent.earliest, "latest": sent.latest}
        if log is not None:
            record = dict(log.body)
            record["keys_at"] = call.extend(record.pop("keys"))
            record["argv"] = len(documents) + 2  # ARGV[1] is the payload
            body["record"] = record
            documents += (log.raw, log.ack, log.application_ack)
        args = (jsontext.dumps(body), *documents)
        reply = yield from self._scripts.steps(_APPLY, call.names, args)
        tag = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if tag == "dup":
            return ApplyOutcome(duplicate=decode_dedup(reply[1]))
        if tag == "retry":
            return ApplyOutcome(conflict=True)
        created, removed, skipped, stale = (int(v) for v in reply[1:5])
        logged = reply[5] if len(reply) > 5 and reply[5] is not None else None
        return ApplyOutcome(
            created=created,
            removed=removed,
            skipped=skipped,
            stale=stale,
            logged=None if logged is None else _text(logged),
        )

    def dedup_body(
        self, dedup: tuple[DedupKey, DedupRecord] | None, call: KeyList
    ) -> dict[str, Any] | None:
        """A dedup record as the scripts write it (its key's position in ``call``, JSON
        value, TTL: ``lua/lib/message.lua``), or None."""
        if dedup is None:
            return None
        key, record = dedup
        value = _encode_dedup(record)
        return {"key": call.add(self._keys.dedup(key)), "value": value, "ttl": self._dedup_ttl}

    # -- reads ----------------------------------------------------------

    def dedup_lookup(self, key: DedupKey) -> DedupRecord | None:
        """The record of a message already applied under this identity, if any."""
        return steps.run(self._redis, self.dedup_lookup_steps(key))

    def dedup_lookup_steps(self, key: DedupKey) -> Steps[DedupRecord | None]:
        """:meth:`dedup_lookup` as one step (``broker.store.steps``)."""
        (raw,) = yield [Command(("GET", self._keys.dedup(key)))]
        return None if raw is None else decode_dedup(raw)

    def candidate_ids(self, criteria: CandidateCriteria) -> list[str]:
        """Entry ids that may match, sorted, narrowed through the index keys (never a scan)."""
        return self._selector.ids(criteria)

    def names_index_set(self, criteria: CandidateCriteria) -> bool:
        """Whether the criteria name a station, modality, patient or accession (an index
        set narrows them); if not, ``candidate_days`` can read their candidates."""
        return bool(self._selector.set_keys(criteria))

    def candidate_count(self, criteria: CandidateCriteria) -> int:
        """How many ids ``candidate_days`` gives for criteria that name no index set
        (station, modality, patient, accession), counted without reading them."""
        return self._selector.count(criteria)

    def candidate_days(
        self, criteria: CandidateCriteria, chunk: int = 2000
    ) -> Iterator[tuple[int, list[str]]]:
        """The candidate ids of criteria that name no index set, a day at a time in
        ascending order: the undated first (day 0), then each day (YYYYMMDD) of the SPS
        Start Date index, read ``chunk`` at a time (``CandidateSelector.days``)."""
        return self._selector.days(criteria, chunk)

    def candidates(self, criteria: CandidateCriteria) -> Iterator[Dataset]:
        """Stream the entries that may match ``criteria``, fetched in batches."""
        return self.entries(self.candidate_ids(criteria))

    def entries(self, ids: Iterable[str], *, keep: bool = True) -> Iterator[Dataset]:
        """Stream entries by id, skipping any removed since the ids were read.

        Each is read from Redis, but decoded only if its stored JSON or status changed
        since it was last read (``broker.store.entry_cache``): the Datasets may be
        shared with other readers, so they must not be changed. Without ``keep``, what
        is decoded now is not cached (a broad query would push out what polls use).
        """
        return (entry for _, entry in self.entries_by_id(ids, keep=keep))

    def entries_by_id(
        self, ids: Iterable[str], *, keep: bool = True
    ) -> Iterator[tuple[str, Dataset]]:
        """:meth:`entries`, each with its id."""
        batch: list[str] = []
        for entry_id in ids:
            batch.append(entry_id)
            if len(batch) >= _FETCH_BATCH:
                yield from self._fetch(batch, keep)
                batch = []
        if batch:
            yield from self._fetch(batch, keep)

    def _fetch(self, ids: list[str], keep: bool) -> Iterator[tuple[str, Dataset]]:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for entry_id in ids:
                pipe.hmget(self._keys.entry(entry_id), "ds", "status")
            rows = pipe.execute()
        except redis.RedisError as e:
            raise store_error(e) from e
        for entry_id, (raw, status) in zip(ids, rows, strict=True):
            if raw is None:
                self._cache.discard(entry_id)
            else:
                yield entry_id, self._cache.entry(entry_id, raw, status, keep=keep)

    def order_entry_ids(self, order_key: str) -> list[str]:
        """Ids of the entries an order has on the worklist now."""
        try:
            return sorted(_text(i) for i in self._redis.smembers(self._keys.order(order_key)))
        except redis.RedisError as e:
            raise store_error(e) from e

    def entry_statuses(self, ids: Iterable[str]) -> dict[str, str | None]:
        """The SPS status of each entry now, None for one no longer on the worklist."""
        found = self._field_of_each(ids, "status")
        return {i: None if s is None else _text(s) for i, s in found.items()}

    def mapping_versions(self, ids: Iterable[str]) -> dict[str, int | None]:
        """The number of the mapping version that made each entry (its ``mver``), None for
        one made before entries kept it, by no mapping (an import) or no longer there."""
        return {i: version_number(v) for i, v in self._field_of_each(ids, "mver").items()}

    def _field_of_each(self, ids: Iterable[str], field: str) -> dict[str, Any]:
        """One field of each entry's hash (None where absent), in one round trip."""
        wanted = list(ids)
        try:
            pipe = self._redis.pipeline(transaction=False)
            for entry_id in wanted:
                pipe.hget(self._keys.entry(entry_id), field)
            rows = pipe.execute()
        except redis.RedisError as e:
            raise store_error(e) from e
        return dict(zip(wanted, rows, strict=True))

    def count(self) -> int:
        """How many entries are on the worklist."""
        try:
            return int(self._redis.scard(self._keys.all_entries()))
        except redis.RedisError as e:
            raise store_error(e) from e


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def version_number(value: bytes | str | None) -> int | None:
    """An entry's ``mver`` as a number; None when it has none (or not a number)."""
    text = "" if value is None else _text(value)
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def _encode_dedup(record: DedupRecord) -> str:
    return jsontext.dumps({"digest": record.digest, "ack": base64.b64encode(record.ack).decode()})


def decode_dedup(raw: bytes | str) -> DedupRecord:
    data = jsontext.loads(raw)
    return DedupRecord(digest=str(data["digest"]), ack=base64.b64decode(data["ack"]))

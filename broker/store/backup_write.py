"""Records of a backup written into a worklist Redis, for ``mwl-broker restore``.

Each record (``broker.store.backup_read``) is written with the keys this broker's
:class:`~broker.store.keys.KeySchema` builds from its values: entry ids, index
memberships (``broker.store.apply_script.index_refs``, as the intake makes them),
order, patient and alias keys are computed again with this broker's
``redis_key_secret``, so a backup restores onto a broker with another secret. Only
``field`` records (pseudonyms of orders or patients that have no other record) need
the secret the backup was made with; under another secret they are left out and
counted.

Writes go in MULTI batches. What is there before is :meth:`BackupWriter.present`;
:meth:`BackupWriter.clear` removes it (the restore's ``--replace``, and its roll
back after a failure): everything under the prefix but the audit trail, the message
log, the MPPS event stream and the key schema record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import redis
from pydicom.dataset import Dataset

from broker.common import jsontext
from broker.errors import store_error
from broker.store.apply_script import index_refs
from broker.store.backup_outbound import write_outbound
from broker.store.backup_read import Record
from broker.store.keys import KeySchema
from broker.worklist.mpps_rules import step_refs

__all__ = ["BackupWriter"]

_BATCH = 200  # records per MULTI
_SCAN = 1000
# What a restore neither removes nor counts as data: kept across --replace.
_KEPT = ("audit", "audit:export", "keyschema", "keyschema:lock", "mpps-events")
_KEPT_STARTS = ("msg:", "msglog:")
_HASHES = frozenset({"console users", "API tokens", "order states"})  # counted by field
_SEEDER = "mwl-broker"  # the author of a seeded mapping version 1


class BackupWriter:
    """Writes records (see the module docstring); ``skipped`` counts what was left out."""

    def __init__(self, client: redis.Redis, keys: KeySchema, *, same_secret: bool) -> None:
        if not keys.keyed:
            raise ValueError("a restore needs the site secret: KeySchema(prefix, secret)")
        self._redis = client
        self._keys = keys
        self._same_secret = same_secret
        self.skipped: Counter[str] = Counter()
        self.written = 0  # records given to write so far (the last one may have failed)
        self._mapping_state: Record | None = None

    def __repr__(self) -> str:
        return f"BackupWriter(prefix={self._keys.prefix!r})"

    # -- what is there --------------------------------------------------------

    def _removable(self) -> Iterable[str]:
        p = self._keys.prefix + ":"
        for raw in self._redis.scan_iter(match=_glob(p) + "*", count=_SCAN):
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            rest = name[len(p) :]
            if rest not in _KEPT and not rest.startswith(_KEPT_STARTS):
                yield name

    def present(self) -> Counter[str]:
        """What the Redis holds that a restore would replace, counted by kind; a mapping
        set seeded by a starting broker (one version, by mwl-broker) is not counted."""
        found: Counter[str] = Counter()
        for name in self._removable():
            kind = _kind(name[len(self._keys.prefix) + 1 :])
            found[kind] += int(self._redis.hlen(name)) if kind in _HASHES else 1
        found.pop("mapping keys", None)
        if not self._only_seeded_mappings():
            found["mapping versions"] = int(
                self._redis.zcard(f"{self._keys.prefix}:mapping:history")
            )
        found.pop("other keys", None)  # index sets go with entries; sessions, failed logins
        return +found

    def _only_seeded_mappings(self) -> bool:
        p = self._keys.prefix
        numbers = self._redis.zrange(f"{p}:mapping:history", 0, -1)
        if len(numbers) > 1:
            return False
        if not numbers:
            return True
        first = numbers[0].decode() if isinstance(numbers[0], bytes) else str(numbers[0])
        author = self._redis.hget(f"{p}:mapping:v:{first}", "author")
        return author in (_SEEDER.encode(), None)

    def clear(self) -> int:
        """Remove what :meth:`present` counts (and the indexes with it); how many keys."""
        removed = 0
        try:
            batch: list[str] = []
            for name in self._removable():
                batch.append(name)
                if len(batch) >= _BATCH:
                    removed += int(self._redis.delete(*batch))
                    batch = []
            if batch:
                removed += int(self._redis.delete(*batch))
        except redis.RedisError as e:
            raise store_error(e) from e
        return removed

    # -- writing --------------------------------------------------------------

    def write(self, records: Iterable[Record]) -> None:
        """Write ``records`` in MULTI batches; the mapping counter and active version last."""
        try:
            pipe = self._redis.pipeline(transaction=True)
            queued = 0
            for record in records:
                self.written += 1
                self._write(pipe, record)
                queued += 1
                if queued >= _BATCH:
                    pipe.execute()
                    queued = 0
            if self._mapping_state is not None:
                p, state = self._keys.prefix, self._mapping_state
                pipe.set(f"{p}:mapping:seq", int(state["seq"]))
                if state["active"] is not None:
                    pipe.set(f"{p}:mapping:active", str(state["active"]))
            pipe.execute()
        except redis.RedisError as e:
            raise store_error(e) from e

    def _write(self, pipe: Any, record: Record) -> None:
        kind = record["kind"]
        if kind == "order":
            self._order(pipe, record)
        elif kind == "field":
            self._field(pipe, record)
        elif kind == "patient":
            k = self._keys
            if record["ds"] is not None:
                pipe.hset(k.patient(record["patient_id"]), "ds", record["ds"])
            if record["time"] is not None:
                pipe.hset(k.patient_time(), k.patient_field(record["patient_id"]), record["time"])
        elif kind == "alias":
            self._alias(pipe, record)
        elif kind == "mpps":
            self._mpps(pipe, record)
        elif kind == "mapping":
            p = self._keys.prefix
            pipe.hset(f"{p}:mapping:v:{int(record['number'])}", mapping=record["fields"])
            pipe.zadd(f"{p}:mapping:history", {str(int(record["number"])): int(record["number"])})
        elif kind == "mapping-state":
            self._mapping_state = record
        elif kind in ("user", "token"):
            key = self._keys.users() if kind == "user" else self._keys.tokens()
            pipe.hset(key, record["name"], record["value"])
        elif kind in ("outbound", "outbound-state"):
            write_outbound(pipe, self._keys, record)
        elif kind == "dedup":
            name = f"{self._keys.prefix}:dedup:{record['name']}"
            _set_with_life(pipe, name, record["value"], int(record["ttl_ms"]))
        else:  # the file was checked before; a kind of a newer format is refused there
            raise ValueError(f"unknown record kind {kind!r}")

    def _order(self, pipe: Any, record: Record) -> None:
        k = self._keys
        order_key = record["order_key"]
        order_set, field = k.order_and_field(order_key)
        if record["status"] is not None:
            pipe.hset(k.order_status(), field, record["status"])
        if record["time"] is not None:
            pipe.hset(k.order_time(), field, record["time"])
        for entry in record["entries"]:
            entry_id = k.entry_id(order_key, int(entry["step"]))
            refs = index_refs(k, jsontext.loads(entry["ds"]))
            values = {"ds": entry["ds"], "order": order_key, "idx": jsontext.dumps(refs)}
            if entry["status"] is not None:
                values["status"] = entry["status"]
            if entry.get("origin"):  # its sender, and its order's pseudonym (the outbound)
                values |= {
                    "origin": entry["origin"],
                    "ofield": k.order_field(order_key),
                    "cid": entry.get("cid") or "",
                }
            number = entry.get("mapping_version")  # none in a file written before it
            if isinstance(number, int) and not isinstance(number, bool) and number > 0:
                values["mver"] = str(number)
            pipe.hset(k.entry(entry_id), mapping=values)
            for ref in refs:
                if ref[0] == "z":
                    pipe.zadd(ref[1], {entry_id: ref[2]})
                else:
                    pipe.sadd(ref[1], entry_id)
            pipe.sadd(k.all_entries(), entry_id)
            pipe.sadd(order_set, entry_id)
            if entry["ended"] is not None:
                pipe.zadd(k.entries_ended(), {entry_id: float(entry["ended"])})

    def _field(self, pipe: Any, record: Record) -> None:
        if not self._same_secret:
            self.skipped["order and patient states made with another key secret"] += 1
            return
        k = self._keys
        key = {"order-status": k.order_status(), "order-time": k.order_time(),
               "patient-time": k.patient_time()}[record["hash"]]  # fmt: skip
        pipe.hset(key, record["field"], record["value"])

    def _alias(self, pipe: Any, record: Record) -> None:
        k = self._keys
        ttl = int(record["ttl_ms"])
        _set_with_life(pipe, k.patient_alias(record["old"]), record["target"], ttl)
        merged = k.merged_into(record["target"])
        pipe.sadd(merged, record["old"])
        if int(record["merged_ttl_ms"]) > 0:
            pipe.pexpire(merged, int(record["merged_ttl_ms"]))

    def _mpps(self, pipe: Any, record: Record) -> None:
        k = self._keys
        uid = record["uid"]
        refs: dict[str, None] = {}
        for step in step_refs(Dataset.from_json(record["ds"])):
            if step.study_uid:
                refs[k.mpps_by_study(step.study_uid)] = None
            if step.accession:
                refs[k.mpps_by_accession(step.accession)] = None
        entries = [k.entry_id(order_key, int(step)) for order_key, step in record["entries"]]
        values = {
            "ds": record["ds"],
            "status": record["status"],
            "aet": record["aet"] or "",
            "entries": jsontext.dumps(entries),
            "refs": jsontext.dumps([["s", key] for key in refs]),
            "created": record["created"] or "0",
            "updated": record["updated"] or "0",
        }
        pipe.hset(k.mpps(uid), mapping=values)
        pipe.zadd(k.mpps_by_time(), {uid: float(record["time"] or values["updated"])})
        for key in refs:
            pipe.sadd(key, uid)


def _set_with_life(pipe: Any, name: str, value: str, ttl_ms: int) -> None:
    if ttl_ms > 0:
        pipe.set(name, value, px=ttl_ms)
    elif ttl_ms == -1:  # no expiry
        pipe.set(name, value)
    # -2: it expired while the backup was read


def _kind(rest: str) -> str:
    for start, kind in (
        ("entry:", "worklist entries"),
        ("patient=", "patients"),
        ("alias=", "patient aliases"),
        ("mpps:", "MPPS instances"),
        ("auth:users", "console users"),
        ("auth:tokens", "API tokens"),
        ("order-status", "order states"),
        ("dedup:", "resend records"),
        ("mapping:", "mapping keys"),
    ):
        if rest.startswith(start):
            return kind
    return "other keys"


def _glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)

"""A worklist Redis read as logical records, for ``mwl-broker backup``.

A record is a JSON-ready dict with a ``kind``; it holds values, never a key name or
a pseudonym that the restoring broker can compute again (``broker.store.keys``):

    order     order key, its status and newest MSH-7, its entries: step number (the
              ordinal the entry id is made from), DICOM JSON, SPS status, ended time,
              origin (its ``[hl7_senders]`` name, which routes its status events),
              the correlation ID of its message and ``mapping_version`` (the number of
              the mapping version that made it; absent in older files, null: unknown)
    field     an order-status, order-time or patient-time field whose order or patient
              has no record and whose value the Redis no longer knows
              (``broker.store.backup_orphans``): only its pseudonym is stored, so it is
              restored only under the same ``redis_key_secret``
    patient   Patient ID, DICOM JSON (None for a patient merged away), newest ADT's MSH-7
    alias     old Patient ID, surviving Patient ID, remaining life (ms)
    mpps      instance UID, DICOM JSON, status, calling AE, times, linked entries by
              (order key, step number)
    mapping   one mapping version (files, author, comment, created, digest, based_on);
              ``mapping-state`` the counter and the active number
    user      login and its stored JSON (role, Argon2id hash…); ``token`` likewise
    dedup     a resend's identity (MSH-3|MSH-4|MSH-10 as in the key) and its first ACK,
              with its remaining life
    outbound  the status events for the RIS, waiting and parked, per destination, in
              order (``broker.store.backup_outbound``)

**Consistency.** Each record is read atomically (an order with all its entries by
one Lua call; the others by one command or one MULTI), so no record is torn. The
file as a whole is not one instant: records are read one after the other while the
broker may go on writing, so an order that arrives during the backup may or may not
be in it. References between records are by value (an MPPS names its entries by
order key and step number), so a record read earlier or later than another never
breaks the restore; stop the intake for a backup of one instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis

from broker.common import jsontext
from broker.errors import store_error
from broker.store import scripts, steps
from broker.store.backup_orphans import Orphans
from broker.store.backup_outbound import read_outbound
from broker.store.keys import KeySchema
from broker.store.scripts import ScriptRunner
from broker.store.worklist import version_number

__all__ = ["MAX_STEPS", "BackupReader", "Record"]

Record = dict[str, Any]
MAX_STEPS = 1000  # step numbers tried to find an entry's (an order has a handful)
_SCAN = 500
_ORDER = scripts.load("backup_order")
_PATIENT_ID = "00100020"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _opt(value: Any) -> str | None:
    return None if value is None else _text(value)


class BackupReader:
    """Streams the records of one Redis (see the module docstring); ``skipped`` counts
    what could not be written as a record, by reason."""

    def __init__(self, client: redis.Redis, keys: KeySchema) -> None:
        if not keys.keyed:
            raise ValueError("a backup needs the site secret: KeySchema(prefix, secret)")
        self._redis = client
        self._keys = keys
        self._scripts = ScriptRunner(client)
        self.skipped: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"BackupReader(prefix={self._keys.prefix!r})"

    def records(self) -> Iterator[Record]:
        try:
            yield from self._orders()
            orphans = Orphans(self._redis, self._keys)
            orphans.find()
            yield from orphans.named_orders()
            yield from self._patients()
            yield from self._aliases(orphans)
            yield from orphans.fields()
            yield from self._mpps()
            yield from self._mappings()
            yield from self._auth()
            yield from self._dedup()
            yield from read_outbound(self._redis, self._keys, self.step_number)
        except redis.RedisError as e:
            raise store_error(e) from e

    def _scan(self, pattern: str) -> Iterator[str]:
        for raw in self._redis.scan_iter(match=pattern, count=_SCAN):
            yield _text(raw)

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    # -- worklist -------------------------------------------------------------

    def _orders(self) -> Iterator[Record]:
        start = f"{self._keys.prefix}:order="
        batch: list[str] = []
        for name in self._scan(f"{_glob(start)}*"):
            batch.append(name[len(start) :])
            if len(batch) >= _SCAN:
                yield from self._order_batch(batch)
                batch = []
        if batch:
            yield from self._order_batch(batch)

    def _order_batch(self, fields: list[str]) -> Iterator[Record]:
        """Orders by their fields, each read by one atomic call, the calls in one round trip."""
        k = self._keys
        calls = [
            self._scripts.steps(
                _ORDER,
                [
                    f"{k.prefix}:order={field}",
                    k.entry_prefix(),
                    k.order_status(),
                    k.order_time(),
                    k.entries_ended(),
                ],
                [field],
            )
            for field in fields
        ]
        for field, reply in zip(fields, steps.run_all(self._redis, calls), strict=True):
            if isinstance(reply, BaseException):
                raise reply
            record = self._order(field, reply)
            if record is not None:
                yield record

    def _order(self, field: str, reply: list[Any]) -> Record | None:
        entries, order_key = [], None
        for entry_id, ds, order, status, ended, *more in reply[2:]:
            order_key = _text(order)
            step = self.step_number(order_key, _text(entry_id))
            if step is None:
                self._skip("entries whose step number was not found")
                continue
            entries.append(
                {
                    "step": step,
                    "ds": _text(ds),
                    "status": _opt(status),
                    "ended": None if ended is None else float(ended),
                    "origin": _opt(more[0]) if more else None,
                    "cid": _opt(more[1]) if len(more) > 1 else None,
                    "mapping_version": version_number(more[2]) if len(more) > 2 else None,
                }
            )
        if order_key is None or self._keys.order_field(order_key) != field:
            return None  # no entry left: its fields are written as orphan fields
        entries.sort(key=lambda e: int(str(e["step"])))
        return {"kind": "order", "order_key": order_key, "status": _opt(reply[0]),
                "time": _opt(reply[1]), "entries": entries}  # fmt: skip

    def step_number(self, order_key: str, entry_id: str) -> int | None:
        """The ordinal ``entry_id`` was made from (``KeySchema.entry_id``), or None."""
        for step in range(1, MAX_STEPS + 1):
            if self._keys.entry_id(order_key, step) == entry_id:
                return step
        return None

    def _patients(self) -> Iterator[Record]:
        k = self._keys
        start = f"{k.prefix}:patient="
        for name in self._scan(f"{_glob(start)}*"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.hget(name, "ds")
            pipe.hget(k.patient_time(), name[len(start) :])
            ds, sent = pipe.execute()
            if ds is None:
                continue
            values = jsontext.loads(ds).get(_PATIENT_ID, {}).get("Value") or []
            if not values:
                self._skip("patient records without a Patient ID")
                continue
            yield {"kind": "patient", "patient_id": str(values[0]), "ds": _text(ds),
                   "time": _opt(sent)}  # fmt: skip

    def _aliases(self, orphans: Orphans) -> Iterator[Record]:
        k = self._keys
        for name in self._scan(f"{_glob(k.prefix)}:merged=*"):
            merged_ttl = int(self._redis.pttl(name))
            for raw_old in self._redis.smembers(name):
                old = _text(raw_old)
                pipe = self._redis.pipeline(transaction=True)
                pipe.get(k.patient_alias(old))
                pipe.pttl(k.patient_alias(old))
                target, ttl = pipe.execute()
                named = orphans.named_patient(old)
                if named is not None:
                    yield named
                if target is not None and k.merged_into(_text(target)) == name:
                    yield {"kind": "alias", "old": old, "target": _text(target),
                           "ttl_ms": int(ttl), "merged_ttl_ms": merged_ttl}  # fmt: skip

    # -- MPPS -----------------------------------------------------------------

    def _mpps(self) -> Iterator[Record]:
        k = self._keys
        start = f"{k.prefix}:mpps:"
        fields = ("ds", "status", "entries", "aet", "created", "updated")
        for name in self._scan(f"{_glob(start)}*"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.hmget(name, *fields)
            pipe.zscore(k.mpps_by_time(), _unescape(name[len(start) :]))
            row, score = pipe.execute()
            if row[0] is None:
                continue
            ds, status, entries, aet, created, updated = (_opt(v) for v in row)
            yield {
                "kind": "mpps", "uid": _unescape(name[len(start):]), "ds": ds, "status": status,
                "aet": aet, "created": created, "updated": updated, "time": score,
                "entries": self._linked(jsontext.loads(entries or "[]")),
            }  # fmt: skip

    def _linked(self, ids: list[str]) -> list[list[Any]]:
        """Entry ids as (order key, step number); an entry no longer there is left out."""
        out: list[list[Any]] = []
        for entry_id in ids:
            order = self._redis.hget(self._keys.entry(entry_id), "order")
            step = None if order is None else self.step_number(_text(order), entry_id)
            if order is None or step is None:
                self._skip("MPPS links to entries no longer on the worklist")
                continue
            out.append([_text(order), step])
        return out

    # -- configuration and accounts ----------------------------------------

    def _mappings(self) -> Iterator[Record]:
        p = self._keys.prefix
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(f"{p}:mapping:seq")
        pipe.get(f"{p}:mapping:active")
        pipe.zrange(f"{p}:mapping:history", 0, -1)
        seq, active, numbers = pipe.execute()
        for raw in numbers:
            fields = self._redis.hgetall(f"{p}:mapping:v:{_text(raw)}")
            if fields:
                values = {_text(f): _text(v) for f, v in fields.items()}
                yield {"kind": "mapping", "number": int(raw), "fields": values}
        if seq is not None:
            yield {"kind": "mapping-state", "seq": int(seq), "active": _opt(active)}

    def _auth(self) -> Iterator[Record]:
        for kind, key in (("user", self._keys.users()), ("token", self._keys.tokens())):
            for name, value in self._redis.hscan_iter(key, count=_SCAN):
                yield {"kind": kind, "name": _text(name), "value": _text(value)}

    def _dedup(self) -> Iterator[Record]:
        start = f"{self._keys.prefix}:dedup:"
        for name in self._scan(f"{_glob(start)}*"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.get(name)
            pipe.pttl(name)
            value, ttl = pipe.execute()
            if value is not None:
                yield {"kind": "dedup", "name": name[len(start) :], "value": _text(value),
                       "ttl_ms": int(ttl)}  # fmt: skip


def _glob(text: str) -> str:
    """``text`` as a literal SCAN MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _unescape(part: str) -> str:
    """A value as ``KeySchema`` escaped it in a key part."""
    out, escaped = [], False
    for c in part:
        if escaped or c != "\\":
            out.append(c)
            escaped = False
        else:
            escaped = True
    return "".join(out)

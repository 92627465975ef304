"""Schema 1 → schema 2: the keys of a Redis written before pseudonyms, converted in place.

Run once, by the first broker that starts on such a Redis
(``broker.worklist.key_schema``, under its lock), or by ``mwl-broker
migrate-keys``. One pass of ``SCAN`` (never ``KEYS``) over the prefix finds what
schema 1 wrote (``broker.store.schema1``), and each key is converted by one
Lua call, atomic on its own:

- an entry hash goes to its new id, its ``idx`` list rewritten;
- index, order and MPPS-index sets get their pseudonymised names; every member
  that is a schema-1 entry id (in those sets, ``idx:all``, the station and
  modality sets, the date and ``ended`` sorted sets, scores kept) becomes the new
  id; large sets go in batches;
- patient records are renamed; aliases are renamed, given the alias life
  (``patient_alias_days`` from now: schema 1 kept them forever) and recorded in
  their target's ``merged`` set;
- MPPS instances get new ``entries`` and ``refs``, message-log records new
  ``entry_ids`` (their TTL kept).

The three hashes whose fields are identifiers (``order-status``, ``order-time``,
``patient-time``) and the MPPS event stream (its records' ``entries``, stream ids
kept) are rebuilt in a scratch key and swapped in by one call that also records
the step as done in ``{p}:keyschema``. A key converted is never converted again,
because no schema-2 name or id looks like schema 1's; so a migration killed
halfway is finished by the next run, and ``check`` counts what a run would change,
touching nothing. Reads and writes are compared (sha1) inside each call: a key
another client changed in between is read again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, cast

import redis

from broker.common import jsontext
from broker.errors import StoreError
from broker.store.guards import value_digest
from broker.store.keys import KeySchema
from broker.store.schema1 import Kind, Schema1, is_schema1_id

__all__ = ["KeyMigration"]

log = logging.getLogger(__name__)

_SCAN_COUNT = 1000
_BATCH = 500  # members, fields or records per call
_ATTEMPTS = 8

# ARGV[1]: {key, fields, digests, values}: HSET key values (field, value, ...) if each of
# ``fields`` still has the value read (sha1 ``digests``) and the key exists (a message-log
# record may have expired meanwhile). Returns 1, or 0 when the hash changed meanwhile.
_SET_FIELD = """
local p = cjson.decode(ARGV[1])
for i, f in ipairs(p.fields) do
  if redis.sha1hex(redis.call('HGET', p.key, f) or '') ~= p.digests[i] then return 0 end
end
if redis.call('EXISTS', p.key) == 0 then return 0 end
redis.call('HSET', p.key, unpack(p.values))
return 1
"""

# ARGV[1]: {key, new, idx, digest}: an entry hash to its new id with its new idx list.
_MOVE_ENTRY = """
local p = cjson.decode(ARGV[1])
if redis.call('EXISTS', p.key) == 0 then return 1 end
if redis.sha1hex(redis.call('HGET', p.key, 'idx') or '') ~= p.digest then return 0 end
redis.call('RENAME', p.key, p.new)
redis.call('HSET', p.new, 'idx', p.idx)
return 1
"""

# ARGV[1]: {key, kind ("s"/"z", "" for no members), pairs [[old, new], ...], rename}: members
# replaced (a sorted set's keep their scores); then, unless rename is "", the key takes its
# new name (a set already there is merged into).
_MEMBERS = """
local p = cjson.decode(ARGV[1])
for _, m in ipairs(p.pairs) do
  if p.kind == 'z' then
    local score = redis.call('ZSCORE', p.key, m[1])
    if score then
      redis.call('ZREM', p.key, m[1])
      redis.call('ZADD', p.key, score, m[2])
    end
  elseif redis.call('SREM', p.key, m[1]) == 1 then
    redis.call('SADD', p.key, m[2])
  end
end
if p.rename ~= '' and redis.call('EXISTS', p.key) == 1 then
  if p.kind == 's' and redis.call('EXISTS', p.rename) == 1 then
    redis.call('SUNIONSTORE', p.rename, p.rename, p.key)
    redis.call('DEL', p.key)
  else
    redis.call('RENAME', p.key, p.rename)
  end
end
return 1
"""

# ARGV[1]: {key, new, value, ttl, merged, old}: an alias renamed with a TTL (if it had
# none), its old ID added to its target's merged set. 0 when its value changed meanwhile.
_MOVE_ALIAS = """
local p = cjson.decode(ARGV[1])
local v = redis.call('GET', p.key)
if not v then return 1 end
if v ~= p.value then return 0 end
redis.call('RENAME', p.key, p.new)
if redis.call('TTL', p.new) < 0 then redis.call('EXPIRE', p.new, p.ttl) end
redis.call('SADD', p.merged, p.old)
if redis.call('TTL', p.merged) < 0 then redis.call('EXPIRE', p.merged, p.ttl) end
return 1
"""

# ARGV[1]: {scratch, target, schema, step}: the rebuilt key replaces the target (or, with
# nothing rebuilt, the target is left as it is) and the step is recorded as done.
_SWAP = """
local p = cjson.decode(ARGV[1])
if redis.call('HEXISTS', p.schema, p.step) == 1 then return 0 end
if redis.call('EXISTS', p.scratch) == 1 then redis.call('RENAME', p.scratch, p.target) end
redis.call('HSET', p.schema, p.step, '1')
return 1
"""

Tick = Callable[[Kind | str], None]


class KeyMigration:
    """Converts (or, with ``dry``, counts) what schema 1 wrote; see the module docstring.

    ``tick`` is called after each converting call, with what it converted (the
    caller renews its lock there; a test may stop the process there).
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: KeySchema,
        *,
        alias_ttl: int,
        dry: bool = False,
        tick: Tick | None = None,
    ) -> None:
        self._redis = client
        self._keys = keys
        self._old = Schema1(keys)
        self._alias_ttl = alias_ttl
        self._dry = dry
        self._tick = tick or (lambda _: None)
        self.counts: Counter[str] = Counter()
        scripts = (_SET_FIELD, _MOVE_ENTRY, _MEMBERS, _MOVE_ALIAS, _SWAP)
        self._set_field, self._move_entry, self._members, self._move_alias, self._swap = (
            client.register_script(s) for s in scripts
        )

    def __repr__(self) -> str:
        return f"KeyMigration(prefix={self._keys.prefix!r}, dry={self._dry})"

    def run(self) -> Counter[str]:
        """Convert (or count) everything; returns what changed, by kind."""
        try:
            self._hash("order-status", self._keys.order_status(), self._keys.order_field)
            self._hash("order-time", self._keys.order_time(), self._keys.order_field)
            self._hash("patient-time", self._keys.patient_time(), self._keys.patient_field)
            self._events()
            pattern = _glob_escape(self._keys.prefix) + ":*"
            for raw in self._redis.scan_iter(match=pattern, count=_SCAN_COUNT):
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                found = self._old.classify(name)
                if found is not None:
                    self._convert(name, *found)
        except redis.RedisError as e:
            raise StoreError(f"key migration: Redis failed: {e}") from e
        return self.counts

    # -- one key ----------------------------------------------------------------

    def _convert(self, name: str, kind: Kind, value: str) -> None:
        if kind is Kind.ENTRY:
            self._entry(name, value)
        elif kind is Kind.ALIAS:
            self._alias(name, value)
        elif kind is Kind.PATIENT or kind in (Kind.MPPS_STUDY, Kind.MPPS_ACCESSION):
            self._rename(name, kind, value)
        elif kind in (Kind.PATIENT_INDEX, Kind.ACCESSION_INDEX, Kind.ORDER, Kind.OTHER_INDEX):
            rename = "" if kind is Kind.OTHER_INDEX else self._old.new_name(kind, value)
            self._set_members(name, kind, rename)
        elif kind is Kind.SORTED_INDEX:
            self._sorted_members(name, kind)
        elif kind is Kind.MPPS:
            self._json_fields(name, kind, {"entries": self._old.entry_ids, "refs": self._old.refs})
        elif kind is Kind.MESSAGE:
            self._json_fields(name, kind, {"entry_ids": self._old.entry_ids})

    def _entry(self, name: str, old_id: str) -> None:
        new = self._keys.entry(self._keys.entry_id_from_schema1(old_id))
        for _ in range(_ATTEMPTS):
            idx = _raw(self._redis.hget(name, "idx"))
            refs = self._old.refs(jsontext.loads(idx)) if idx else []
            payload = {"key": name, "new": new, "idx": jsontext.dumps(refs)}
            payload["digest"] = value_digest(idx)
            if self._call(self._move_entry, Kind.ENTRY, payload):
                return
        raise _changing()

    def _rename(self, name: str, kind: Kind, value: str) -> None:
        """A key whose content stays (a patient record, an MPPS index set)."""
        payload = {"key": name, "kind": "", "pairs": [], "rename": self._old.new_name(kind, value)}
        self._call(self._members, kind, payload)

    def _alias(self, name: str, old_id: str) -> None:
        for _ in range(_ATTEMPTS):
            raw = self._redis.get(name)
            if raw is None:
                return
            target = _text(raw)
            payload = {
                "key": name,
                "new": self._keys.patient_alias(old_id),
                "value": target,
                "ttl": self._alias_ttl,
                "merged": self._keys.merged_into(target),
                "old": old_id,
            }
            if self._call(self._move_alias, Kind.ALIAS, payload):
                return
        raise _changing()

    def _set_members(self, name: str, kind: Kind, rename: str) -> None:
        members = [_text(m) for m in self._redis.sscan_iter(name, count=_SCAN_COUNT)]
        pairs = [[m, self._old.entry_id(m)] for m in sorted(set(members)) if is_schema1_id(m)]
        self._member_batches(name, kind, "s", pairs, rename)

    def _sorted_members(self, name: str, kind: Kind) -> None:
        members = [_text(m) for m, _ in self._redis.zscan_iter(name, count=_SCAN_COUNT)]
        pairs = [[m, self._old.entry_id(m)] for m in sorted(set(members)) if is_schema1_id(m)]
        self._member_batches(name, kind, "z", pairs, "")

    def _member_batches(
        self, name: str, kind: Kind, type_: str, pairs: list[list[str]], rename: str
    ) -> None:
        if not pairs and not rename:
            return
        batches = [pairs[i : i + _BATCH] for i in range(0, len(pairs), _BATCH)] or [[]]
        for n, batch in enumerate(batches, start=1):
            last = n == len(batches)
            payload = {"key": name, "kind": type_, "pairs": batch, "rename": rename if last else ""}
            self._call(self._members, kind if last else "", payload)

    def _json_fields(
        self, name: str, kind: Kind, rewrite: dict[str, Callable[[list[Any]], list[Any]]]
    ) -> None:
        """Hash fields holding JSON lists, rewritten where they hold schema-1 ids or names."""
        fields = sorted(rewrite)
        for _ in range(_ATTEMPTS):
            raw = [_raw(v) for v in self._redis.hmget(name, fields)]
            values: list[str] = []
            for field, value in zip(fields, raw, strict=True):
                if value is None:
                    continue
                old = jsontext.loads(value)
                new = rewrite[field](old) if isinstance(old, list) else old
                if new != old:
                    values += [field, jsontext.dumps(new)]
            if not values:
                return
            payload = {
                "key": name,
                "fields": fields,
                "digests": [value_digest(v) for v in raw],
                "values": values,
            }
            if self._call(self._set_field, kind, payload):
                return
        raise _changing()

    # -- whole keys rebuilt -----------------------------------------------------

    def _hash(self, step: str, target: str, field_of: Callable[[str], str]) -> None:
        """A hash whose fields are values: rebuilt with pseudonyms, then swapped in."""
        schema, scratch = self._keys.key_schema(), self._keys.key_schema_scratch()
        if self._redis.hexists(schema, f"done:{step}"):
            return
        if not self._dry:
            self._redis.delete(scratch)
        fields: dict[Any, Any] = {}
        for field, value in self._redis.hscan_iter(target, count=_SCAN_COUNT):
            fields[field_of(_text(field))] = value
            if len(fields) >= _BATCH:
                self._write_scratch(step, fields)
        self._write_scratch(step, fields)
        payload = {"scratch": scratch, "target": target, "schema": schema, "step": f"done:{step}"}
        self._call(self._swap, "", payload)

    def _write_scratch(self, step: str, fields: dict[Any, Any]) -> None:
        if fields:
            self.counts[f"{step} fields"] += len(fields)
            if not self._dry:
                self._redis.hset(self._keys.key_schema_scratch(), mapping=fields)
            fields.clear()

    def _events(self) -> None:
        """The MPPS event stream, its records' entry ids rewritten and their stream ids kept;
        left as it is (with a warning) if it has consumer groups, which a rebuild would lose."""
        schema, scratch = self._keys.key_schema(), self._keys.key_schema_scratch()
        target, step = self._keys.mpps_events(), "done:mpps-events"
        if self._redis.hexists(schema, step):
            return
        if self._redis.exists(target) and self._redis.xinfo_groups(target):
            log.warning(
                "key migration: %s has consumer groups; its records keep schema-1 entry ids",
                target,
            )
        else:
            if not self._dry:
                self._redis.delete(scratch)
            for record_id, fields in _stream(self._redis, target):
                entries = fields.get(b"entries")
                if entries is not None:
                    ids = jsontext.loads(entries)
                    fields[b"entries"] = jsontext.dumps(self._old.entry_ids(ids)).encode()
                    self.counts["mpps-events records"] += self._old.entry_ids(ids) != ids
                if not self._dry:
                    self._redis.xadd(scratch, fields, id=record_id)  # type: ignore[arg-type]
        self._call(self._swap, "", {"scratch": scratch, "target": target, "schema": schema,
                                     "step": step})  # fmt: skip

    # -- calls ------------------------------------------------------------------

    def _call(self, script: Any, kind: Kind | str, payload: dict[str, Any]) -> bool:
        """Run one converting script (a dry run only counts); True unless it found the key
        changed since it was read."""
        if self._dry:
            if kind:
                self.counts[str(kind)] += 1
            return True
        done = int(script(args=[jsontext.dumps(payload)], client=self._redis))
        if done and kind:
            self.counts[str(kind)] += 1
        self._tick(kind)
        return bool(done)


def _stream(client: redis.Redis, key: str) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
    start = "-"
    while True:
        rows = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(key, start, count=_BATCH))
        if not rows:
            return
        yield from rows
        start = "(" + _text(rows[-1][0])


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a ``SCAN MATCH`` pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _changing() -> StoreError:
    """(Never the key's name: a schema-1 name holds an identifier.)"""
    return StoreError(f"key migration: a key kept changing during {_ATTEMPTS} attempts")


def _raw(value: Any) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

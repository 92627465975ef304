"""A worklist entry read and changed by hand, one atomic script call per change
(``lua/entry_edit.lua``): an attribute edited (the entry's DICOM JSON and its index
memberships, as the apply script writes them), its SPS status set (with the ended steps'
set, as MPPS does, and its event for the RIS queued: ``broker.store.outbound``), or the
entry removed (as the retention purge removes one). Each
change names the revision it was made on (``broker.worklist.edits.revision``) and is
refused when the entry changed in between. The decoded-entry cache needs nothing: it
keys its entries by the stored bytes (``broker.store.entry_cache``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis

from broker.common import jsontext
from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.errors import store_error
from broker.store import scripts
from broker.store.apply_script import index_refs
from broker.store.keys import KeySchema
from broker.store.outbound import NO_ROUTES, OutboundRoutes, parked_at_bound
from broker.store.scripts import KeyList, ScriptRunner
from broker.store.worklist import version_number
from broker.worklist.edits import EntryChanged, UnknownEntry, revision

__all__ = ["EntryEdits", "StoredEntry"]

_EDIT = scripts.load("entry_edit")


@dataclass(frozen=True, repr=False)
class StoredEntry:
    """An entry as stored: its DICOM JSON (bytes), SPS status, order key and revision. Its
    repr shows the revision only (the rest is patient data)."""

    entry_id: str
    ds: bytes
    status: str
    order_key: str
    revision: str
    mapping_version: int | None = None  # the mapping version that made it (None: unknown)

    def __repr__(self) -> str:
        return f"StoredEntry({self.entry_id!r}, revision={self.revision!r})"

    def document(self) -> dict[str, Any]:
        """Its DICOM JSON, decoded (a new dict each call)."""
        data: dict[str, Any] = jsontext.loads(self.ds)
        return data


class EntryEdits:
    """Reads and hand changes of single worklist entries."""

    def __init__(self, client: redis.Redis, keys: KeySchema, runner: ScriptRunner, *,
                 clock: Clock = SYSTEM_CLOCK, outbound: OutboundRoutes = NO_ROUTES,
                 ) -> None:  # fmt: skip
        self._outbound = outbound
        self._redis = client
        self._keys = keys
        self._scripts = runner
        self._clock = clock

    def __repr__(self) -> str:
        return f"EntryEdits(prefix={self._keys.prefix!r})"

    def read(self, entry_id: str) -> StoredEntry:
        """The entry ``entry_id`` (``UnknownEntry`` if there is none)."""
        try:
            row = self._redis.hmget(self._keys.entry(entry_id), "ds", "status", "order", "mver")
        except redis.RedisError as e:
            raise store_error(e) from e
        ds, status, order, mver = (cast(bytes | None, v) for v in row)
        if ds is None:
            raise UnknownEntry(entry_id)
        return StoredEntry(
            entry_id, ds, _text(status or b""), _text(order or b""), revision(ds, status),
            version_number(mver),
        )  # fmt: skip

    def replace(self, entry: StoredEntry, document: dict[str, Any]) -> str:
        """Store ``document`` as the entry's DICOM JSON, with its index memberships; its new
        revision."""
        call = self._call(entry)
        refs = index_refs(self._keys, document)
        body = self._body("edit", entry, call)
        body["idx"] = [[ref[0], call.add(ref[1]), *ref[2:]] for ref in refs]
        body["idx_json"] = jsontext.dumps(refs)
        return self._run(call, body, jsontext.dumps(document))

    def set_status(self, entry: StoredEntry, status: str) -> str:
        """Give the entry SPS status ``status``; its new revision."""
        call = self._call(entry)
        body = self._body("status", entry, call)
        body["status"] = status
        body["now"] = self._clock.now()
        if out := self._outbound.payload(self._keys, call, "edit", body["now"]):
            body["out"] = out
        return self._run(call, body)

    def delete(self, entry: StoredEntry) -> None:
        """Take the entry off the worklist (and out of its order)."""
        call = self._call(entry)
        self._run(call, self._body("delete", entry, call))

    def _call(self, entry: StoredEntry) -> KeyList:
        k = self._keys
        return KeyList(
            k.entry(entry.entry_id), k.all_entries(), k.entries_ended(), k.order_status(),
            k.order_time(),
        )  # fmt: skip

    def _body(self, op: str, entry: StoredEntry, call: KeyList) -> dict[str, Any]:
        body: dict[str, Any] = {"op": op, "id": entry.entry_id, "expect": entry.revision}
        body["order_set"], body["order_field"] = 0, ""
        if entry.order_key:
            order_set, field = self._keys.order_and_field(entry.order_key)
            body["order_set"], body["order_field"] = call.add(order_set), field
        return body

    def _run(self, call: KeyList, body: dict[str, Any], *documents: str) -> str:
        reply = self._scripts.run(_EDIT, call.names, (jsontext.dumps(body), *documents))
        tag = _text(reply[0])
        if tag == "missing":
            raise UnknownEntry(str(body["id"]))
        if tag == "retry":
            raise EntryChanged("the entry changed since it was read; read it again")
        if len(reply) > 2:
            parked_at_bound(reply[2])
        return _text(reply[1])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

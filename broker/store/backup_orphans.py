"""States without a record, named by value where the Redis still knows the value.

``order-status`` and ``order-time`` keep a state for an order that has no entry (a
cancel that arrived before its order: the late order must change nothing), and
``patient-time`` one for a patient without a record (the MSH-7 of a Patient ID
merged away). Their fields are pseudonyms; a backup that stored only those could
restore them only under the same ``redis_key_secret``. So a backup
(``broker.store.backup_read``) names them where it can: an order by the order keys
of the message log's records, a patient by the old Patient IDs of the aliases.
What stays unnamed is written as a ``field`` record (pseudonym and value).

They are held in memory while the backup runs: one per order canceled before it
arrived, or per patient merged away, of the site's history (a few bytes each).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis

from broker.common import jsontext
from broker.store.keys import KeySchema

__all__ = ["Orphans"]

_PAGE = 500
_ORDER_HASHES = {"order-status": "status", "order-time": "time"}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Orphans:
    """The states without a record of one Redis (see the module docstring)."""

    def __init__(self, client: redis.Redis, keys: KeySchema) -> None:
        self._redis = client
        self._keys = keys
        self.orders: dict[str, dict[str, str]] = {}  # field -> {"status": …, "time": …}
        self.patients: dict[str, str] = {}  # field -> MSH-7

    def __repr__(self) -> str:
        return f"Orphans(orders={len(self.orders)}, patients={len(self.patients)})"

    def find(self) -> None:
        """Read the three hashes, a page at a time, keeping the fields with no owner."""
        k = self._keys
        for hash_key, name, owner in (
            (k.order_status(), "order-status", f"{k.prefix}:order="),
            (k.order_time(), "order-time", f"{k.prefix}:order="),
            (k.patient_time(), "patient-time", f"{k.prefix}:patient="),
        ):
            page: list[tuple[str, str]] = []
            for raw_field, value in self._redis.hscan_iter(hash_key, count=_PAGE):
                page.append((_text(raw_field), _text(value)))
                if len(page) >= _PAGE:
                    self._keep(name, owner, page)
                    page = []
            self._keep(name, owner, page)

    def _keep(self, name: str, owner: str, page: list[tuple[str, str]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for field, _ in page:
            pipe.exists(owner + field)
        for (field, value), found in zip(page, pipe.execute(), strict=True):
            if found:
                continue
            if name == "patient-time":
                self.patients[field] = value
            else:
                self.orders.setdefault(field, {})[_ORDER_HASHES[name]] = value

    def named_orders(self) -> Iterator[dict[str, Any]]:
        """``order`` records (no entries) for the orphan orders the message log names."""
        if not self.orders:
            return
        start = self._keys.message_prefix()
        page: list[bytes] = []
        for name in self._redis.scan_iter(match=f"{start}*", count=_PAGE):
            page.append(name)
            if len(page) >= _PAGE:
                yield from self._named(page)
                page = []
        yield from self._named(page)

    def _named(self, names: list[bytes]) -> Iterator[dict[str, Any]]:
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.hget(name, "order_keys")
        for raw in pipe.execute():
            for order_key in jsontext.loads(raw) if raw else ():
                state = self.orders.pop(self._keys.order_field(str(order_key)), None)
                if state is not None:
                    yield {"kind": "order", "order_key": str(order_key),
                           "status": state.get("status"), "time": state.get("time"),
                           "entries": []}  # fmt: skip

    def named_patient(self, patient_id: str) -> dict[str, Any] | None:
        """A ``patient`` record (time only) if ``patient_id`` is an orphan patient."""
        sent = self.patients.pop(self._keys.patient_field(patient_id), None)
        if sent is None:
            return None
        return {"kind": "patient", "patient_id": patient_id, "ds": None, "time": sent}

    def fields(self) -> Iterator[dict[str, Any]]:
        """``field`` records for what stayed unnamed."""
        for field, state in self.orders.items():
            for name, part in _ORDER_HASHES.items():
                if part in state:
                    yield {"kind": "field", "hash": name, "field": field, "value": state[part]}
        for field, sent in self.patients.items():
            yield {"kind": "field", "hash": "patient-time", "field": field, "value": sent}

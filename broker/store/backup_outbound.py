"""The outbound status queues in a backup: each destination's waiting events (in queue
order) and parked ones (dead letters, by id), and the event counter.

Records (``broker.store.backup_read`` says what the others hold)::

    outbound        destination, event id, state (queued or parked), the order key and
                    step number of its entry (entry ids and the order's pseudonym are
                    computed again on restore, so another ``redis_key_secret`` works),
                    and its fields: status, source, at, ds, control, reason, err,
                    attempts, msg (the message built once: a resend after the restore
                    is the same bytes with the same MSH-10), cid
    outbound-state  the event counter (``{p}:out:seq``)

Restored (:func:`write_outbound`) with the same ids, in the same order: the waiting ones
pushed in queue order, the parked ones with their order's hold count, so the senders
of the restored broker deliver them as the old one would have. The lease is not kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import redis

from broker.store.keys import KeySchema

__all__ = ["EVENT_FIELDS", "read_outbound", "write_outbound"]

EVENT_FIELDS = ("status", "source", "at", "ds", "control", "reason", "err", "attempts",
                "msg", "cid")  # fmt: skip
_BATCH = 500

Record = dict[str, Any]
StepOf = Callable[[str, str], "int | None"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _destinations(client: redis.Redis, keys: KeySchema) -> list[str]:
    start = keys.outbound_prefix()
    found: set[str] = set()
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in start) + "*"
    for raw in client.scan_iter(match=pattern, count=1000):
        name, _, part = _text(raw)[len(start) :].partition(":")
        if part in ("queue", "dead"):
            found.add(name)
    return sorted(found)


def read_outbound(client: redis.Redis, keys: KeySchema, step_of: StepOf) -> Iterator[Record]:
    """Every destination's events as records, waiting ones in queue order, then parked
    ones; then the counter. ``step_of(order key, entry id)``: the entry's step number."""
    for destination in _destinations(client, keys):
        queued = [_text(i) for i in client.lrange(keys.outbound(destination, "queue"), 0, -1)]
        parked = [_text(i) for i in client.zrange(keys.outbound(destination, "dead"), 0, -1)]
        for state, ids in (("queued", queued), ("parked", parked)):
            for start in range(0, len(ids), _BATCH):
                yield from _events(client, keys, destination, state, ids[start : start + _BATCH],
                                   step_of)  # fmt: skip
    seq = client.get(f"{keys.outbound_prefix()}seq")
    if seq is not None:
        yield {"kind": "outbound-state", "seq": int(seq)}


def _events(client: redis.Redis, keys: KeySchema, destination: str, state: str,
            ids: list[str], step_of: StepOf) -> Iterator[Record]:  # fmt: skip
    pipe = client.pipeline(transaction=False)
    for event_id in ids:
        pipe.hmget(keys.outbound(destination, f"ev:{event_id}"), "order", "entry", *EVENT_FIELDS)
    for event_id, row in zip(ids, pipe.execute(), strict=True):
        if row[0] is None and row[1] is None:
            continue  # delivered since the list was read
        order, entry = _text(row[0] or ""), _text(row[1] or "")
        step = step_of(order, entry) if order else None
        fields = {name: _text(v) for name, v in zip(EVENT_FIELDS, row[2:], strict=True)
                  if v is not None}  # fmt: skip
        yield {"kind": "outbound", "destination": destination, "id": int(event_id),
               "state": state, "order_key": order, "step": step,
               "entry": entry if step is None else None, "fields": fields}  # fmt: skip


def write_outbound(pipe: Any, keys: KeySchema, record: Record) -> None:
    """Queue one ``outbound`` or ``outbound-state`` record's writes on ``pipe``."""
    if record["kind"] == "outbound-state":
        pipe.set(f"{keys.outbound_prefix()}seq", int(record["seq"]))
        return
    destination, event_id = str(record["destination"]), int(record["id"])
    order_key, step = str(record["order_key"] or ""), record["step"]
    if order_key and step is not None:
        entry = keys.entry_id(order_key, int(step))
        hold = keys.order_field(order_key)
    else:
        entry = str(record.get("entry") or "")
        hold = f"entry:{entry}"
    parked = record["state"] == "parked"
    values = {**{k: str(v) for k, v in dict(record["fields"]).items() if k in EVENT_FIELDS},
              "id": str(event_id), "order": order_key, "entry": entry, "hold": hold,
              "state": "parked" if parked else "queued"}  # fmt: skip
    pipe.hset(keys.outbound(destination, f"ev:{event_id}"), mapping=values)
    if parked:
        pipe.zadd(keys.outbound(destination, "dead"), {str(event_id): event_id})
        pipe.hincrby(keys.outbound(destination, "held"), hold, 1)
    else:
        pipe.rpush(keys.outbound(destination, "queue"), str(event_id))

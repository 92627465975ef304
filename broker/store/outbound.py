"""The outbound status queue in Redis: events for the RIS, per destination, durable.

An event is written by the script that changes a step's status (MPPS N-CREATE /
N-SET, ``lua/lib/mpps.lua``; a hand change, ``lua/entry_edit.lua``) through
``lua/lib/outbound.lua``, in the same atomic call: a status change without its event
(or the reverse) cannot be seen, even if the broker dies between the two. Which
destination: the entry's ``origin`` (the ``[hl7_senders.<name>]`` its order came
from, recorded at intake by the apply script) and that sender's ``destination``
(:class:`OutboundRoutes`); an entry without one queues nothing.

Per destination (``broker.store.keys``): a list of event ids (the queue, oldest
first), the parked events (dead letters), and per order how many are parked.
Order per order: the sender delivers the queue's head only; when an event is parked
(the receiver answered AE/CE), the later events of its order are parked behind it,
already queued or new, until ``retry`` puts them all back, each at its place in the
queue by event id (ids come from one counter: the queue stays in the order the events
were made, so an event parked "queue full" goes out after its order's older waiting ones).
At the bound (``max_queued``) a new event is parked with the reason "queue full", never dropped.

Only the process holding a destination's lease (``{p}:out:<dest>:lease``, a token
with a time to live, renewed while it works) sends to it; ``done``, ``park`` and
``note`` do nothing for a process that lost it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import redis

from broker.common import jsontext
from broker.errors import store_error
from broker.store import scripts
from broker.store.keys import KeySchema
from broker.store.scripts import KeyList, ScriptRunner

__all__ = ["NO_ROUTES", "OutboundEvent", "OutboundQueue", "OutboundRoutes", "parked_at_bound"]

log = logging.getLogger(__name__)

_DONE = scripts.load("outbound_done")
_NOTE = scripts.load("outbound_note")
_PARK = scripts.load("outbound_park")
_RETRY = scripts.load("outbound_retry")
_RETRY_ALL = scripts.load("outbound_retry_all")
_DISCARD = scripts.load("outbound_discard")
_RENEW = scripts.load("lock_renew")
_RELEASE = scripts.load("lock_release")
_FIELDS = ("id", "order", "entry", "status", "source", "at", "ds", "control", "state",
           "reason", "err", "attempts", "msg", "cid")  # fmt: skip


@dataclass(frozen=True)
class OutboundRoutes:
    """Which destination an entry's status goes to: sender name -> destination, and each
    destination's queue bound. Empty: nothing is queued."""

    routes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    bounds: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def payload(self, keys: KeySchema, call: KeyList, source: str, now: float) -> dict[str, Any]:
        """The scripts' ``out`` (``lua/lib/outbound.lua``); {} when nothing is routed."""
        if not self.routes:
            return {}
        return {
            "prefix": call.add(keys.outbound_prefix()),
            "routes": dict(self.routes),
            "max": dict(self.bounds),
            "nonce": secrets.token_hex(3).upper(),  # control id: nonce + event id
            "now": round(now, 3),
            "source": source,
        }


NO_ROUTES = OutboundRoutes()


@dataclass(frozen=True, repr=False)
class OutboundEvent:
    """One queued or parked event. Its ``ds`` (the entry's DICOM JSON when the status
    changed) and ``msg`` hold patient data: the repr shows neither."""

    id: str
    order: str
    entry: str
    status: str
    source: str
    at: float
    ds: str
    control: str
    state: str
    reason: str
    err: str
    attempts: int
    msg: str
    cid: str = ""  # the correlation ID of the order's message (a pseudonym, no patient data)

    def __repr__(self) -> str:
        return f"OutboundEvent({self.id!r}, {self.state}, {self.status}, control={self.control!r})"


class OutboundQueue:
    """One destination's queue, parked events and lease."""

    def __init__(self, client: redis.Redis, keys: KeySchema, runner: ScriptRunner,
                 destination: str) -> None:  # fmt: skip
        self._redis = client
        self._keys = keys
        self._scripts = runner
        self.destination = destination
        self._base = keys.outbound(destination, "")
        self._lease = keys.outbound(destination, "lease")

    def __repr__(self) -> str:
        return f"OutboundQueue({self.destination!r})"

    # -- reads ----------------------------------------------------------------

    def queued(self, limit: int = -1) -> list[str]:
        """Ids of the waiting events, oldest first."""
        last = limit - 1 if limit > 0 else -1
        return [_text(v) for v in self._call(self._redis.lrange, self._base + "queue", 0, last)]

    def parked(self) -> list[str]:
        """Ids of the parked events, oldest first."""
        return [_text(v) for v in self._call(self._redis.zrange, self._base + "dead", 0, -1)]

    def page(self, state: str, offset: int, limit: int) -> list[str]:
        """Ids of the waiting (``state`` "queued") or parked events from position ``offset``
        on, at most ``limit`` of them, oldest first."""
        last = offset + limit - 1
        if state == "queued":
            found = self._call(self._redis.lrange, self._base + "queue", offset, last)
        else:
            found = self._call(self._redis.zrange, self._base + "dead", offset, last)
        return [_text(v) for v in found]

    def newest_parked(self) -> str | None:
        found = self._call(self._redis.zrange, self._base + "dead", -1, -1)
        return _text(found[0]) if found else None

    def lease_state(self) -> tuple[str | None, int]:
        """Who holds the lease (its token) and for how many more milliseconds; (None, 0)
        when nobody does."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self._lease)
        pipe.pttl(self._lease)
        token, ttl = self._call(pipe.execute)
        return (None, 0) if token is None else (_text(token), max(0, int(ttl)))

    def counts(self) -> tuple[int, int]:
        """How many events wait and how many are parked."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.llen(self._base + "queue")
        pipe.zcard(self._base + "dead")
        waiting, parked = self._call(pipe.execute)
        return int(waiting), int(parked)

    def depth(self) -> tuple[int, int, float | None]:
        """Events waiting, events parked and the time of the oldest waiting one (None when
        none waits): four O(1) reads, whatever the queue holds (the metrics' scrape)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.llen(self._base + "queue")
        pipe.zcard(self._base + "dead")
        pipe.lindex(self._base + "queue", 0)
        waiting, parked, head = self._call(pipe.execute)
        at = None
        if head is not None:
            value = self._call(self._redis.hget, self._base + f"ev:{_text(head)}", "at")
            at = float(_text(value)) if value is not None else None
        return int(waiting), int(parked), at

    def head(self) -> str | None:
        value = self._call(self._redis.lindex, self._base + "queue", 0)
        return None if value is None else _text(value)

    def event(self, event_id: str) -> OutboundEvent | None:
        row = self._call(self._redis.hmget, self._base + f"ev:{event_id}", *_FIELDS)
        if row[0] is None:
            return None
        v = dict(zip(_FIELDS, (_text(x) if x is not None else "" for x in row), strict=True))
        at, attempts = float(v.pop("at") or 0), int(v.pop("attempts") or 0)
        return OutboundEvent(at=at, attempts=attempts, **v)

    # -- the lease ------------------------------------------------------------

    def acquire(self, token: str, ttl_ms: int) -> bool:
        """Take the lease if nobody holds it (or keep it if ``token`` does)."""
        if self._call(self._redis.set, self._lease, token, nx=True, px=ttl_ms):
            return True
        return self.renew(token, ttl_ms)

    def renew(self, token: str, ttl_ms: int) -> bool:
        return bool(self._scripts.run(_RENEW, [self._lease], [token, ttl_ms]))

    def release(self, token: str) -> None:
        self._scripts.run(_RELEASE, [self._lease], [token])

    def break_lease(self) -> bool:
        """Drop the lease whoever holds it; whether one was held. Only for a process that
        knows no other one can send: a broker on its embedded Redis (its data directory's
        lock), whose previous run died holding the lease and would block sending until
        it expired."""
        return bool(self._call(self._redis.delete, self._lease))

    # -- changes (each only while ``token`` holds the lease) -------------------

    def note(self, token: str, event_id: str, fields: Mapping[str, str], *,
             attempt: bool = False) -> int | None:  # fmt: skip
        """Write ``fields`` of the event (and count an attempt); its attempts, None when
        the lease or the event is gone."""
        pairs = [x for kv in fields.items() for x in kv]
        key = self._base + f"ev:{event_id}"
        reply = self._scripts.run(_NOTE, [self._lease, key], [token, int(attempt), *pairs])
        return int(reply[1]) if _text(reply[0]) == "ok" else None

    def done(self, token: str, event_id: str) -> bool:
        """Take the acknowledged event off the queue; False when the lease is lost."""
        key = self._base + f"ev:{event_id}"
        reply = self._scripts.run(
            _DONE, [self._lease, self._base + "queue", key], [token, event_id]
        )
        return _text(reply[0]) == "ok"

    def park(self, token: str, event_id: str, reason: str, error: str) -> int | None:
        """Park the event with ``error``; how many later events of its order were parked
        behind it (None: the lease or the event is gone)."""
        reply = self._scripts.run(
            _PARK, [self._lease, self._base], [token, event_id, reason, error]
        )
        return int(reply[1]) if _text(reply[0]) == "ok" else None

    def retry(self, event_id: str) -> tuple[str, list[str]]:
        """Queue a parked event again with its order's other parked events, merged by id:
        ("ok", ids), ("missing", []) or ("queued", []) when it is not parked."""
        reply = self._scripts.run(_RETRY, [self._base], [event_id])
        tag = _text(reply[0])
        ids: list[str] = jsontext.loads(reply[1]) if tag == "ok" else []
        return tag, ids

    def retry_all(self) -> int:
        """Queue every parked event again, merged into the queue by id; how many."""
        return int(self._scripts.run(_RETRY_ALL, [self._base], []))

    def discard(self, event_id: str) -> tuple[str, list[str]]:
        """Drop a parked event for good: ("ok", the ids of its order's events still
        parked), ("missing", []) or ("queued", []) when it is not parked."""
        reply = self._scripts.run(_DISCARD, [self._base], [event_id])
        tag = _text(reply[0])
        ids: list[str] = jsontext.loads(reply[1]) if tag == "ok" else []
        return tag, ids

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as e:
            raise store_error(e) from e


def parked_at_bound(count: Any) -> None:
    """Log (no patient data) the events a status change parked because a queue was full."""
    if int(count or 0):
        log.warning(
            "outbound queue full: %d status event(s) parked (mwl-broker outbound list)", int(count)
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

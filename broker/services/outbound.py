"""The outbound status queue for the faces: list, show and retry events per destination.

What is queued and how it is delivered is ``broker.store.outbound`` and
``broker.services.outbound_sender``. A list shows an event's id, state, status, when
and why, never patient data; ``show`` gives the message text only when asked for
(``with_message``), as ``messages show`` does with a received message. A retry puts a
parked event back in its destination's queue with the other parked events of its
order, each at its place by event id (an order's events go out in the order they were
made, even one parked at the bound behind a waiting one), and is audited with the user
and the event id;
``retry_all`` does it for every parked event of a destination (a receiver was fixed).
A discard drops a parked event for good (audited with the user's reason): the other
parked events of its order stay parked, and the answer names them, so nothing the RIS
should get is sent or dropped behind the operator's back; once none is left, the
order's new events are queued again. Showing an event's message text is audited too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from broker.audit.events import AuditEvent, AuditType
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.errors import BrokerError
from broker.hl7.destinations import Destination
from broker.store.outbound import OutboundEvent, OutboundQueue

__all__ = [
    "STATES",
    "DestinationQueue",
    "DestinationSummary",
    "EventPage",
    "NotParked",
    "OutboundService",
    "UnknownOutbound",
]

STATES = ("queued", "parked")
_LAST_LOOK = 20  # newest parked events looked at for the last error (held ones skipped)


class UnknownOutbound(BrokerError):
    """No such destination, or no such event in it."""


class NotParked(BrokerError):
    """The event is queued (waiting to be sent), not parked: nothing to retry or discard."""


@dataclass(frozen=True)
class DestinationSummary:
    """One destination at a glance: counts, the oldest waiting event's age, who holds the
    lease, and the last error (a reason of ours or the receiver's ACK text, no event data).
    ``lease_holder`` is "host:pid" of the sending broker, None when nobody sends."""

    destination: str
    waiting: int
    parked: int
    oldest_age: float | None
    lease_holder: str | None
    lease_seconds: float
    last_error: str | None


@dataclass(frozen=True)
class EventPage:
    """A page of one destination's waiting or parked events, and how many there are."""

    items: tuple[OutboundEvent, ...]
    total: int


@dataclass(frozen=True)
class DestinationQueue:
    """One destination's waiting and parked events (no message text, no ds)."""

    destination: str
    queued: tuple[OutboundEvent, ...]
    parked: tuple[OutboundEvent, ...]


class OutboundService:
    """Reads and retries of the outbound queues of the configured destinations."""

    def __init__(
        self,
        queues: Mapping[str, OutboundQueue],
        destinations: Mapping[str, Destination],
        audit: AuditSink = NO_AUDIT,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._queues = dict(queues)
        self._destinations = dict(destinations)
        self._audit = audit
        self._clock = clock

    def __repr__(self) -> str:
        return f"OutboundService({sorted(self._queues)})"

    def destinations(self) -> list[str]:
        return sorted(self._queues)

    def queue(self, destination: str, limit: int = 100) -> DestinationQueue:
        """Up to ``limit`` waiting events (oldest first) and every parked one."""
        q = self._queue(destination)
        queued = (q.event(i) for i in q.queued(limit))
        parked = (q.event(i) for i in q.parked())
        return DestinationQueue(
            destination,
            tuple(e for e in queued if e is not None),
            tuple(e for e in parked if e is not None),
        )

    def counts(self, destination: str) -> tuple[int, int]:
        """How many events wait and how many are parked."""
        return self._queue(destination).counts()

    def summary(self, destination: str) -> DestinationSummary:
        q = self._queue(destination)
        waiting, parked = q.counts()
        head_id = q.head()
        head = q.event(head_id) if head_id is not None else None
        holder, ttl_ms = q.lease_state()
        last = head.reason if head is not None and head.reason else None
        if last is None and parked:
            last = self._last_parked_reason(q)
        return DestinationSummary(
            destination=destination,
            waiting=waiting,
            parked=parked,
            oldest_age=None if head is None else max(0.0, self._clock.now() - head.at),
            lease_holder=None if holder is None else holder.rsplit(":", 1)[0],
            lease_seconds=ttl_ms / 1000,
            last_error=last,
        )

    def page(self, destination: str, state: str, offset: int = 0, limit: int = 100) -> EventPage:
        """Waiting (``state`` "queued") or parked events from ``offset`` on, oldest first."""
        if state not in STATES:
            raise BrokerError(f"state: one of {', '.join(STATES)}")
        q = self._queue(destination)
        waiting, parked = q.counts()
        found = (q.event(i) for i in q.page(state, offset, limit))
        items = tuple(e for e in found if e is not None)
        return EventPage(items, waiting if state == "queued" else parked)

    def message(self, destination: str, event_id: str, *, by: str = "") -> str:
        """The event's HL7 text ("" until it is first built): patient data, so audited."""
        event = self.show(destination, event_id)
        details = {"destination": destination, "built": bool(event.msg)}
        self._audit.record(
            AuditEvent(AuditType.OUTBOUND_READ, user=by, target=event_id, details=details)
        )
        return event.msg

    def show(self, destination: str, event_id: str) -> OutboundEvent:
        event = self._queue(destination).event(event_id)
        if event is None:
            raise UnknownOutbound(f"no event {event_id} for destination {destination}")
        return event

    def retry(self, destination: str, event_id: str, *, by: str = "") -> list[str]:
        """Queue a parked event again (with its order's parked events); their ids."""
        tag, ids = self._queue(destination).retry(event_id)
        if tag == "missing":
            raise UnknownOutbound(f"no event {event_id} for destination {destination}")
        if tag != "ok":
            raise NotParked(f"event {event_id} is not parked: it is queued already")
        details = {"destination": destination, "events": ids}
        self._audit.record(
            AuditEvent(AuditType.OUTBOUND_RETRY, user=by, target=event_id, details=details)
        )
        return ids

    def retry_all(self, destination: str, *, by: str = "") -> int:
        """Queue every parked event of ``destination`` again, in their order; how many."""
        count = self._queue(destination).retry_all()
        details = {"destination": destination, "count": count}
        self._audit.record(
            AuditEvent(AuditType.OUTBOUND_RETRY, user=by, target="all", details=details)
        )
        return count

    def discard(self, destination: str, event_id: str, *, reason: str, by: str = "") -> list[str]:
        """Drop a parked event for good (audited with ``reason``); the ids of the events
        of its order still parked (they stay parked until retried or discarded)."""
        if not reason.strip():
            raise BrokerError("reason: say why the event is discarded")
        tag, left = self._queue(destination).discard(event_id)
        if tag == "missing":
            raise UnknownOutbound(f"no event {event_id} for destination {destination}")
        if tag != "ok":
            raise NotParked(f"event {event_id} is not parked: only a parked event is discarded")
        details = {"destination": destination, "still_parked": len(left)}
        event = AuditEvent(
            AuditType.OUTBOUND_DISCARD, user=by, target=event_id, reason=reason.strip(),
            details=details,
        )  # fmt: skip
        self._audit.record(event)
        return left

    def _last_parked_reason(self, q: OutboundQueue) -> str | None:
        """The newest parked event's reason that is not "held" behind another."""
        ids = q.page("parked", max(0, q.counts()[1] - _LAST_LOOK), _LAST_LOOK)
        for event in (q.event(i) for i in reversed(ids)):
            if event is not None and event.reason and not event.reason.startswith("held"):
                return event.reason
        return None

    def _queue(self, destination: str) -> OutboundQueue:
        q = self._queues.get(destination)
        if q is None:
            known = ", ".join(sorted(self._queues)) or "none is configured"
            raise UnknownOutbound(f"no destination {destination!r} ([hl7_destinations]: {known})")
        return q

"""The outbound status queue for the faces: list, show and retry events per destination.

What is queued and how it is delivered is ``broker.store.outbound`` and
``broker.services.outbound_sender``. A list shows an event's id, state, status, when
and why, never patient data; ``show`` gives the message text only when asked for
(``with_message``), as ``messages show`` does with a received message. A retry puts a
parked event back at the head of its destination's queue with the other parked
events of its order, in their order, and is audited with the user and the event id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from broker.audit.events import AuditEvent, AuditType
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.errors import BrokerError
from broker.hl7.destinations import Destination
from broker.store.outbound import OutboundEvent, OutboundQueue

__all__ = ["DestinationQueue", "OutboundService", "UnknownOutbound"]


class UnknownOutbound(BrokerError):
    """No such destination, or no such event in it."""


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
    ) -> None:
        self._queues = dict(queues)
        self._destinations = dict(destinations)
        self._audit = audit

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
            raise BrokerError(f"event {event_id} is not parked: it is queued already")
        details = {"destination": destination, "events": ids}
        self._audit.record(
            AuditEvent(AuditType.OUTBOUND_RETRY, user=by, target=event_id, details=details)
        )
        return ids

    def _queue(self, destination: str) -> OutboundQueue:
        q = self._queues.get(destination)
        if q is None:
            known = ", ".join(sorted(self._queues)) or "none is configured"
            raise UnknownOutbound(f"no destination {destination!r} ([hl7_destinations]: {known})")
        return q

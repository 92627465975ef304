"""The sender task: one destination's queued status events delivered over MLLP.

``serve`` runs one :class:`OutboundSender` per ``[hl7_destinations.<name>]``, each in
its own thread. A turn (:meth:`~OutboundSender.step`):

1. the destination's lease (``broker.store.outbound``): only its holder sends, so two
   broker processes on one Redis never send to a destination at once; a holder that
   dies stops renewing it and another process takes over once it expires (a broker on
   its embedded Redis drops the lease of its own dead run at start: ``broker.app``);
2. the queue's head: its message is built once from the event and the outbound
   mapping of the live mapping set (``broker.mapping.outbound_build``) and stored with
   the event, so every attempt sends the same bytes with the same MSH-10;
3. sent, and its ACK read (HL7 v2.5.1 §2.9, original mode):

   ========================  ==========================================================
   AA, CA                    done: off the queue, the next event is sent
   AE, CE                    parked (dead letter) with the ERR text, and the later events
                             of its order parked behind it; other orders go on
   AR, CR, no ACK in time,   the same message again after a backoff (``retry_first``
   no connection, garbage    doubled up to ``retry_max``); nothing behind it is sent
   ========================  ==========================================================

A status without a row in the outbound mapping (or a set without an outbound
mapping) parks its event with that reason. Stopping: the current exchange ends (it
is bounded by the timeouts), the lease is given up, and what is queued stays queued
for the next process. Logs name the destination and the event id, never patient data;
their correlation ID is the one of the order's message (kept with the event). Each
exchange is counted by outcome, and each delivery's time from the status change, in
``broker.common.outbound_metrics``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from broker.common import correlation, jsontext
from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.common.outbound_metrics import OutboundMetrics
from broker.errors import BrokerError
from broker.hl7.ack_summary import summarize_ack
from broker.hl7.destinations import Destination
from broker.mapping.outbound_build import StatusEvent, UnmappedStatus, build_status_message
from broker.mapping.outbound_spec import OutboundSpec
from broker.store.outbound import OutboundEvent, OutboundQueue

__all__ = ["Connect", "OutboundSender", "SenderThreads", "Transport"]

log = logging.getLogger(__name__)

_IDLE = 0.2  # seconds between looks at an empty queue
_REJECTED = frozenset({"AE", "CE"})


class Transport(Protocol):
    """A connection to a destination: one message out, its ACK back."""

    def send(self, message: bytes) -> bytes: ...

    def close(self) -> None: ...


Connect = Callable[[Destination], Transport]


class OutboundSender:
    """Delivers one destination's queue; :meth:`run` in a thread, :meth:`stop` from another."""

    def __init__(
        self,
        queue: OutboundQueue,
        destination: Destination,
        mapping: Callable[[], OutboundSpec | None],
        connect: Connect,
        *,
        application: str,
        facility: str = "",
        metrics: OutboundMetrics | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._queue = queue
        self._d = destination
        self._mapping = mapping
        self._connect = connect
        self._identity = (application, facility)
        self._metrics = metrics
        self._clock = clock
        # the lease's token names its holder (host and process: ``outbound`` shows it)
        self._token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"
        self._ttl_ms = int(
            1000 * max(10.0, 3 * (destination.connect_timeout + destination.ack_timeout))
        )
        self._stopping = threading.Event()
        self._link: Transport | None = None

    def __repr__(self) -> str:
        return f"OutboundSender({self._d.name!r})"

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        """Turns until :meth:`stop`; a store failure waits ``retry_first`` and goes on."""
        try:
            while not self._stopping.is_set():
                try:
                    wait = self.step()
                except BrokerError as e:
                    log.warning("outbound %s: %s; trying again", self._d.name, e)
                    self._disconnect()
                    wait = self._d.retry_first
                if wait > 0:
                    self._stopping.wait(wait)
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection and give up the lease (else it expires by itself)."""
        self._disconnect()
        with contextlib.suppress(BrokerError):
            self._queue.release(self._token)

    def step(self) -> float:
        """One turn; the seconds to wait before the next."""
        if not self._queue.acquire(self._token, self._ttl_ms):
            self._disconnect()
            return self._ttl_ms / 3000
        head = self._queue.head()
        if head is None:
            return _IDLE
        event = self._queue.event(head)
        if event is None:  # an id without its event (cannot happen by the scripts): drop it
            self._queue.done(self._token, head)
            return 0.0
        message = event.msg or self._build(event)
        if message is None:
            return 0.0
        return self._deliver(event, message)

    def _build(self, event: OutboundEvent) -> str | None:
        spec = self._mapping()
        try:
            if spec is None:
                raise UnmappedStatus("the mapping set has no outbound mapping (kind: outbound)")
            status = StatusEvent(jsontext.loads(event.ds or "{}"), event.status, event.control,
                                 event.at, event.entry)  # fmt: skip
            app, facility = self._identity
            text = build_status_message(spec, status, application=app, facility=facility)
        except UnmappedStatus as e:
            self._park(event, "not mapped", str(e))
            return None
        return text if self._queue.note(self._token, event.id, {"msg": text}) is not None else None

    def _deliver(self, event: OutboundEvent, message: str) -> float:
        try:
            if self._link is None:
                self._link = self._connect(self._d)
            ack = summarize_ack(self._link.send(message.encode("utf-8")))
        except (BrokerError, OSError, ValueError) as e:
            self._disconnect()
            outcome = _failure(e)
            detail = str(e) if outcome != "invalid_ack" else ""
            return self._failed(event, f"no usable ACK: {e}", outcome, detail)
        if ack.control_id and ack.control_id != event.control:
            self._disconnect()
            why = f"an ACK for another message (MSA-2 {ack.control_id})"
            return self._failed(event, why, "invalid_ack")
        if ack.accepted:
            self._count(ack.code)
            self._queue.done(self._token, event.id)
            self._delivered(event, ack.code)
            return 0.0
        if ack.code in _REJECTED:
            self._count(ack.code)
            self._park(
                event, f"{ack.code}: the receiver rejected it", "; ".join(ack.errors) or ack.text
            )
            return 0.0
        why = f"{ack.code or 'no MSA-1'}: {ack.text}".strip()
        return self._failed(event, why, ack.code or "invalid_ack")

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.attempt(self._d.name, outcome)

    def _delivered(self, event: OutboundEvent, code: str) -> None:
        """The delivery's latency counted and logged, with the order's correlation ID."""
        if self._metrics is not None:
            self._metrics.delivered(self._d.name, self._clock.now() - event.at)
        details = correlation.fields(destination=self._d.name, event=event.id, entry=event.entry,
                                     status=event.status, ack_code=code)  # fmt: skip
        correlation.using(event.cid, lambda: log.info(
            "outbound %s: event %s delivered (%s, %s)", self._d.name, event.id, event.status,
            code, extra=details))  # fmt: skip

    def _park(self, event: OutboundEvent, reason: str, error: str) -> None:
        behind = self._queue.park(self._token, event.id, reason, error)
        if behind is not None:
            log.warning(
                "outbound %s: event %s parked (%s); %d later event(s) of its order held",
                self._d.name, event.id, reason, behind,
            )  # fmt: skip

    def _failed(self, event: OutboundEvent, why: str, outcome: str, detail: str = "") -> float:
        """An attempt that did not deliver, counted by ``outcome``; ``detail``: a
        connection's error text (no patient data: the address and the cause)."""
        self._count(outcome)
        attempts = self._queue.note(self._token, event.id, {"reason": f"retrying: {why}"},
                                    attempt=True)  # fmt: skip
        if attempts is None:
            return 0.0
        wait = self._d.backoff(attempts)
        cause = detail or why.split(":", 1)[0]
        details = correlation.fields(destination=self._d.name, event=event.id,
                                     outcome=outcome, attempt=attempts)  # fmt: skip
        correlation.using(event.cid, lambda: log.warning(
            "outbound %s: event %s not delivered (attempt %d: %s); again in %g s",
            self._d.name, event.id, attempts, cause, wait, extra=details))  # fmt: skip
        return wait

    def _disconnect(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            with contextlib.suppress(OSError):
                link.close()


def _failure(error: BaseException) -> str:
    """The outcome of an exchange that raised: ``timeout`` when no answer came in time,
    ``invalid_ack`` for an answer that is no ACK, else ``connection_error``."""
    cause = error.__cause__ or error
    if isinstance(cause, TimeoutError):
        return "timeout"
    if isinstance(error, ValueError):
        return "invalid_ack"
    return "connection_error"


class SenderThreads:
    """``serve``'s senders, one thread each; :meth:`stop` ends them in order."""

    def __init__(self, senders: Sequence[OutboundSender]) -> None:
        self._senders = tuple(senders)
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"SenderThreads({len(self._senders)})"

    def start(self) -> None:
        for sender in self._senders:
            thread = threading.Thread(target=sender.run, name=repr(sender), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float) -> None:
        """Each sender ends its current exchange and gives up its lease; waits ``timeout``
        seconds at most for each."""
        for sender in self._senders:
            sender.stop()
        for thread in self._threads:
            thread.join(timeout)

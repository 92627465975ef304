"""The outbound status queues' metrics, per configured ``[hl7_destinations.<name>]``.

Counted by the senders (``broker.services.outbound_sender``) as they work:

- ``mwl_broker_outbound_attempts_total{destination, outcome}``: every exchange tried,
  by how it ended (:data:`OUTCOMES`: the ACK code, or ``timeout`` when no ACK came in
  time, ``connection_error`` when the receiver could not be reached or the link broke
  (a refused TLS handshake included), ``invalid_ack`` for an answer that is no ACK of
  the message sent);
- ``mwl_broker_outbound_delivery_seconds{destination}``: from the status change (the
  event's time, written in the same atomic step) to its AA/CA.

Read at scrape time (a collector, its reads kept :data:`STATE_TTL` seconds, so a scrape
costs at most one pipeline of three O(1) reads per destination and one ``HGET`` per
non-empty queue, whatever the queues hold): ``mwl_broker_outbound_queued``,
``mwl_broker_outbound_oldest_age_seconds`` (0 when nothing waits) and
``mwl_broker_outbound_dead_letters`` (parked events). The destination label takes the
configured names only; anything else is folded into ``other``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["OUTCOMES", "STATE_TTL", "OutboundMetrics", "QueueState"]

OUTCOMES = ("AA", "AE", "AR", "CA", "CE", "CR", "timeout", "connection_error", "invalid_ack")
STATE_TTL = 5.0  # seconds a scrape's queue reads are kept for the next scrapes
_OTHER = "other"
_DELIVERY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

QueueState = Callable[[], Mapping[str, tuple[int, int, float]]]
"""``() -> {destination: (events queued, events parked, age of the oldest queued in s)}``."""


class OutboundMetrics:
    """The outbound metrics in ``registry``; ``state`` is set by the composition root."""

    def __init__(
        self,
        registry: CollectorRegistry,
        destinations: Iterable[str] = (),
        on_error: Callable[[], None] = lambda: None,
    ) -> None:
        self._destinations = frozenset(destinations)
        self.on_error = on_error  # a failed read of the queues (the Redis errors metric)
        self.state: QueueState | None = None
        self.state_ttl = STATE_TTL
        self._attempts = Counter(
            "mwl_broker_outbound_attempts",
            "Outbound status messages sent, by destination and outcome (ACK code, timeout, "
            "connection_error, invalid_ack)",
            ["destination", "outcome"],
            registry=registry,
        )
        self._delivery = Histogram(
            "mwl_broker_outbound_delivery_seconds",
            "Time from a status change to its outbound message's AA, by destination",
            ["destination"],
            buckets=_DELIVERY_BUCKETS,
            registry=registry,
        )
        registry.register(_QueueCollector(self))

    def __repr__(self) -> str:
        return f"OutboundMetrics(destinations={len(self._destinations)})"

    def destination(self, name: str) -> str:
        return name if name in self._destinations else _OTHER

    def attempt(self, destination: str, outcome: str) -> None:
        value = outcome if outcome in OUTCOMES else "invalid_ack"
        self._attempts.labels(self.destination(destination), value).inc()

    def delivered(self, destination: str, seconds: float) -> None:
        self._delivery.labels(self.destination(destination)).observe(max(seconds, 0.0))


class _QueueCollector(Collector):
    """The queue gauges, read at scrape time and kept :data:`STATE_TTL` seconds."""

    def __init__(self, metrics: OutboundMetrics) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._cached: tuple[float, list[GaugeMetricFamily]] | None = None

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families({})

    def collect(self) -> Iterable[GaugeMetricFamily]:
        source = self._metrics.state
        if source is None:
            return []
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._metrics.state_ttl:
                return self._cached[1]
            try:
                state = source()
            except Exception:  # the store is down: the Redis metrics say so, not a 500
                self._metrics.on_error()
                return []
            families = self._families(state)
            self._cached = (now, families)
            return families

    def _families(self, state: Mapping[str, tuple[int, int, float]]) -> list[GaugeMetricFamily]:
        labels = ["destination"]
        queued = GaugeMetricFamily(
            "mwl_broker_outbound_queued", "Outbound events waiting, by destination", labels=labels
        )
        age = GaugeMetricFamily(
            "mwl_broker_outbound_oldest_age_seconds",
            "Age of the oldest outbound event waiting (0: none waits), by destination",
            labels=labels,
        )
        dead = GaugeMetricFamily(
            "mwl_broker_outbound_dead_letters",
            "Outbound events parked (AE'd, held behind one, or queue full), by destination",
            labels=labels,
        )
        for name, (waiting, parked, oldest) in sorted(state.items()):
            label = [self._metrics.destination(name)]
            queued.add_metric(label, waiting)
            age.add_metric(label, max(oldest, 0.0))
            dead.add_metric(label, parked)
        return [queued, age, dead]

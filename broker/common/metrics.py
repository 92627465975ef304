"""The broker's Prometheus metrics: one registry per broker process, served at ``/metrics``.

Every metric is named ``mwl_broker_*`` with its unit in the name. No label holds patient
data, and every label's values come from a bounded set: message types and ACK codes from
fixed lists, senders from the configured ``[hl7_senders.<name>]`` tables, calling AE
titles from the configured ``[scanners.<AE>]`` tables, mapping rules from the active
mapping set; anything else is folded into :data:`OTHER`. The hot paths (a message's
ACK, a C-FIND) reach pre-bound children through a dict, never a ``labels()`` call.

:class:`BrokerMetrics` is built once by the composition root and handed to the parts that
count; a part built without one (a test, a one-off command) counts into a registry of its
own that nobody reads. Another part adds its metrics to ``metrics.registry`` (one line:
``Counter("mwl_broker_x_total", "...", registry=metrics.registry)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from broker.common.outbound_metrics import OutboundMetrics

__all__ = [
    "ACK_CODES",
    "CONTENT_TYPE",
    "MESSAGE_TYPES",
    "MPPS_EVENTS",
    "OTHER",
    "BrokerMetrics",
    "ack_code_of",
]

OTHER = "other"  # the one value every unknown sender, AE title, type or rule is folded into
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ACK_CODES = ("AA", "AE", "AR", "CA", "CE", "CR")
MESSAGE_TYPES = (
    "ORM^O01", "OMI^O23", "OMG^O19", "ORU^R01",
    "ADT^A01", "ADT^A02", "ADT^A03", "ADT^A04", "ADT^A05", "ADT^A06", "ADT^A07", "ADT^A08",
    "ADT^A11", "ADT^A12", "ADT^A13", "ADT^A18", "ADT^A23", "ADT^A28", "ADT^A31", "ADT^A34",
    "ADT^A40", "ADT^A47",
)  # fmt: skip
MPPS_EVENTS = ("created", "updated", "completed", "discontinued")
ASSOCIATION_REFUSALS = (
    "calling_ae",  # the calling AE title (or its address) is not served
    "called_ae",  # the called AE title is not ours
    "connection_limit",  # too many connections, in all or from one address
    "address",  # no scanner may connect from this address
    "tls",  # the TLS handshake failed
    "protocol",  # not an association request, or a malformed or oversize one
    "transient",  # the policy failed, or the association limit was reached
    OTHER,
)
MLLP_REFUSALS = ("not_sender", "connection_limit", "tls", "stopping", "not_mllp", OTHER)
# Seconds: an ACK takes about 1-2 ms when idle, a C-FIND from ms to seconds.
_INGEST_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_FIND_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1)


def ack_code_of(ack: bytes) -> str:
    """MSA-1 of an ACK (HL7 v2.5.1 §2.14.8), or :data:`OTHER`: no parse, a find and a slice."""
    start = ack.find(b"\rMSA")
    if start < 0 or len(ack) < start + 7:
        return OTHER
    code = ack[start + 5 : start + 7].decode("ascii", "replace")
    return code if code in ACK_CODES else OTHER


class _Bounded:
    """The children of a metric for label values folded into a fixed set, built on first
    use of each combination and kept (the set is bounded, so is the dict)."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


WorklistCounts = Callable[[], tuple[dict[str, int], int, int, dict[str, int] | None]]
"""``() -> (entries by station, entries in all, entries ended, entries ended by station or
None when the server cannot count them cheaply)`` (``broker.store.counts``)."""


class _WorklistCollector(Collector):
    """``mwl_broker_worklist_entries`` at scrape time, from ``worklist_counts`` (in the broker
    the count it shares with the dashboard, kept 5 s: ``services.worklist_counts``)."""

    def __init__(self, metrics: BrokerMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families({}, 0, 0, {})

    def collect(self) -> Iterable[GaugeMetricFamily]:
        source = self._metrics.worklist_counts
        if source is None:
            return []
        try:
            by_station, total, ended, ended_by_station = source()
        except Exception:  # the store is down: the Redis metrics say so, not a 500
            self._metrics.redis_errors.inc()
            return []
        return self._families(by_station, total, ended, ended_by_station)

    def _families(
        self,
        by_station: dict[str, int],
        total: int,
        ended: int,
        ended_by_station: dict[str, int] | None,
    ) -> list[GaugeMetricFamily]:
        stations = GaugeMetricFamily(
            "mwl_broker_worklist_entries",
            "Worklist entries by Scheduled Station AE Title (configured scanners, else other)",
            labels=["station"],
        )
        folded = self._folded(by_station)
        for name, n in sorted(folded.items()):
            stations.add_metric([name], n)
        states = GaugeMetricFamily(
            "mwl_broker_worklist_entries_by_status",
            "Worklist entries by status: open (scheduled or in progress) or ended "
            "(completed, discontinued, canceled, not yet purged)",
            labels=["status"],
        )
        states.add_metric(["open"], max(total - ended, 0))
        states.add_metric(["ended"], ended)
        if ended_by_station is None:
            return [stations, states]
        both = GaugeMetricFamily(
            "mwl_broker_worklist_entries_by_station_status",
            "Worklist entries by Scheduled Station AE Title and status (open or ended); "
            "a station is left out when its entries and the ended ones both exceed 30,000 "
            "on Redis 7, 10,000 before (other: when one of its stations is)",
            labels=["station", "status"],
        )
        ended_at = self._folded(ended_by_station)
        left_out = {self._metrics.scanner(s) for s in by_station if s not in ended_by_station}
        for name, n in sorted(folded.items()):
            if name in left_out:
                continue  # not counted: a partial "other" would look like a count
            both.add_metric([name, "open"], max(n - ended_at.get(name, 0), 0))
            both.add_metric([name, "ended"], ended_at.get(name, 0))
        return [stations, states, both]

    def _folded(self, counts: dict[str, int]) -> dict[str, int]:
        """``counts`` by station with unconfigured AE titles added up as :data:`OTHER`."""
        folded: dict[str, int] = {}
        for station, n in counts.items():
            name = self._metrics.scanner(station)
            folded[name] = folded.get(name, 0) + n
        return folded


class BrokerMetrics:
    """Every metric of one broker process, in a registry of its own (``registry``)."""

    def __init__(
        self,
        *,
        senders: Iterable[str] = (),
        scanners: Iterable[str] = (),
        destinations: Iterable[str] = (),
    ) -> None:
        self.registry = r = CollectorRegistry()
        self._senders = frozenset(senders)
        self._scanners = frozenset(scanners)
        self._rules: frozenset[str] = frozenset()
        self.worklist_counts: WorklistCounts | None = None
        self._hl7(r)
        self._dicom(r)
        self._rest(r)
        r.register(_WorklistCollector(self))
        self.outbound = OutboundMetrics(r, destinations, self.redis_errors.inc)

    def _hl7(self, r: CollectorRegistry) -> None:
        self.hl7_messages = _Bounded(
            Counter(
                "mwl_broker_hl7_messages",
                "HL7 messages answered, by message type, sender and ACK code (MSA-1)",
                ["type", "sender", "ack_code"],
                registry=r,
            )
        )
        self.mapping_failures = _Bounded(
            Counter(
                "mwl_broker_mapping_failures",
                "Messages refused by the mapping, by the rule that failed (message: no rule)",
                ["rule"],
                registry=r,
            )
        )
        self.ingest_seconds = Histogram(
            "mwl_broker_hl7_ingest_seconds",
            "Time from a frame received to its ACK written",
            buckets=_INGEST_BUCKETS,
            registry=r,
        )
        self.mllp_refused = _Bounded(
            Counter(
                "mwl_broker_mllp_connections_refused",
                "MLLP connections refused, by reason class",
                ["reason"],
                registry=r,
            )
        )

    def _dicom(self, r: CollectorRegistry) -> None:
        self.find_seconds = _Bounded(
            Histogram(
                "mwl_broker_cfind_seconds",
                "Time a Modality Worklist C-FIND took, by calling AE title",
                ["calling_ae"],
                buckets=_FIND_BUCKETS,
                registry=r,
            )
        )
        self.find_answers = _Bounded(
            Counter(
                "mwl_broker_cfind_answers",
                "Pending answers sent to Modality Worklist C-FINDs, by calling AE title",
                ["calling_ae"],
                registry=r,
            )
        )
        self.associations_accepted = Counter(
            "mwl_broker_dicom_associations_accepted",
            "DICOM associations accepted",
            registry=r,
        )
        self.associations_refused = _Bounded(
            Counter(
                "mwl_broker_dicom_associations_refused",
                "DICOM associations and connections refused, by reason class",
                ["reason"],
                registry=r,
            )
        )
        self.mpps_events = _Bounded(
            Counter(
                "mwl_broker_mpps_events",
                "MPPS instances created and updated (DIMSE and DICOMweb), by event",
                ["event"],
                registry=r,
            )
        )

    def _rest(self, r: CollectorRegistry) -> None:
        self.redis_seconds = Histogram(
            "mwl_broker_redis_roundtrip_seconds",
            "Round trip of a PING to Redis, sent every few seconds",
            buckets=_REDIS_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "mwl_broker_redis_errors",
            "Redis calls that failed (the periodic PING, the metrics' own reads)",
            registry=r,
        )
        self.api_requests = _Bounded(
            Counter(
                "mwl_broker_admin_requests",
                "Admin API requests, by route template and status class (2xx, 4xx, ...)",
                ["route", "status"],
                registry=r,
            )
        )
        self.up = Gauge("mwl_broker_up", "1 while the broker serves", registry=r)

    def __repr__(self) -> str:
        return f"BrokerMetrics(senders={len(self._senders)}, scanners={len(self._scanners)})"

    # -- folding -----------------------------------------------------------

    def sender(self, name: str | None) -> str:
        return name if name is not None and name in self._senders else OTHER

    def scanner(self, ae_title: str) -> str:
        return ae_title if ae_title in self._scanners else OTHER

    def rule(self, name: str | None) -> str:
        if name is None:
            return "message"
        return name if name in self._rules else OTHER

    def set_rules(self, names: Iterable[str]) -> None:
        """The rule names of the active mapping set (told on each load or publish)."""
        self._rules = frozenset(names)

    @staticmethod
    def message_type(message_type: str) -> str:
        return message_type if message_type in _MESSAGE_TYPES else OTHER

    # -- exposition --------------------------------------------------------

    def exposition(self) -> bytes:
        """The text exposition format of every metric (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    def names(self) -> Iterator[str]:
        """The metric families' names (for tests and the README)."""
        for family in self.registry.collect():
            yield family.name


_MESSAGE_TYPES = frozenset(MESSAGE_TYPES)

"""What the DICOM face counts (``broker.common.metrics``): each C-FIND's time and answers
by calling AE title (configured ``[scanners.<AE>]`` tables, else ``other``), associations
accepted, and associations and connections refused by reason class (PS3.8 9.3.4)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from broker.common.metrics import ASSOCIATION_REFUSALS, OTHER, BrokerMetrics
from broker.dicom.peers import caller_of

__all__ = ["AssociationMeter", "measured", "refusal_class"]

_PENDING = (0xFF00, 0xFF01)  # PS3.4 C.4.1.1.4: a pending answer carries an identifier


def measured(
    handler: Callable[[Any], Iterator[Any]], metrics: BrokerMetrics
) -> Callable[[Any], Iterator[Any]]:
    """``handler`` (a C-FIND's) with its time, first request to last answer, and its
    pending answers counted under the caller's folded AE title."""
    seconds, answers = metrics.find_seconds, metrics.find_answers

    def handle(event: Any) -> Iterator[Any]:
        started = time.perf_counter()
        ae = metrics.scanner(caller_of(event)[0].strip())
        count = 0
        try:
            for result in handler(event):
                if result[0] in _PENDING:
                    count += 1
                yield result
        finally:
            seconds(ae).observe(time.perf_counter() - started)
            if count:
                answers(ae).inc(count)

    return handle


def refusal_class(reason: str) -> str:
    """The class (``ASSOCIATION_REFUSALS``) of a connection the guard refused, from its
    reason (``broker.dicom.guard``)."""
    if "TLS" in reason:
        return "tls"
    if "connections open" in reason:
        return "connection_limit"
    if "from this address" in reason:
        return "address"
    return "protocol"


class AssociationMeter:
    """pynetdicom's EVT_ACCEPTED and EVT_REJECTED handlers that count, and the guard's
    refusals (``count``)."""

    def __init__(self, metrics: BrokerMetrics) -> None:
        self._accepted = metrics.associations_accepted
        self._refused = {kind: metrics.associations_refused(kind) for kind in ASSOCIATION_REFUSALS}

    def accepted(self, event: Any) -> None:
        self._accepted.inc()

    def rejected(self, event: Any) -> None:
        """An A-ASSOCIATE-RJ sent (PS3.8 Table 9-21: result, source, reason)."""
        rj = getattr(event.assoc.acceptor, "primitive", None)
        result, diagnostic = getattr(rj, "result", 1), getattr(rj, "diagnostic", 0)
        if result == 2:  # rejected-transient
            kind = "transient"
        elif diagnostic == 3:  # calling AE title not recognized
            kind = "calling_ae"
        elif diagnostic == 7:  # called AE title not recognized
            kind = "called_ae"
        elif diagnostic == 1 and getattr(rj, "result_source", 0) == 1:
            kind = "calling_ae"  # the policy: a caller's table omits its address
        else:
            kind = OTHER
        self._refused[kind].inc()

    def count(self, reason: str) -> None:
        self._refused[refusal_class(reason)].inc()

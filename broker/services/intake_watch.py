"""What the HL7 intake tells operators: its metrics (``broker.common.metrics``: each
answered message by type, sender and ACK code, each mapping failure by rule; every label
folded into a bounded set), a message's correlation ID (``broker.common.correlation``)
and the log lines of the warnings of an applied message."""

from __future__ import annotations

import logging
from collections.abc import Callable

from broker.common import correlation
from broker.common.metrics import BrokerMetrics, ack_code_of
from broker.errors import MappingError
from broker.hl7.ack import AckWarning
from broker.hl7.senders import SenderSet, peer_address
from broker.mapping.outbound_spec import OutboundSpec
from broker.mapping.registry import MappingRegistry
from broker.mapping.spec import Rule, SequenceRule

__all__ = ["IntakeMetrics", "message_correlation", "warned"]

log = logging.getLogger("broker.services.routing")

_MAX_PEERS = 1024  # source addresses whose sender name is kept (then forgotten, all at once)


class IntakeMetrics:
    """The router's counters, with the sender of each source address and the rule names
    of each mapping version kept (the lookups are paid once, not per message); without
    ``metrics``, nothing is counted."""

    def __init__(self, metrics: BrokerMetrics | None, senders: SenderSet) -> None:
        self._metrics = metrics
        self._senders = senders
        self._by_host: dict[str, str] = {}
        self._rules: tuple[MappingRegistry, frozenset[str]] | None = None

    def __repr__(self) -> str:
        return f"IntakeMetrics({self._metrics!r})"

    def answered(self, message_type: str, peer: str, ack: bytes) -> None:
        """One message answered with ``ack``."""
        m = self._metrics
        if m is None:
            return
        m.hl7_messages(m.message_type(message_type), self._sender(m, peer), ack_code_of(ack)).inc()

    def mapping_failed(self, error: MappingError, registry: MappingRegistry) -> None:
        """One message the mapping refused; its rule folded into the active set's names."""
        if self._metrics is None:
            return
        name = error.rule
        if name is not None and name not in self._rule_names(registry):
            name = "other"
        self._metrics.mapping_failures(name or "message").inc()

    def _sender(self, m: BrokerMetrics, peer: str) -> str:
        host = peer_address(peer)
        label = self._by_host.get(host)
        if label is None:
            if len(self._by_host) >= _MAX_PEERS:
                self._by_host.clear()
            sender = self._senders.sender_for(host)
            label = self._by_host[host] = m.sender(None if sender is None else sender.name)
        return label

    def _rule_names(self, registry: MappingRegistry) -> frozenset[str]:
        if self._rules is None or self._rules[0] is not registry:
            names: set[str] = set()
            for spec in registry.specs:
                if not isinstance(spec, OutboundSpec):  # no rules: it builds, never maps
                    _collect(spec.rules, names)
            self._rules = (registry, frozenset(names))
        return self._rules[1]


def _collect(rules: tuple[Rule, ...], names: set[str]) -> None:
    for rule in rules:
        names.add(rule.name)
        if isinstance(rule, SequenceRule):
            _collect(rule.rules, names)


def message_correlation(raw: bytes, pseudonym: Callable[[str, str], str] | None) -> str:
    """A message's correlation ID: ``m-`` and a pseudonym of its MSH-3, MSH-4 and MSH-10
    (HL7 v2.5.1 §2.15.9), the identity a resend shares; read from the bytes, before any
    decoding, so that even an undecodable message has one."""
    head = raw[:1024].split(b"\r", 1)[0]
    parts = head.split(raw[3:4]) if head.startswith(b"MSH") and len(head) > 3 else []
    identity = b"|".join(parts[2:4] + parts[9:10]).decode("latin-1")
    return correlation.digest("m", identity, pseudonym)


def warned(peer: str, control_id: str, warnings: tuple[AckWarning, ...]) -> str:
    """Log each warning of an applied message (its text names the field, the attribute and
    the lengths, never the value); the part of the summary line that counts them."""
    for warning in warnings:
        log.warning(
            "[%s] msg %s: warning %s at %s: %s",
            peer,
            control_id,
            warning.err_code.value,
            warning.location or "-",
            warning.text,
        )
    return f", {len(warnings)} value(s) cut to fit (ERR W)" if warnings else ""

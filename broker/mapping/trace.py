"""The observer of a mapping run, for ``mwl-broker mapping preview`` (``broker.services.preview``).

The engine calls a :class:`Trace` only when one is given, so mapping a
received message costs nothing for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from broker.hl7.paths import Value
from broker.mapping.spec import ValueRule
from broker.mapping.stations import StationRule
from broker.worklist.model import Truncation

__all__ = ["Trace"]


class Trace(Protocol):
    """Observes one mapping run; the engine calls it only when one is given.

    Per entry (order) or PID group (patient): :meth:`entry`, then per rule
    :meth:`rule`, one :meth:`evaluated` per attempt (the rule, then each
    fallback tried), :meth:`truncated` per value cut to fit, and :meth:`done`;
    sequences are bracketed by :meth:`sequence` with the keyword and with None.
    When mapping fails, the last :meth:`rule` has no :meth:`done`.
    """

    def entry(self, order_key: str) -> None:
        """A dataset starts (``order_key`` is empty for a patient)."""

    def sequence(self, keyword: str | None) -> None:
        """Entering the item of sequence ``keyword``; None: leaving it."""

    def rule(self, rule: ValueRule) -> None:
        """Evaluating ``rule`` (and its fallbacks) starts."""

    def evaluated(
        self,
        rule: ValueRule,
        location: str | None,
        raw: Sequence[Value],
        values: Sequence[str],
        seed: str | None,
    ) -> None:
        """One attempt: the path that gave ``raw`` (None: a constant, a generated
        value or nothing), the values after transforms and table, empties
        dropped, before ``default``; ``seed`` is the generator's seed value."""

    def truncated(self, cut: Truncation) -> None:
        """A value of the current rule was cut to fit its VR (``on_overflow: truncate``)."""

    def done(self, values: Sequence[str]) -> None:
        """The rule's final values (empty: the element is empty)."""

    def station(self, rule: StationRule | None) -> None:
        """The station routing rule applied to the entry (None: no rule held)."""

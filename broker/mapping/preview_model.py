"""The mapping preview's result types, and the recorder that fills their trace.

:class:`Recorder` is the :class:`broker.mapping.trace.Trace` that
:func:`broker.services.preview.preview` hands to the engine: it keeps one
:class:`AttributeTrace` per attribute of each dataset mapped, with every
:class:`Attempt` (the rule, then each fallback tried) that led to its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

from broker.errors import HL7Error
from broker.hl7.codes import AckCode
from broker.hl7.paths import HL7Path, Value
from broker.mapping.spec import ValueRule
from broker.mapping.stations import StationRule
from broker.worklist.model import TERMINAL_STATUSES, OrderAction, PatientAction, Truncation

__all__ = [
    "Attempt",
    "AttributeTrace",
    "ChangePreview",
    "Decoding",
    "EntryPreview",
    "PatientPreview",
    "Preview",
    "Recorder",
    "Stations",
]


@dataclass(frozen=True)
class Attempt:
    """One evaluation of a rule (``depth`` 0) or of its ``depth``-th fallback."""

    depth: int
    kind: str  # "path", "constant", "generated" ("order_control" for the step status)
    source: str  # "OBR-24", "constant", "generated uid (seed ...)"; "" when every path was empty
    tried: tuple[str, ...]  # paths read and found empty
    raw: tuple[str, ...]  # the values read (parts joined with ^, or & below a component)
    steps: tuple[str, ...]  # the transforms, then "table NAME", applied to ``raw``
    values: tuple[str, ...]  # after the steps, empty values dropped
    default: str | None  # the rule's default, used because ``values`` is empty


@dataclass(frozen=True)
class AttributeTrace:
    """How one attribute got its value; ``value`` is () when nothing gave one."""

    attribute: str  # "ScheduledProcedureStepSequence > Modality"
    attempts: tuple[Attempt, ...]
    value: tuple[str, ...]
    error: str | None = None  # mapping failed on this attribute
    cuts: tuple[Truncation, ...] = ()  # values cut to fit the VR (``on_overflow: truncate``)

    @property
    def source(self) -> str:
        """``"OBR-24"``, ``"fallback: path OBR-24 via table t"``, ``"default"``, ``"empty"``…"""
        if self.error is not None:
            return "error"
        if not self.value or not self.attempts:
            return "empty"
        last = self.attempts[-1]
        text = "default" if last.default is not None else last.source
        if last.default is None and last.steps[-1:] and last.steps[-1].startswith("table "):
            text += f" via {last.steps[-1]}"
        if last.depth == 0:
            return text
        return f"fallback: {'path ' if last.kind == 'path' and last.default is None else ''}{text}"

    @property
    def tried(self) -> tuple[str, ...]:
        """Every path read and found empty, in the order tried (fallbacks included)."""
        return tuple(path for attempt in self.attempts for path in attempt.tried)


@dataclass(frozen=True)
class Stations:
    """What a worklist query must hold to see an entry (PS3.4 C.2.2.2, K.6): an empty
    entry value matches only a query without that key."""

    ae_titles: tuple[str, ...]
    modality: str
    start_date: str
    start_time: str
    status: str
    routed_by: str | None = None  # the station rule that applied; None: the mapping has none

    def describe(self) -> str:
        """E.g. ``any station querying without an AE title; stations CT1, CT2 with theirs; …``."""
        if self.ae_titles:
            names = ", ".join(self.ae_titles)
            theirs = (
                f"stations {names} with theirs" if "," in names else f"station {names} with its own"
            )
            who = f"any station querying without an AE title; {theirs}"
        else:
            who = "only stations querying without an AE title (the entry names no station)"
        date = f"a range including {self.start_date}" if self.start_date else ""
        if date and self.start_time:
            date += f" (starts {self.start_time})"
        keys = [
            f"Modality empty or {self.modality}" if self.modality else "Modality empty only",
            f"SPS Start Date empty or {date}" if date else "SPS Start Date empty only",
        ]
        if self.status in TERMINAL_STATUSES:
            keys.append(f"hidden unless the query asks for status {self.status}")
        routed = ""
        if self.routed_by is not None:
            routed = f" (station rule: {self.routed_by})" if self.routed_by else " (no rule held)"
        return f"{who}{routed}; query keys: {', '.join(keys)}"


@dataclass(frozen=True)
class EntryPreview:
    """One worklist entry (Scheduled Procedure Step) and how its attributes were found."""

    dataset: Dataset
    trace: tuple[AttributeTrace, ...]
    stations: Stations


@dataclass(frozen=True)
class ChangePreview:
    """One order's change: the action, the order key, the step status and its entries."""

    action: OrderAction
    order_key: str
    status: str
    entries: tuple[EntryPreview, ...]


@dataclass(frozen=True)
class PatientPreview:
    """One patient of an ADT message: the attributes it carries and how they were found."""

    patient_id: str
    prior_id: str
    attributes: Dataset
    trace: tuple[AttributeTrace, ...]  # every rule, also those not carried (empty)


@dataclass(frozen=True)
class Decoding:
    """How the router reads the message's bytes: its charset and MSH-7's time."""

    charset: str  # Python codec name the message was decoded with
    mislabelled: bool  # declared single-byte, read as UTF-8 (broker.hl7.charsets)
    sent: str  # MSH-7.1 as received, "" when absent
    zone: str  # where MSH-7 without an offset is local time; "": the broker host's zone
    sent_utc: str  # MSH-7 (its start) in UTC, "YYYYMMDDHHMMSS.ffffff"; "" when unreadable


@dataclass(frozen=True)
class Preview:
    """What one message would do; with ``error``, what the sender would get instead."""

    message_type: str
    control_id: str
    mapping_name: str = ""
    mapping_version: str = ""
    changes: tuple[ChangePreview, ...] = ()
    patient_action: PatientAction | None = None
    patients: tuple[PatientPreview, ...] = ()
    error: HL7Error | None = None
    failed_trace: tuple[AttributeTrace, ...] = ()  # the dataset being built, failing rule last
    decoding: Decoding | None = None  # None: the bytes could not be decoded
    warnings: tuple[Truncation, ...] = ()  # values cut to fit: ERR of severity W in the AA

    @property
    def ack_code(self) -> AckCode:
        """MSA-1 in original mode: AA, or the error's AE/AR."""
        return AckCode.ACCEPT if self.error is None else self.error.ack_code

    @property
    def outcome(self) -> str:
        """``"AA"``, ``"AA with 1 warning(s)"`` or e.g. ``"AE 101 at PID-3: PID-3 (PatientID)
        is empty"``."""
        e = self.error
        if e is None:
            count = len(self.warnings)
            warned = f" with {count} warning(s)" if count else ""
            return AckCode.ACCEPT.value + warned
        where = f" at {e.location}" if e.location else ""
        return f"{e.ack_code.value} {e.err_code.value}{where}: {e.text}"


class Recorder:
    """The preview's :class:`broker.mapping.engine.Trace`: one list of rows per dataset."""

    def __init__(self) -> None:
        self.datasets: list[list[AttributeTrace]] = []
        self._sequences: list[str] = []
        self._rule: ValueRule | None = None
        self._attempts: list[Attempt] = []
        self._cuts: list[Truncation] = []
        self.routes: dict[int, str] = {}  # dataset index -> station rule name ("" none held)

    def entry(self, order_key: str) -> None:
        self.datasets.append([])
        self._sequences, self._rule = [], None

    def sequence(self, keyword: str | None) -> None:
        if keyword is None:
            self._sequences.pop()
        else:
            self._sequences.append(keyword)

    def rule(self, rule: ValueRule) -> None:
        self._rule, self._attempts, self._cuts = rule, [], []

    def evaluated(
        self,
        rule: ValueRule,
        location: str | None,
        raw: Sequence[Value],
        values: Sequence[str],
        seed: str | None,
    ) -> None:
        depth, current = 0, self._rule
        while current is not None and current is not rule:
            depth, current = depth + 1, current.fallback
        path = next((p for p in rule.paths if str(p) == location), None)
        tried = rule.paths[: rule.paths.index(path)] if path is not None else rule.paths
        kind, source = "path", location or ""
        if rule.value is not None:
            kind = source = "constant"
        elif rule.generate is not None:
            seeds = "|".join(str(p) for p in rule.seed)
            basis = f"seed {seeds} = {seed!r}" if seeds else "from the order key"
            kind, source = "generated", f"generated {rule.generate} ({basis})"
        steps = rule.transforms + ((f"table {rule.table}",) if rule.table else ()) if raw else ()
        read = tuple(_joined(v, path) for v in raw)
        default = rule.default if not values else None
        tried_text = tuple(str(p) for p in tried)
        self._attempts.append(
            Attempt(depth, kind, source, tried_text, read, steps, tuple(values), default)
        )

    def truncated(self, cut: Truncation) -> None:
        self._cuts.append(cut)

    def done(self, values: Sequence[str], error: str | None = None) -> None:
        if self._rule is not None and self.datasets:
            name = " > ".join([*self._sequences, self._rule.keyword])
            attempts, cuts = tuple(self._attempts), tuple(self._cuts)
            row = AttributeTrace(name, attempts, tuple(values), error, cuts)
            self.datasets[-1].append(row)
        self._rule = None

    def station(self, rule: StationRule | None) -> None:
        self.routes[len(self.datasets) - 1] = "" if rule is None else rule.name

    def failed(self, error: HL7Error) -> tuple[AttributeTrace, ...]:
        """The current dataset's rows, the failing rule last; () if no rule was failing."""
        if self._rule is None or not self.datasets:
            return ()
        self.done((), error.text)
        return tuple(self.datasets[-1])


def _joined(value: Value, path: HL7Path | None) -> str:
    separator = "&" if path is not None and path.component is not None else "^"
    return separator.join(value).rstrip(separator)

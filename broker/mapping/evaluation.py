"""Evaluating a mapping's rules for one segment group: values read, transformed, checked,
written as DICOM JSON (PS3.18 F.2). Pure, no I/O; used by the order engine
(``broker.mapping.engine``) and the patient mapping (``broker.mapping.patient``).

A path's segment resolves to the current entry segment when it is of that type,
else to the first such segment in the current group, else to the first in the
message. A rule yields the first non-empty of its paths (or its constant, or a
generated identifier), transformed, then its fallbacks when empty; each value is
checked against the attribute's VR (``broker.mapping.conform``): one too long
is refused, or cut when its rule says ``on_overflow: truncate``, and the cut is
noted in the context's ``cuts``. A :class:`Trace` only observes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from broker.errors import MappingError
from broker.hl7.codes import ErrorCode
from broker.hl7.paths import HL7Path, Value, read, scalar
from broker.mapping.conform import conform
from broker.mapping.spec import SPS_SEQUENCE, LookupTable, Rule, SequenceRule, ValueRule
from broker.mapping.trace import Trace
from broker.mapping.transforms import (
    TRANSFORMS,
    TransformError,
    id_from_seed,
    person_name_groups,
    uid_from_seed,
)
from broker.worklist.dicom_json import mapped_element
from broker.worklist.model import Truncation

__all__ = [
    "SPS_SEQUENCE_KEY",
    "SPS_STATUS_KEY",
    "Context",
    "RuleTables",
    "build",
    "distinct_cuts",
    "first_by_id",
    "segment_id",
    "status_element",
]

SPS_STATUS_KEY = "00400020"  # Scheduled Procedure Step Status, CS (PS3.3 C.4.10)
SPS_SEQUENCE_KEY = "00400100"  # Scheduled Procedure Step Sequence
_CODE_VALUE = 0x00080100  # Code Value, SH
_LONG_CODE_VALUE = 0x00080119  # Long Code Value, UC
_SCHEDULED = "SCHEDULED"


class RuleTables(Protocol):
    """What evaluating rules needs of a mapping (order or patient): its lookup tables."""

    @property
    def tables(self) -> Mapping[str, LookupTable]: ...


def segment_id(segment: Sequence[Any]) -> str:
    """The segment's name (``"PID"``)."""
    head = segment[0] if len(segment) else ""
    if isinstance(head, str):
        return head
    return str(head[0]) if len(head) else ""


def first_by_id(segments: Sequence[Any]) -> dict[str, Any]:
    """The first segment of each name."""
    first: dict[str, Any] = {}
    for segment in segments:
        first.setdefault(segment_id(segment), segment)
    return first


class Context:
    """Resolves a path's segment for one entry (or one order group when ``entry`` is None).

    ``cuts`` collects the values cut to fit their VR (a list shared by the
    contexts of one message, so the caller sees them all).
    """

    def __init__(
        self,
        message_first: dict[str, Any],
        group: list[Any],
        entry: tuple[str, Any] | None,
        trace: Trace | None = None,
        peer: str = "",
        cuts: list[Truncation] | None = None,
    ) -> None:
        self.message_first = message_first
        self.group_first = first_by_id(group)
        self.entry = entry
        self.order_key = ""
        self.trace = trace
        self.peer = peer
        self.cuts: list[Truncation] = [] if cuts is None else cuts

    def read(self, path: HL7Path) -> list[Value]:
        if self.entry is not None and path.segment == self.entry[0]:
            segment = self.entry[1]
        else:
            segment = self.group_first.get(path.segment, self.message_first.get(path.segment))
        return [] if segment is None else read(segment, path)

    def subject(self, subject: HL7Path | str) -> str:
        """A condition's subject (``broker.mapping.conditions``): a path's plain value, or the
        sending host."""
        if isinstance(subject, HL7Path):
            values = self.read(subject)
            return scalar(values[0]).strip() if values else ""
        if subject == "sending_host":
            return _host(self.peer)
        return ""


def distinct_cuts(cuts: Sequence[Truncation]) -> tuple[Truncation, ...]:
    """One truncation per (field, attribute), the longest, in the order first met: a field
    read for every entry of an order is reported once."""
    longest: dict[tuple[str, str], Truncation] = {}
    for item in cuts:
        key = (item.location, item.keyword)
        if key not in longest or item.length > longest[key].length:
            longest[key] = item
    return tuple(longest.values())


def _host(peer: str) -> str:
    """``10.1.2.3`` of ``10.1.2.3:4000``, ``::1`` of ``[::1]:4000``."""
    host = peer.rsplit(":", 1)[0] if peer.count(":") == 1 or peer.startswith("[") else peer
    return host.strip("[]")


def build(
    spec: RuleTables, rules: tuple[Rule, ...], context: Context
) -> tuple[dict[str, Any], bool]:
    """Build DICOM JSON (PS3.18 F.2) from ``rules``; the flag says whether any value is
    non-empty. Values are written as ``dicom_json`` writes pydicom's elements."""
    dataset: dict[str, Any] = {}
    filled = False
    for rule in rules:
        if isinstance(rule, SequenceRule):
            if context.trace is not None:
                context.trace.sequence(rule.keyword)
            item, item_filled = build(spec, rule.rules, context)
            if context.trace is not None:
                context.trace.sequence(None)
            if rule.keyword == SPS_SEQUENCE:
                if not item.get(SPS_STATUS_KEY, {}).get("Value"):
                    item[SPS_STATUS_KEY] = status_element(_SCHEDULED)
                item_filled = True
            if item_filled:  # an optional sequence with no values is left out entirely
                dataset[_key(rule.tag)] = {"vr": "SQ", "Value": [item]}
                filled = True
            continue
        if rule.tag == _CODE_VALUE:
            rule, values = _code_value(spec, rule, context)
        else:
            values = _values(spec, rule, context)
        filled = filled or bool(values)
        chosen = values if rule.multi else values[:1]
        dataset[_key(rule.tag)] = mapped_element(rule.tag, rule.vr, chosen)
    return dataset, filled


@functools.lru_cache(maxsize=1024)
def _key(tag: int) -> str:
    return f"{tag:08X}"


def status_element(status: str) -> dict[str, Any]:
    """Scheduled Procedure Step Status (0040,0020) with ``status``, as DICOM JSON."""
    return {"vr": "CS", "Value": [status]}


def _code_value(spec: RuleTables, rule: ValueRule, context: Context) -> tuple[ValueRule, list[str]]:
    """A code longer than Code Value's 16 characters goes to Long Code Value (0008,0119),
    which replaces Code Value (PS3.3 8.8, Table 8.8-1a), rather than being refused."""
    try:
        return rule, _values(spec, rule, context)
    except MappingError as e:
        if e.err_code is not ErrorCode.VALUE_TOO_LONG:
            raise
    long_rule = _as_long_code(rule)
    return long_rule, _values(spec, long_rule, context)


def _as_long_code(rule: ValueRule) -> ValueRule:
    fallback = None if rule.fallback is None else _as_long_code(rule.fallback)
    return dataclasses.replace(
        rule, keyword="LongCodeValue", tag=_LONG_CODE_VALUE, vr="UC", fallback=fallback
    )


def _values(spec: RuleTables, rule: ValueRule, context: Context) -> list[str]:
    """Evaluate a rule (and its fallbacks), check ``required`` and DICOM conformance; a
    failure names the rule (``MappingError.rule``, counted by the broker's metrics)."""
    try:
        return _rule_values(spec, rule, context)
    except MappingError as e:
        if e.rule is None:
            e.rule = rule.name
        raise


def _rule_values(spec: RuleTables, rule: ValueRule, context: Context) -> list[str]:
    trace = context.trace
    if trace is not None:
        trace.rule(rule)
    current: ValueRule | None = rule
    values: list[str] = []
    while current is not None and not values:
        raw, location = _evaluate(spec, current, context)
        for value in raw:
            cut_before = len(context.cuts)
            text = conform(value, rule, location, context.cuts)
            if trace is not None and len(context.cuts) > cut_before:
                trace.truncated(context.cuts[-1])
            if text:
                values.append(text)
        current = current.fallback
    if not values and rule.required:
        where = ", ".join(str(p) for p in rule.paths) or rule.keyword
        first = str(rule.paths[0]) if rule.paths else None
        raise MappingError(
            ErrorCode.REQUIRED_FIELD_MISSING, first, f"{where} ({rule.keyword}) is empty"
        )
    if trace is not None:
        trace.done(values)
    return values


def _evaluate(spec: RuleTables, rule: ValueRule, context: Context) -> tuple[list[str], str | None]:
    """Raw values of one rule: first non-empty path (or constant, or generated), transformed."""
    location: str | None = None
    raw: list[Value] = []
    if rule.when is not None and not rule.when.holds(context.subject):
        if context.trace is not None:
            context.trace.evaluated(rule, None, [], [], None)
        return [], None
    if rule.value is not None:
        raw = [(rule.value,)]
    elif rule.generate == "id":  # the keyword keeps RP ID and SPS ID of one order apart
        seed = _first_scalar(rule.seed, context)
        raw = [(id_from_seed(f"{context.order_key}|{rule.keyword}|{seed}"),)]
    elif rule.generate is not None:
        seed = _first_scalar(rule.seed, context)
        raw = [(uid_from_seed(f"{context.order_key}|{seed}"),)]
    every_repetition = False
    for path in rule.paths:
        raw = [v for v in context.read(path) if "".join(v).strip()]  # a part not blank
        if raw:
            location, every_repetition = str(path), path.all_repetitions
            break
    if raw and location is not None and every_repetition and not rule.multi:
        # every repetition of an XPN/XCN: one name, with its component groups
        values = [_name_groups(rule, raw, location)]
    elif rule.transforms or rule.extract is not None or rule.table is not None:
        values = [_transform(spec, rule, value, location) for value in raw]
    else:  # the value as read: its first part
        values = [value[0] if value else "" for value in raw]
    values = [v for v in values if v.strip()]
    if context.trace is not None:
        seeded = _first_scalar(rule.seed, context) if rule.generate is not None else None
        context.trace.evaluated(rule, location, raw, values, seeded)
    if not values and rule.default is not None:
        values = [rule.default]
    return values, location


def _first_scalar(paths: tuple[HL7Path, ...], context: Context) -> str:
    for path in paths:
        for value in context.read(path):
            if scalar(value).strip():
                return scalar(value).strip()
    return ""


def _name_groups(rule: ValueRule, raw: list[Value], location: str) -> str:
    try:
        return person_name_groups(raw, xcn=rule.transforms == ("xcn_pn",))
    except TransformError as e:
        raise MappingError(
            ErrorCode.DATA_TYPE_ERROR, location, f"{location} ({rule.keyword}) {e}"
        ) from e


def _transform(spec: RuleTables, rule: ValueRule, value: Value, location: str | None) -> str:
    text = scalar(value)
    try:
        for index, name in enumerate(rule.transforms):
            text = TRANSFORMS[name](value if index == 0 else (text,))
    except TransformError as e:
        code = ErrorCode.TABLE_VALUE_NOT_FOUND if e.table else ErrorCode.DATA_TYPE_ERROR
        raise MappingError(code, location, f"{location or rule.name} ({rule.keyword}) {e}") from e
    if rule.extract is not None and text:
        text = rule.extract.extract(text)
    if rule.table is None or not text:
        return text
    table = spec.tables[rule.table]
    found = table.rows.get(text, table.default)
    if found is None:
        raise MappingError(
            ErrorCode.TABLE_VALUE_NOT_FOUND,
            location,
            f"{location or rule.name} ({rule.keyword}): {text!r} has no row in table "
            f"{table.name!r}",
        )
    return found

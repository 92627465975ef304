"""The mapping engine: one parsed HL7 order message → worklist changes. Pure, no I/O.

Message layout (HL7 v2.5.1 §4.4 ORM^O01, §4.4.6 OMG^O19, §4.4.8 OMI^O23; IHE
RAD TF-2 RAD-4/RAD-13): the segments before the first ORC describe the
patient and visit (PID, PV1…); each ORC starts an order group. ORC-1 (order
control, HL7 table 0119) decides through the mapping's ``order_control``
table whether the group schedules, cancels or is ignored. A scheduling group
yields one worklist entry — one Scheduled Procedure Step, PS3.4 K.6.1 — per
instance of the mapping's ``entry_per`` segment (OBR for ORM/OMG, IPC for
OMI).

A path's segment resolves to the current entry segment when it is of that
type, else to the first such segment in the current order group, else to the
first in the message (so PID and PV1 come from the patient part).

A :class:`Trace` given to :func:`map_message` or :func:`evaluate_rules` is told
how each value was found (``broker.mapping.preview``); it only observes, and
without one the only cost is an ``is not None`` check per rule.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydicom.dataset import Dataset

from broker.errors import HL7Error, MappingError
from broker.hl7.codes import AckCode, ErrorCode
from broker.mapping.conditions import MAX_MATCHED
from broker.mapping.conform import conform
from broker.mapping.order_control import control_codes, control_row, refuse_parent_child
from broker.mapping.paths import HL7Path, Value, read, scalar
from broker.mapping.spec import (
    SPS_SEQUENCE,
    ControlAction,
    LookupTable,
    MappingSpec,
    Rule,
    SequenceRule,
    ValueRule,
)
from broker.mapping.stations import route
from broker.mapping.trace import Trace
from broker.mapping.transforms import (
    TRANSFORMS,
    TransformError,
    id_from_seed,
    person_name_groups,
    uid_from_seed,
)
from broker.worklist.dicom_json import dataset_json, mapped_element
from broker.worklist.model import MappedEntry, MappingResult, OrderAction, OrderChange

__all__ = ["RuleTables", "Trace", "evaluate_rules", "map_message", "segment_id"]

_SPS_STATUS_KEY = "00400020"  # Scheduled Procedure Step Status, CS (PS3.3 C.4.10)
_SPS_SEQUENCE_TAG = 0x00400100  # Scheduled Procedure Step Sequence
_CODE_VALUE = 0x00080100  # Code Value, SH
_LONG_CODE_VALUE = 0x00080119  # Long Code Value, UC
_SCHEDULED = "SCHEDULED"


def map_message(
    message: Sequence[Any],
    spec: MappingSpec,
    *,
    message_type: str,
    trace: Trace | None = None,
    peer: str = "",
) -> MappingResult:
    """Map an order message to one :class:`OrderChange` per order group.

    Adjacent groups with the same order key and action are merged into one
    change (IHE RAD-4 in HL7 v2.3.1 sends one ORC/OBR pair per Scheduled
    Procedure Step of the same order). Raises :class:`MappingError` (AE) with
    an HL7 table 0357 code and an ERR-2 location such as ``"PID-3"``. Every
    group is mapped before anything is returned, so a message is applied whole
    or, when any group fails, not at all. ``trace`` observes the rules
    evaluated; the result is the same with or without it. ``peer`` is where
    the message came from (``host:port``), for ``when: {sending_host: …}``.
    """
    entry_types = spec.entry_per.get(message_type)
    if entry_types is None:
        raise HL7Error(
            AckCode.REJECT,
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            "MSH-9",
            f"mapping {spec.name!r} does not handle {message_type}",
        )
    segments = list(message)
    first_orc = next((i for i, s in enumerate(segments) if _segment_id(s) == "ORC"), None)
    if first_orc is None:
        raise MappingError(
            ErrorCode.SEGMENT_SEQUENCE_ERROR, "ORC", f"{message_type} has no ORC segment"
        )
    message_first = _first_by_id(segments)
    groups = _order_groups(segments[first_orc:])
    refuse_parent_child(groups)
    changes: list[OrderChange] = []
    for group in groups:
        change = _map_group(spec, group, message_first, entry_types, (trace, peer))
        if change is None:
            continue
        last = changes[-1] if changes else None
        if last is not None and (last.order_key, last.action) == (change.order_key, change.action):
            changes[-1] = dataclasses.replace(last, entries=last.entries + change.entries)
        else:
            changes.append(change)
    return MappingResult(tuple(changes), spec.name, spec.version)


class RuleTables(Protocol):
    """What evaluating rules needs of a mapping (order or patient): its lookup tables."""

    @property
    def tables(self) -> Mapping[str, LookupTable]: ...


def evaluate_rules(
    spec: RuleTables,
    rules: tuple[Rule, ...],
    message: Sequence[Any],
    group: Sequence[Any],
    trace: Trace | None = None,
) -> Dataset:
    """Evaluate ``rules`` for one segment group of ``message`` (used by the patient mapping).

    A path's segment is the first of its type in ``group``, else the first in
    the message; values are transformed and checked as for orders.
    """
    if trace is not None:
        trace.entry("")
    built, _ = _build(spec, rules, _Context(_first_by_id(message), list(group), None, trace))
    return Dataset.from_json(built)


def segment_id(segment: Sequence[Any]) -> str:
    """The segment's name (``"PID"``)."""
    return _segment_id(segment)


def _segment_id(segment: Sequence[Any]) -> str:
    head = segment[0] if len(segment) else ""
    if isinstance(head, str):
        return head
    return str(head[0]) if len(head) else ""


def _first_by_id(segments: Sequence[Any]) -> dict[str, Any]:
    first: dict[str, Any] = {}
    for segment in segments:
        first.setdefault(_segment_id(segment), segment)
    return first


def _order_groups(segments: Sequence[Any]) -> list[list[Any]]:
    groups: list[list[Any]] = []
    for segment in segments:
        if _segment_id(segment) == "ORC" or not groups:
            groups.append([])
        groups[-1].append(segment)
    return groups


class _Context:
    """Resolves a path's segment for one entry (or one order group when ``entry`` is None)."""

    def __init__(
        self,
        message_first: dict[str, Any],
        group: list[Any],
        entry: tuple[str, Any] | None,
        trace: Trace | None = None,
        peer: str = "",
    ) -> None:
        self.message_first = message_first
        self.group_first = _first_by_id(group)
        self.entry = entry
        self.order_key = ""
        self.trace = trace
        self.peer = peer

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


def _host(peer: str) -> str:
    """``10.1.2.3`` of ``10.1.2.3:4000``, ``::1`` of ``[::1]:4000``."""
    host = peer.rsplit(":", 1)[0] if peer.count(":") == 1 or peer.startswith("[") else peer
    return host.strip("[]")


def _map_group(
    spec: MappingSpec,
    group: list[Any],
    message_first: dict[str, Any],
    entry_types: tuple[str, ...],
    observers: tuple[Trace | None, str],
) -> OrderChange | None:
    trace, peer = observers
    context = _Context(message_first, group, None, peer=peer)
    row = control_row(spec, *control_codes(group[0]))
    action = row.action
    if action is ControlAction.IGNORE:
        return None
    key = _order_key(spec, context)
    if action is ControlAction.CANCEL:
        return OrderChange(key, OrderAction.CANCEL)
    if action is ControlAction.STATUS:
        return OrderChange(key, OrderAction.SET_STATUS, status=row.status)
    entry_type, entry_segments = _entry_segments(group, entry_types)
    entries = []
    for segment in entry_segments:
        entry_context = _Context(message_first, group, (entry_type, segment), trace, peer)
        entry_context.order_key = key
        entries.append(_entry(spec, entry_context, row.status))
    return OrderChange(key, OrderAction.SCHEDULE, tuple(entries), status=row.status)


def _entry_segments(group: list[Any], entry_types: tuple[str, ...]) -> tuple[str, list[Any]]:
    for entry_type in entry_types:
        found = [s for s in group if _segment_id(s) == entry_type]
        if found:
            return entry_type, found
    raise MappingError(
        ErrorCode.SEGMENT_SEQUENCE_ERROR,
        entry_types[0],
        f"an order group has no {' or '.join(entry_types)} segment to schedule",
    )


def _order_key(spec: MappingSpec, context: _Context) -> str:
    """First non-empty ``PREFIX:<id>[^<namespace>]`` of the mapping's order_key paths.

    For an EI field (HL7 v2.5.1 §2A.26, ``id^namespace^universal id^type``)
    the namespace is EI-2, else EI-3; a path to one component keys on it alone.
    """
    for part in spec.order_key:
        values = context.read(part.path)
        if not values:
            continue
        value = values[0]
        ident = scalar(value).strip()
        if not ident:
            continue
        namespace = ""
        if part.path.component is None:
            namespace = next((v.strip() for v in value[1:3] if v.strip()), "")
        return f"{part.prefix}:{ident}^{namespace}" if namespace else f"{part.prefix}:{ident}"
    paths = ", ".join(str(p.path) for p in spec.order_key)
    raise MappingError(
        ErrorCode.REQUIRED_FIELD_MISSING,
        str(spec.order_key[0].path),
        f"the order has no key: {paths} are all empty",
    )


def _entry(spec: MappingSpec, context: _Context, status: str) -> MappedEntry:
    if context.trace is not None:
        context.trace.entry(context.order_key)
    entry, _ = _build(spec, spec.rules, context)
    if spec.stations:
        dataset = Dataset.from_json(entry)
        chosen = route(spec.stations, dataset, context.subject)
        if context.trace is not None:
            context.trace.station(chosen)
        entry = dataset_json(dataset)
    # The order-control table is the authority for the step's status (PS3.3 C.4.10).
    entry[_key(_SPS_SEQUENCE_TAG)]["Value"][0][_SPS_STATUS_KEY] = _status(status)
    return MappedEntry(entry)


def _build(
    spec: RuleTables, rules: tuple[Rule, ...], context: _Context
) -> tuple[dict[str, Any], bool]:
    """Build DICOM JSON (PS3.18 F.2) from ``rules``; the flag says whether any value is
    non-empty. Values are written as ``dicom_json`` writes pydicom's elements."""
    dataset: dict[str, Any] = {}
    filled = False
    for rule in rules:
        if isinstance(rule, SequenceRule):
            if context.trace is not None:
                context.trace.sequence(rule.keyword)
            item, item_filled = _build(spec, rule.rules, context)
            if context.trace is not None:
                context.trace.sequence(None)
            if rule.keyword == SPS_SEQUENCE:
                if not item.get(_SPS_STATUS_KEY, {}).get("Value"):
                    item[_SPS_STATUS_KEY] = _status(_SCHEDULED)
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


def _status(status: str) -> dict[str, Any]:
    return {"vr": "CS", "Value": [status]}


def _code_value(
    spec: RuleTables, rule: ValueRule, context: _Context
) -> tuple[ValueRule, list[str]]:
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


def _values(spec: RuleTables, rule: ValueRule, context: _Context) -> list[str]:
    """Evaluate a rule (and its fallbacks), check ``required`` and DICOM conformance."""
    trace = context.trace
    if trace is not None:
        trace.rule(rule)
    current: ValueRule | None = rule
    values: list[str] = []
    while current is not None and not values:
        raw, location = _evaluate(spec, current, context)
        for value in raw:
            text = conform(value, rule, location)
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


def _evaluate(spec: RuleTables, rule: ValueRule, context: _Context) -> tuple[list[str], str | None]:
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
    else:
        values = [_transform(spec, rule, value, location) for value in raw]
    values = [v for v in values if v.strip()]
    if context.trace is not None:
        seeded = _first_scalar(rule.seed, context) if rule.generate is not None else None
        context.trace.evaluated(rule, location, raw, values, seeded)
    if not values and rule.default is not None:
        values = [rule.default]
    return values, location


def _first_scalar(paths: tuple[HL7Path, ...], context: _Context) -> str:
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
        match = rule.extract.search(text[:MAX_MATCHED])
        text = "" if match is None else match.group(1 if rule.extract.groups else 0)
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

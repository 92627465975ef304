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
first in the message (so PID and PV1 come from the patient part); rules are
evaluated by ``broker.mapping.evaluation``. Values cut to fit their VR
(``on_overflow: truncate``) are listed in the result, once per field and
attribute, for the ACK's warnings.

A :class:`Trace` given to :func:`map_message` or :func:`evaluate_rules` is told
how each value was found (``broker.services.preview``); it only observes, and
without one the only cost is an ``is not None`` check per rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset

from broker.errors import HL7Error, MappingError
from broker.hl7.codes import AckCode, ErrorCode
from broker.hl7.paths import scalar
from broker.mapping.evaluation import (
    SPS_SEQUENCE_KEY,
    SPS_STATUS_KEY,
    Context,
    RuleTables,
    build,
    distinct_cuts,
    first_by_id,
    segment_id,
    status_element,
)
from broker.mapping.order_control import control_codes, control_row, refuse_parent_child
from broker.mapping.spec import ControlAction, MappingSpec, Rule
from broker.mapping.stations import route
from broker.mapping.trace import Trace
from broker.worklist.dicom_json import dataset_json
from broker.worklist.model import (
    MappedEntry,
    MappingResult,
    OrderAction,
    OrderChange,
    Truncation,
)

__all__ = ["RuleTables", "Trace", "evaluate_rules", "map_message", "segment_id"]


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
    first_orc = next((i for i, s in enumerate(segments) if segment_id(s) == "ORC"), None)
    if first_orc is None:
        raise MappingError(
            ErrorCode.SEGMENT_SEQUENCE_ERROR, "ORC", f"{message_type} has no ORC segment"
        )
    message_first = first_by_id(segments)
    groups = _order_groups(segments[first_orc:])
    refuse_parent_child(groups)
    changes: list[OrderChange] = []
    cuts: list[Truncation] = []
    for group in groups:
        change = _map_group(spec, group, message_first, entry_types, (trace, peer, cuts))
        if change is None:
            continue
        last = changes[-1] if changes else None
        if last is not None and (last.order_key, last.action) == (change.order_key, change.action):
            changes[-1] = dataclasses.replace(last, entries=last.entries + change.entries)
        else:
            changes.append(change)
    return MappingResult(tuple(changes), spec.name, spec.version, distinct_cuts(cuts))


def evaluate_rules(
    spec: RuleTables,
    rules: tuple[Rule, ...],
    message: Sequence[Any],
    group: Sequence[Any],
    trace: Trace | None = None,
    cuts: list[Truncation] | None = None,
) -> Dataset:
    """Evaluate ``rules`` for one segment group of ``message`` (used by the patient mapping).

    A path's segment is the first of its type in ``group``, else the first in
    the message; values are transformed and checked as for orders, and those
    cut to fit their VR are appended to ``cuts``.
    """
    if trace is not None:
        trace.entry("")
    context = Context(first_by_id(message), list(group), None, trace, cuts=cuts)
    built, _ = build(spec, rules, context)
    return Dataset.from_json(built)


def _order_groups(segments: Sequence[Any]) -> list[list[Any]]:
    groups: list[list[Any]] = []
    for segment in segments:
        if segment_id(segment) == "ORC" or not groups:
            groups.append([])
        groups[-1].append(segment)
    return groups


def _map_group(
    spec: MappingSpec,
    group: list[Any],
    message_first: dict[str, Any],
    entry_types: tuple[str, ...],
    observers: tuple[Trace | None, str, list[Truncation]],
) -> OrderChange | None:
    trace, peer, cuts = observers
    context = Context(message_first, group, None, peer=peer, cuts=cuts)
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
        entry_context = Context(message_first, group, (entry_type, segment), trace, peer, cuts)
        entry_context.order_key = key
        entries.append(_entry(spec, entry_context, row.status))
    return OrderChange(key, OrderAction.SCHEDULE, tuple(entries), status=row.status)


def _entry_segments(group: list[Any], entry_types: tuple[str, ...]) -> tuple[str, list[Any]]:
    for entry_type in entry_types:
        found = [s for s in group if segment_id(s) == entry_type]
        if found:
            return entry_type, found
    raise MappingError(
        ErrorCode.SEGMENT_SEQUENCE_ERROR,
        entry_types[0],
        f"an order group has no {' or '.join(entry_types)} segment to schedule",
    )


def _order_key(spec: MappingSpec, context: Context) -> str:
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


def _entry(spec: MappingSpec, context: Context, status: str) -> MappedEntry:
    if context.trace is not None:
        context.trace.entry(context.order_key)
    entry, _ = build(spec, spec.rules, context)
    if spec.stations:
        dataset = Dataset.from_json(entry)
        chosen = route(spec.stations, dataset, context.subject)
        if context.trace is not None:
            context.trace.station(chosen)
        entry = dataset_json(dataset)
    # The order-control table is the authority for the step's status (PS3.3 C.4.10).
    entry[SPS_SEQUENCE_KEY]["Value"][0][SPS_STATUS_KEY] = status_element(status)
    return MappedEntry(entry)

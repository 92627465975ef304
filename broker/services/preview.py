"""Mapping preview: what the broker would make of one HL7 message, and why.

The library part of ``mwl-broker mapping preview MESSAGE.hl7``. The message goes
through the router's own dispatch (:class:`broker.services.dispatch.Dispatcher`,
built from the same settings): decoded as if it came from ``peer`` (default and
per-sender charsets, the UTF-8 correction, per-sender MSH-7 zones), its type
checked, and mapped by the order or patient mapping the router would choose, with a
:class:`broker.mapping.preview_model.Recorder` recording, per attribute, which
source gave the value (an HL7 path, a constant, a generated value, a fallback,
a default), what was read, the transforms applied and the paths found empty,
and the values cut to fit their VR (``on_overflow: truncate``), which the
sender would be told of by an ERR of severity W in its AA. Nothing is stored;
the router's site checks (MSH-11, MSH-12, accepted senders) and duplicate
detection are not applied. A message that cannot be decoded or mapped gives
what the sender would get: AE/AR, the table 0357 code, the ERR-2 location and
the text. The result types live in
:mod:`broker.mapping.preview_model` and are importable from here too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from broker.errors import HL7Error
from broker.hl7.ack import hl7_location
from broker.hl7.codes import ErrorCode
from broker.hl7.message import MessageDecoder, ParsedMessage, peek_header
from broker.hl7.validate import check_header
from broker.mapping.engine import map_message
from broker.mapping.patient import map_patient_message
from broker.mapping.preview_model import (
    Attempt,
    AttributeTrace,
    ChangePreview,
    Decoding,
    EntryPreview,
    PatientPreview,
    Preview,
    Recorder,
    Stations,
)
from broker.mapping.registry import MappingRegistry
from broker.mapping.spec import SPS_SEQUENCE
from broker.services.dispatch import Dispatcher
from broker.worklist.model import MappingResult, OrderAction, entry_dataset
from broker.worklist.ordering import message_time

__all__ = [
    "Attempt",
    "AttributeTrace",
    "ChangePreview",
    "Decoding",
    "EntryPreview",
    "PatientPreview",
    "Preview",
    "Stations",
    "preview",
    "render",
    "trace_notes",
]

_SPS_STATUS = f"{SPS_SEQUENCE} > ScheduledProcedureStepStatus"

# The step status is the order_control row's, whatever a rule says (engine._entry).
_CONTROL = Attempt(0, "order_control", "order_control row (ORC-1, ORC-5)", (), (), (), (), None)


def preview(
    raw: bytes,
    registry: MappingRegistry,
    dispatch: Dispatcher | MessageDecoder,
    peer: str = "",
) -> Preview:
    """Decode ``raw`` as received from ``peer`` (``""``: from no configured sender), map it
    with ``registry``'s mapping for its type, trace every value. ``dispatch`` is the
    router's dispatch, or a bare decoder (then no sender is known by its address).

    Never raises :class:`HL7Error`: a message that cannot be decoded or mapped
    gives a :class:`Preview` whose ``error`` is what the router would answer.
    """
    if isinstance(dispatch, MessageDecoder):
        dispatch = Dispatcher(dispatch)
    header = peek_header(raw) or {}
    message_type, control_id = header.get("message_type", ""), header.get("control_id", "")
    recorder, name, version, decoding = Recorder(), "", "", None
    try:
        parsed = dispatch.decode(raw, peer)
        message_type, control_id = parsed.message_type, parsed.control_id
        decoding = _decoding(parsed)
        # The router's type check; its site settings (MSH-11, MSH-12, senders) are not applied.
        check_header(parsed, dispatch.type_policy(registry, parsed))
        spec, patient_spec = dispatch.route(parsed, registry)
        if patient_spec is not None:
            name, version = patient_spec.name, patient_spec.version
            adt = map_patient_message(
                parsed.segments, patient_spec, message_type=message_type, trace=recorder
            )
        else:
            assert spec is not None  # check_header refused every type without a mapping
            name, version = spec.name, spec.version
            mapped = map_message(parsed.segments, spec, message_type=message_type, trace=recorder)
    except HL7Error as e:
        failed = recorder.failed(e)
        return Preview(
            message_type, control_id, name, version, error=e, failed_trace=failed, decoding=decoding
        )
    traces = iter(recorder.datasets)  # one per dataset, in the order of the results
    if spec is None:
        patients = tuple(
            PatientPreview(c.patient_id, c.prior_id, c.attributes, tuple(next(traces, [])))
            for c in adt.changes
        )
        head = (message_type, control_id, name, version)
        return Preview(*head, (), adt.action, patients, decoding=decoding, warnings=adt.truncations)
    changes = _order_changes(mapped, traces, recorder)
    head = (message_type, control_id, name, version)
    return Preview(*head, changes=changes, decoding=decoding, warnings=mapped.truncations)


def _order_changes(
    mapped: MappingResult, traces: Iterator[list[AttributeTrace]], recorder: Recorder
) -> tuple[ChangePreview, ...]:
    """Each order change with its entries, their traces and the stations that see them."""
    changes, index = [], 0
    for change in mapped.changes:
        entries = []
        for entry in change.entries:
            dataset = entry_dataset(entry)
            rows = [r for r in next(traces, []) if r.attribute != _SPS_STATUS]
            status = AttributeTrace(_SPS_STATUS, (_CONTROL,), (change.status,))
            stations = _stations(dataset, recorder.routes.get(index))
            entries.append(EntryPreview(dataset, (*rows, status), stations))
            index += 1
        key, status_ = change.order_key, change.status
        changes.append(ChangePreview(change.action, key, status_, tuple(entries)))
    return tuple(changes)


def _decoding(parsed: ParsedMessage) -> Decoding:
    sent = message_time(parsed.message_datetime, parsed.zone)
    zone = str(parsed.zone) if parsed.zone is not None else ""
    utc = sent.earliest if sent is not None else ""
    return Decoding(parsed.charset, parsed.charset_mislabelled, parsed.message_datetime, zone, utc)


def _stations(entry: Dataset, routed_by: str | None) -> Stations:
    sps = entry.get(SPS_SEQUENCE)
    item = sps[0] if sps else Dataset()
    titles = item.get("ScheduledStationAETitle", "")
    listed = titles if isinstance(titles, MultiValue) else [titles]
    keywords = ("Modality", "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime")
    modality, date, time = (str(item.get(k, "")) for k in keywords)
    status = str(item.get("ScheduledProcedureStepStatus", ""))
    titles_ = tuple(str(t) for t in listed if str(t).strip())
    return Stations(titles_, modality, date, time, status, routed_by)


def render(result: Preview) -> str:
    """The preview as text for a terminal: header, per entry a DICOM dump, trace and stations."""
    version = f"  version {result.mapping_version}" if result.mapping_version else ""
    lines = [
        f"Message  {result.message_type or '(unknown)'}  control ID {result.control_id or '-'}",
        f"Mapping  {result.mapping_name or '(none)'}{version}",
        *_decoding_lines(result.decoding),
    ]
    error = result.error
    if error is not None:
        erl, code = "^".join(hl7_location(error.location)) or "(none)", error.err_code
        lines += [
            f"Outcome  {result.outcome}",
            f"ACK      MSA-1 {error.ack_code.value}, ERR-2 {erl}, "
            f"ERR-3 {code.value}^{code.text}^HL70357, ERR-8 {error.text}",
        ]
        if result.failed_trace:
            lines += ["", "Trace up to the failing attribute:", *_table(result.failed_trace, "  ")]
    elif result.patient_action is not None:
        lines.append(f"Outcome  AA: patient {result.patient_action.value}")
        lines += _warnings(result)
        for patient in result.patients:
            prior = f" (replaces {patient.prior_id})" if patient.prior_id else ""
            lines += ["", f"Patient {patient.patient_id}{prior}", *_dump(patient.attributes, "  ")]
            lines += ["", "  Trace:", *_table(patient.trace, "  ", patient=True)]
    else:
        count = sum(len(c.entries) for c in result.changes)
        lines.append(f"Outcome  AA: {len(result.changes)} order change(s), {count} entry(ies)")
        lines += _warnings(result)
        for change in result.changes:
            lines += ["", f"Order {change.order_key}: {_action(change)}"]
            for number, entry in enumerate(change.entries, 1):
                lines += ["", f"  Entry {number} of {len(change.entries)}"]
                lines += [*_dump(entry.dataset, "    "), "", "    Trace:"]
                lines += [*_table(entry.trace, "    "), ""]
                lines.append(f"    Stations: {entry.stations.describe()}")
    return "\n".join(lines) + "\n"


def _decoding_lines(decoding: Decoding | None) -> list[str]:
    """The charset the bytes were read in, and MSH-7 as the ordering check reads it."""
    if decoding is None:
        return []
    lines = [f"Charset  {decoding.charset}"]
    if decoding.mislabelled:
        lines[0] += " (declared single-byte, but the bytes are UTF-8)"
    if decoding.sent:
        zone = decoding.zone or "the broker host's zone"
        u = decoding.sent_utc
        utc = (
            f"{u[:4]}-{u[4:6]}-{u[6:8]} {u[8:10]}:{u[10:12]}:{u[12:14]} UTC" if u else "unreadable"
        )
        lines.append(f"Sent     MSH-7 {decoding.sent} = {utc} (without an offset: {zone})")
    return lines


def _warnings(result: Preview) -> list[str]:
    """The ERR segments of severity W the AA would carry (HL7 v2.5.1 §2.15.5, table 0516)."""
    code = ErrorCode.VALUE_TOO_LONG
    return [
        f"ACK      ERR-2 {'^'.join(hl7_location(cut.location)) or '(none)'}, "
        f"ERR-3 {code.value}^{code.text}^HL70357, ERR-4 W, ERR-8 {cut.text}"
        for cut in result.warnings
    ]


def _action(change: ChangePreview) -> str:
    if change.action is OrderAction.CANCEL:
        return "cancel (its entries leave the worklist)"
    if change.action is OrderAction.SET_STATUS:
        return f"status {change.status} set on its entries"
    return f"schedule {len(change.entries)} entry(ies), status {change.status}"


def _dump(dataset: Dataset, indent: str) -> list[str]:
    lines = []
    for element in dataset:
        head = f"{indent}({element.tag.group:04X},{element.tag.element:04X}) {element.VR} "
        if element.VR == "SQ":
            lines.append(head + element.keyword)
            for number, item in enumerate(element.value, 1):
                lines += [f"{indent}  Item {number}", *_dump(item, indent + "    ")]
        else:
            value = element.value
            text = "\\".join(map(str, value)) if isinstance(value, MultiValue) else str(value)
            lines.append(f"{head}{element.keyword:<31} {text}".rstrip())
    return lines


def _table(rows: Sequence[AttributeTrace], indent: str, *, patient: bool = False) -> list[str]:
    """Attribute, source, value, notes; a sequence's attributes indented under it."""
    body = [("attribute", "source", "value", "notes")]
    shown: list[str] = []  # the sequences of the previous row
    for row in rows:
        *sequences, keyword = row.attribute.split(" > ")
        same = 0
        while same < min(len(sequences), len(shown)) and sequences[same] == shown[same]:
            same += 1
        body += [("  " * i + f"{s} >", "", "", "") for i, s in enumerate(sequences) if i >= same]
        shown = sequences
        notes = trace_notes(row)
        if patient and not row.value and row.error is None:
            notes.append("not carried: no change")
        value = "\\".join(row.value) if row.value else "(empty)"
        body.append(("  " * len(sequences) + keyword, row.source, value, "; ".join(notes)))
    widths = [max(len(r[i]) for r in body) for i in range(3)]
    return [
        f"{indent}{a:<{widths[0]}}  {s:<{widths[1]}}  {v:<{widths[2]}}  {n}".rstrip()
        for a, s, v, n in body
    ]


def trace_notes(row: AttributeTrace) -> list[str]:
    notes = [f"empty: {', '.join(row.tried)}"] if row.tried else []
    for attempt in row.attempts:
        if not attempt.raw:
            continue
        read = ", ".join(map(repr, attempt.raw))
        steps = "".join(f" -> {step}" for step in attempt.steps)
        if attempt is row.attempts[-1] and row.value:
            if steps or attempt.raw != row.value:
                notes.append(f"read {read}{steps}")
        else:  # read, but gave nothing usable: why the next source was used, or the error
            gave = ", ".join(map(repr, attempt.values)) or "nothing"
            result = f" -> {gave}" if steps or not attempt.values else ""
            notes.append(f"{attempt.source} read {read}{steps}{result}")
    if row.attempts and row.attempts[-1].default is not None and row.value:
        notes.append(f"default {row.attempts[-1].default!r}")
    for cut in row.cuts:
        per = " per name group" if cut.vr == "PN" else ""
        notes.append(
            f"cut from {cut.length} to {cut.limit} characters (VR {cut.vr}{per}): warning 104"
        )
    if row.error is not None:
        notes.append(row.error)
    return notes

"""An outbound status message built from an event and the outbound mapping (pure).

:func:`build_status_message` makes the HL7 v2 text (segments separated by CR) of one
status event: MSH from the spec and the broker's identity (MSH-10 is the event's
control id, the same on every attempt, so a receiver can de-duplicate), then the
spec's segments with their values escaped (HL7 v2.5.1 §2.7). A person name keeps
its components (``Doe^John``). Times are UTC with their offset (``+0000``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydicom.datadict import tag_for_keyword

from broker.hl7.paths import escape
from broker.mapping.outbound_spec import FieldRule, OutboundSpec

__all__ = ["StatusEvent", "UnmappedStatus", "build_status_message"]

_SPS = "00400100"
_ENCODING = "^~\\&"


class UnmappedStatus(ValueError):
    """The outbound mapping has no row for the event's status: nothing to send."""


@dataclass(frozen=True, repr=False)
class StatusEvent:
    """What a status message is built from: the entry's DICOM JSON (patient data: not in
    the repr), its new status, the event's control id, time and entry id."""

    ds: Mapping[str, Any]
    status: str
    control_id: str
    at: float
    entry_id: str

    def __repr__(self) -> str:
        return f"StatusEvent({self.status}, control_id={self.control_id!r})"


def build_status_message(
    spec: OutboundSpec, event: StatusEvent, *, application: str, facility: str
) -> str:
    """The message's text; UnmappedStatus when ``spec`` has no row for its status."""
    row = spec.statuses.get(event.status)
    if row is None:
        raise UnmappedStatus(f"the outbound mapping {spec.source} has no row for {event.status}")
    msh = ["MSH", _ENCODING, _esc(application), _esc(facility),
           _esc(spec.receiving_application), _esc(spec.receiving_facility),
           hl7_time(event.at), "", spec.message, _esc(event.control_id),
           spec.processing_id, spec.hl7_version]  # fmt: skip
    segments = ["|".join(msh)]
    for segment in spec.segments:
        segments.append(_segment(segment.name, segment.fields, event, row))
    text = "\r".join(segments)
    if not text.isascii():
        segments[0] += "|" * (17 - len(msh)) + "|UNICODE UTF-8"  # MSH-18
        text = "\r".join(segments)
    return text


def hl7_time(at: float) -> str:
    """HL7 DTM of an epoch time, in UTC with its offset."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y%m%d%H%M%S+0000")


def _segment(
    name: str, rules: tuple[FieldRule, ...], event: StatusEvent, row: Mapping[str, str]
) -> str:
    fields: dict[int, dict[int, str]] = {}
    for rule in rules:
        fields.setdefault(rule.field, {})[rule.component] = _value(rule, event, row)
    out = [name]
    for number in range(1, max(fields, default=0) + 1):
        parts = fields.get(number, {})
        if 0 in parts:
            out.append(parts[0])
        else:
            last = max(parts, default=0)
            out.append("^".join(parts.get(i, "") for i in range(1, last + 1)))
    return "|".join(out)


def _value(rule: FieldRule, event: StatusEvent, row: Mapping[str, str]) -> str:
    if rule.source == "constant":
        return _esc(rule.name)
    if rule.source == "status":
        return _esc(row.get(rule.name, ""))
    if rule.source == "event":
        values = {"time": hl7_time(event.at), "status": event.status,
                  "control_id": event.control_id, "entry": event.entry_id}  # fmt: skip
        return _esc(values[rule.name])
    ds: Mapping[str, Any] = event.ds
    if rule.source == "sps":
        items = (ds.get(_SPS) or {}).get("Value") or [{}]
        ds = items[0] if isinstance(items[0], Mapping) else {}
    return _attribute(ds, rule.name)


def _attribute(ds: Mapping[str, Any], keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    element = ds.get(f"{tag:08X}") if tag is not None else None
    values = (element or {}).get("Value") or []
    if not values:
        return ""
    value = values[0]
    if isinstance(value, Mapping):  # PN: its alphabetic group, components kept
        return "^".join(_esc(part) for part in str(value.get("Alphabetic", "")).split("^"))
    return _esc(str(value))


def _esc(text: str) -> str:
    return escape(text, "\\", "\r|~^&")

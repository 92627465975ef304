"""The outbound mapping (``kind: outbound``): which HL7 message tells the RIS a status.

One file of the mapping set (``mappings/outbound.yaml``) says, declaratively, how a
status event (``broker.store.outbound``) becomes an HL7 message: the message type
and version of MSH, what each worklist status says (``statuses``: ORC-1 order
control, ORC-5 order status, per IHE RAD TF-2 and HL7 v2.5.1 tables 0119 and 0038),
and the segments after MSH with their fields, each from one source::

    segments:
      - ORC:
          1: {status: order_control}         # a value of the event's statuses row
          2: {attribute: PlacerOrderNumberImagingServiceRequest}   # the entry (DICOM)
          3.1: {attribute: FillerOrderNumberImagingServiceRequest} # a component
          5: {status: order_status}
          9: {event: time}                   # time, status, control_id, entry
          16: "constant text"                # a plain value is a constant

``{sps: Keyword}`` reads the entry's Scheduled Procedure Step item. A status
without a row is not sent: its event is parked with that reason. Every error
names the file, the line and the field (``outbound.yaml:31: segments[2].ORC.5``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import tag_for_keyword

from broker.mapping.parser_base import ParserBase, suggest

__all__ = ["FieldRule", "OutboundSpec", "SegmentRule", "parse_outbound_mapping"]

_TOP = ("kind", "name", "message", "version", "processing_id", "receiving_application",
        "receiving_facility", "statuses", "segments")  # fmt: skip
_SOURCES = ("attribute", "sps", "status", "event", "constant")
_EVENT_VALUES = frozenset({"time", "status", "control_id", "entry"})
_MESSAGE = re.compile(r"[A-Z0-9]{3}\^[A-Z0-9]{3}(\^[A-Z0-9_]{3,7})?")
_SEGMENT = re.compile(r"[A-Z][A-Z0-9]{2}")
_FIELD = re.compile(r"([1-9][0-9]{0,2})(?:\.([1-9][0-9]?))?")
_STATUSES = frozenset({"SCHEDULED", "ARRIVED", "READY", "STARTED", "DEPARTED", "CANCELED",
                       "DISCONTINUED", "COMPLETED"})  # fmt: skip


@dataclass(frozen=True)
class FieldRule:
    """One field (or component) of a segment and where its value comes from."""

    field: int
    component: int  # 0: the whole field
    source: str  # one of _SOURCES
    name: str  # the keyword, the statuses column, the event value or the constant


@dataclass(frozen=True)
class SegmentRule:
    name: str
    fields: tuple[FieldRule, ...]


@dataclass(frozen=True)
class OutboundSpec:
    """A validated outbound mapping."""

    source: str
    version: str  # of the file (like the other mappings: its digest)
    name: str
    message: str  # MSH-9
    hl7_version: str  # MSH-12
    processing_id: str  # MSH-11
    receiving_application: str
    receiving_facility: str
    statuses: Mapping[str, Mapping[str, str]]
    segments: tuple[SegmentRule, ...]
    message_types: frozenset[str] = field(default=frozenset())  # handles no inbound type


def parse_outbound_mapping(
    data: object, *, source: str, version: str, default_name: str,
    lines: Mapping[str, int] | None = None,
) -> OutboundSpec:  # fmt: skip
    """Validate a ``kind: outbound`` mapping's data; ConfigError names file, line, rule."""
    return _OutboundParser(source, lines).outbound(data, version, default_name)


class _OutboundParser(ParserBase):
    def outbound(self, data: object, version: str, default_name: str) -> OutboundSpec:
        top = self.dict_of("(top level)", data)
        for key in top:
            if key not in _TOP:
                self.fail(key, f"unknown setting{suggest(key, _TOP)}")
        for key in ("message", "statuses", "segments"):
            if key not in top:
                self.fail(key, "missing: this section is required")
        message = self.text("message", top["message"])
        if not _MESSAGE.fullmatch(message):
            self.fail("message", f"{message!r} is not an HL7 message type such as ORM^O01")
        statuses = self.statuses(top["statuses"])
        columns = {column for row in statuses.values() for column in row}
        segments = self.segments(top["segments"], columns)
        texts = {k: self.text(k, top.get(k, d)) for k, d in (
            ("name", default_name), ("version", "2.5.1"), ("processing_id", "P"),
            ("receiving_application", ""), ("receiving_facility", ""))}  # fmt: skip
        return OutboundSpec(
            source=self.source, version=version, name=texts["name"], message=message,
            hl7_version=texts["version"], processing_id=texts["processing_id"],
            receiving_application=texts["receiving_application"],
            receiving_facility=texts["receiving_facility"], statuses=statuses,
            segments=segments,
        )  # fmt: skip

    def statuses(self, raw: object) -> dict[str, dict[str, str]]:
        rows: dict[str, dict[str, str]] = {}
        for status, row in self.dict_of("statuses", raw).items():
            rule = f"statuses.{status}"
            if status not in _STATUSES:
                self.fail(rule, f"not a worklist status{suggest(status, _STATUSES)}")
            values = self.dict_of(rule, row)
            rows[status] = {k: self.text(f"{rule}.{k}", v) for k, v in values.items()}
        return rows

    def segments(self, raw: object, columns: set[str]) -> tuple[SegmentRule, ...]:
        if not isinstance(raw, list) or not raw:
            self.fail("segments", "must be a list of segments (- ORC: {...})")
        out = []
        for index, item in enumerate(raw, 1):
            rule = f"segments[{index}]"
            one = self.dict_of(rule, item)
            if len(one) != 1:
                self.fail(rule, "one segment per list item: - ORC: {field: source}")
            (name, fields), = one.items()  # fmt: skip
            if not _SEGMENT.fullmatch(name) or name == "MSH":
                self.fail(f"{rule}.{name}", "a segment name such as ORC (MSH is built for you)")
            if not isinstance(fields, dict) or not fields:
                self.fail(f"{rule}.{name}", "must be a non-empty mapping: field: source")
            rules = [self.field(f"{rule}.{name}", k, v, columns) for k, v in fields.items()]
            out.append(
                SegmentRule(name, tuple(sorted(rules, key=lambda r: (r.field, r.component))))
            )
        return tuple(out)

    def field(self, where: str, key: object, raw: object, columns: set[str]) -> FieldRule:
        rule = f"{where}.{key}"
        found = _FIELD.fullmatch(str(key))
        if found is None:
            self.fail(rule, "a field number (5) or field.component (3.1)")
        number, component = int(found.group(1)), int(found.group(2) or 0)
        if not isinstance(raw, dict):
            return FieldRule(number, component, "constant", self.text(rule, raw))
        if len(raw) != 1 or next(iter(raw)) not in _SOURCES:
            self.fail(rule, f"one source: {{{' | '.join(_SOURCES)}: ...}}")
        ((source, value),) = raw.items()
        name = self.text(f"{rule}.{source}", value)
        if source in ("attribute", "sps") and tag_for_keyword(name) is None:
            self.fail(rule, f"{name!r} is not a DICOM keyword")
        if source == "status" and name not in columns:
            self.fail(rule, f"{name!r} is no column of statuses{suggest(name, columns)}")
        if source == "event" and name not in _EVENT_VALUES:
            self.fail(rule, f"event: one of {', '.join(sorted(_EVENT_VALUES))}")
        return FieldRule(number, component, source, name)


def is_outbound(data: Any) -> bool:
    """Whether YAML data is an outbound mapping (``kind: outbound``)."""
    return isinstance(data, dict) and data.get("kind") == "outbound"

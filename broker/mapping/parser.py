"""Reading mapping files: YAML with ``yaml.SafeLoader``, validated into ``broker.mapping.spec``.

This module holds the file and its top-level sections (message types, order
control, order key, tables, stations); the ``attributes:`` rules are parsed by
``broker.mapping.rule_parser``, errors, scalars and paths by
``broker.mapping.parser_base``.

Every DICOM keyword is checked against pydicom's data dictionary (PS3.6) when
the file is loaded, with a "did you mean" suggestion, and every HL7 path,
transform and table name is checked too, so a mapping that loads cannot fail
on its own content at run time. HL7 paths are checked against the HL7
standard (``broker.mapping.hl7_structure``) for the message types and versions
the file handles: a path must exist in at least one of them. Errors are
:class:`broker.errors.ConfigError` naming the file, the line when the text is
known, and the rule (``orders.yaml:70: attributes.PatientName``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from pydicom import config as dicom_config
from pydicom.valuerep import validate_value

from broker.mapping.hl7_structure import Target, default_versions
from broker.mapping.parser_base import suggest
from broker.mapping.rule_parser import RuleParser
from broker.mapping.source import read_mapping_source
from broker.mapping.spec import (
    SPS_SEQUENCE,
    SPS_STATUSES,
    TEXT_VRS,
    ControlAction,
    ControlRow,
    LookupTable,
    MappingSpec,
    OrderKeyPart,
)
from broker.mapping.stations import StationRule, parse_stations

__all__ = [
    "MappingParser",
    "load_mapping",
    "parse_mapping",
    "suggest",
]

_TOP_KEYS = (
    "kind",
    "name",
    "description",
    "message_types",
    "order_control",
    "order_key",
    "tables",
    "attributes",
    "stations",
)
_MESSAGE_TYPE_RE = re.compile(r"[A-Z0-9]{3}\^[A-Z0-9]{3}")
_SEGMENT_RE = re.compile(r"[A-Z0-9]{3}")
_PREFIX_RE = re.compile(r"[A-Z][A-Z0-9_]*")


def load_mapping(path: Path) -> MappingSpec:
    """Read and validate one mapping file (``yaml.SafeLoader``: data only, no code)."""
    data, version, lines = read_mapping_source(path)
    return parse_mapping(
        data, source=path.name, version=version, default_name=path.stem, lines=lines
    )


def parse_mapping(
    data: object,
    *,
    source: str,
    version: str,
    default_name: str,
    lines: Mapping[str, int] | None = None,
) -> MappingSpec:
    """Validate already-loaded YAML data (also used to preview an edited mapping).

    ``lines`` (from ``broker.mapping.source.rule_lines``) puts the line of the rule in errors.
    """
    return MappingParser(source, lines).mapping(data, version, default_name)


class MappingParser(RuleParser):
    """Validates one order mapping file's data: the top level and its sections.

    Its message-type section sets :attr:`targets` before any path is read.
    """

    def mapping(self, data: object, version: str, default_name: str) -> MappingSpec:
        top = self.dict_of("(top level)", data)
        for key in top:
            if key not in _TOP_KEYS:
                self.fail(key, f"unknown setting{suggest(key, _TOP_KEYS)}")
        if top.get("kind", "orders") != "orders":
            self.fail("kind", "an order mapping has kind: orders (patient mappings: kind: patient)")
        for key in ("message_types", "order_control", "order_key", "attributes"):
            if key not in top:
                self.fail(key, "missing: this section is required")
        name = self.text("name", top.get("name", default_name))
        entry_per = self.message_types(top["message_types"])  # first: sets the path targets
        self.tables = self.parse_tables(top.get("tables", {}))
        rules = self.rules("attributes", top["attributes"])
        if not any(r.keyword == SPS_SEQUENCE for r in rules):
            self.fail("attributes", f"{SPS_SEQUENCE} is missing: each entry is one of its items")
        return MappingSpec(
            name=name,
            version=version,
            source=self.source,
            entry_per=MappingProxyType(entry_per),
            order_control=MappingProxyType(self.order_control(top["order_control"])),
            order_key=self.order_key(top["order_key"]),
            tables=MappingProxyType(self.tables),
            rules=rules,
            stations=self.stations(top.get("stations")),
        )

    # -- top-level sections -------------------------------------------------------
    def message_types(self, data: object) -> dict[str, tuple[str, ...]]:
        """``TYPE: {entry_per: SEG, versions: [...]}``; also sets :attr:`targets`."""
        result: dict[str, tuple[str, ...]] = {}
        targets: list[Target] = []
        for mtype, raw in self.dict_of("message_types", data).items():
            rule = f"message_types.{mtype}"
            if not _MESSAGE_TYPE_RE.fullmatch(mtype):
                self.fail(
                    rule, "a message type is written CODE^EVENT (MSH-9.1^MSH-9.2), e.g. ORM^O01"
                )
            versions = default_versions(mtype)
            if isinstance(raw, dict):
                if "entry_per" not in raw or not set(raw) <= {"entry_per", "versions"}:
                    self.fail(rule, "a message type has entry_per and optional versions")
                if "versions" in raw:
                    versions = self.versions(f"{rule}.versions", raw["versions"])
                raw = raw["entry_per"]
            segments = [self.text(rule, s) for s in (raw if isinstance(raw, list) else [raw])]
            if not segments or not all(_SEGMENT_RE.fullmatch(s) for s in segments):
                self.fail(rule, "entry_per is a segment id (OBR, IPC) or a list of them")
            result[mtype] = tuple(segments)
            targets += (Target(mtype, v) for v in versions)
        self.targets = tuple(targets)
        return result

    def order_control(self, data: object) -> dict[str, ControlRow]:
        """Rows ``ORC-1[/ORC-5]: action`` or ``{action:, status:}`` (HL7 tables 0119, 0038)."""
        actions = [a.value for a in ControlAction]
        result: dict[str, ControlRow] = {}
        for code, raw in self.dict_of("order_control", data).items():
            rule = f"order_control.{code}"
            if not re.fullmatch(r"[A-Z0-9]{2}(/[A-Z0-9]{0,2})?", str(code)):
                self.fail(rule, "a row is ORC-1 (any ORC-5), ORC-1/ORC-5, or ORC-1/ (empty ORC-5)")
            if str(code)[:2] in ("PA", "CH"):  # broker.mapping.order_control.refuse_parent_child
                self.fail(rule, "parent/child orders (PA, CH) are always refused; no row applies")
            fields = raw if isinstance(raw, dict) else {"action": raw}
            unknown = set(fields) - {"action", "status"}
            if unknown:
                self.fail(rule, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
            action = self.text(rule, fields.get("action"))
            if action not in actions:
                self.fail(rule, f"{action!r} is not one of {', '.join(actions)}")
            status = self.text(rule, fields.get("status", "SCHEDULED"))
            if status not in SPS_STATUSES:
                self.fail(
                    rule, f"status {status!r} is not one of {', '.join(sorted(SPS_STATUSES))}"
                )
            result[str(code)] = ControlRow(ControlAction(action), status)
        return result

    def order_key(self, data: object) -> tuple[OrderKeyPart, ...]:
        if not isinstance(data, list) or not data:
            self.fail("order_key", "must be a list of 'PREFIX: PATH' lines, e.g. '- PLACER: ORC-2'")
        parts: list[OrderKeyPart] = []
        for index, item in enumerate(data, 1):
            rule = f"order_key[{index}]"
            if not isinstance(item, dict) or len(item) != 1:
                self.fail(rule, "each entry is one 'PREFIX: PATH' pair, e.g. 'PLACER: ORC-2'")
            ((prefix, raw),) = item.items()
            if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
                self.fail(rule, f"prefix {prefix!r} must be upper-case letters, digits or _")
            path = self.path(rule, raw, at=f"{rule}.{prefix}")
            if path.all_repetitions:
                self.fail(rule, "an order key path takes one repetition, not [*]")
            parts.append(OrderKeyPart(prefix, path))
        return tuple(parts)

    def parse_tables(self, data: object) -> dict[str, LookupTable]:
        if data in ({}, None):
            return {}
        tables: dict[str, LookupTable] = {}
        for name, raw in self.dict_of("tables", data).items():
            rule = f"tables.{name}"
            if not isinstance(raw, dict) or not set(raw) <= {"rows", "default"}:
                self.fail(rule, "a table has 'rows:' (code: value lines) and optional 'default:'")
            rows_raw = raw.get("rows") or {}
            if not isinstance(rows_raw, dict):
                self.fail(f"{rule}.rows", "must be a mapping of code: value")
            rows = {
                self.text(f"{rule}.rows", k): self.text(f"{rule}.rows.{k}", v)
                for k, v in rows_raw.items()
            }
            default = self.text(f"{rule}.default", raw["default"]) if "default" in raw else None
            tables[name] = LookupTable(name, MappingProxyType(rows), default)
        return tables

    def stations(self, raw: object) -> tuple[StationRule, ...]:
        """The ``stations:`` routing rules (``broker.mapping.stations``)."""
        rules = parse_stations(raw, self.fail, self.station_values)
        for rule in rules:
            self.check_conditions(f"stations ({rule.name})", rule.when)
        return rules

    def station_values(self, rule: str, keyword: str, values: list[str]) -> list[str]:
        """Values a station rule sets: a string attribute, valid for its VR (PS3.5 §6.2)."""
        _, vr, vm = self.element(rule, keyword)
        if vr not in TEXT_VRS or keyword == "ScheduledProcedureStepStatus":
            self.fail(rule, f"{keyword} (VR {vr}) cannot be set by a station rule")
        if len(values) > 1 and vm == "1":
            self.fail(rule, f"{keyword} takes one value")
        for value in values:
            try:
                validate_value(vr, value, dicom_config.RAISE)
            except ValueError as e:
                self.fail(rule, f"{value!r} is not a valid {keyword} (VR {vr}): {e}")
        return values

"""Patient mapping files (``kind: patient``): ADT events → patient updates.

Same rule language as the order mappings (paths, transforms, tables,
``required``; see ``mappings/README.md``), with an ``events`` table instead of
``message_types``/``order_control``/``order_key``. Which ADT events matter to a
worklist follows IHE RAD TF-2 RAD-1 (Patient Registration: A01, A04, A05, A11,
A38) and RAD-12 (Patient Update: A02, A03, A06, A07, A08, A40), plus A31
(update person information, structure ADT_A05) and A47 (change patient
identifier, HL7 v2.5.1 §3.3.47).

:func:`load_any_mapping` reads a file of either kind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from broker.errors import ConfigError
from broker.hl7.paths import HL7Path
from broker.mapping.hl7_structure import Target, default_versions
from broker.mapping.outbound_spec import OutboundSpec, is_outbound, parse_outbound_mapping
from broker.mapping.parser import MappingParser, parse_mapping
from broker.mapping.parser_base import suggest
from broker.mapping.source import read_mapping_bytes, read_mapping_source
from broker.mapping.spec import (
    SPS_SEQUENCE,
    LookupTable,
    MappingSpec,
    Rule,
    ValueRule,
)
from broker.worklist.model import PatientAction

__all__ = [
    "ORDER_LEVEL_KEYWORDS",
    "AnySpec",
    "PatientSpec",
    "load_any_mapping",
    "parse_any_mapping",
    "parse_patient_mapping",
]

_TOP_KEYS = ("kind", "name", "description", "events", "prior_patient_id", "tables", "attributes")
_ADT_TYPE_RE = re.compile(r"[A-Z0-9]{3}\^[A-Z0-9]{3}")
# What identifies an order or its step: an ADT never changes these.
ORDER_LEVEL_KEYWORDS = frozenset(
    {
        SPS_SEQUENCE,
        "AccessionNumber",
        "StudyInstanceUID",
        "RequestedProcedureID",
        "PlacerOrderNumberImagingServiceRequest",
        "FillerOrderNumberImagingServiceRequest",
    }
)


@dataclass(frozen=True)
class PatientSpec:
    """A validated patient mapping; ``version`` is a short sha256 of the file's bytes."""

    name: str
    version: str
    source: str
    events: Mapping[str, PatientAction]  # "ADT^A08" → update
    prior_patient_id: tuple[HL7Path, ...]  # MRG-1: the identifier a merge retires
    tables: Mapping[str, LookupTable]
    rules: tuple[Rule, ...]

    @property
    def message_types(self) -> frozenset[str]:
        """The message types (``"ADT^A08"``) this mapping handles."""
        return frozenset(self.events)


AnySpec = MappingSpec | PatientSpec | OutboundSpec  # what a file of the mapping set holds


def load_any_mapping(path: Path) -> AnySpec:
    """Read one mapping file of any kind (``kind: patient``, ``kind: outbound`` or orders,
    the default)."""
    data, version, lines = read_mapping_source(path)
    return parse_any_mapping(
        data, source=path.name, version=version, default_name=path.stem, lines=lines
    )


def load_any_mapping_text(name: str, text: str) -> AnySpec:
    """:func:`load_any_mapping` for the text of a file called ``name`` (a published version)."""
    if Path(name).name != name or not name.endswith(".yaml"):
        raise ConfigError(name, "a mapping file name is a plain name ending in .yaml")
    data, version, lines = read_mapping_bytes(name, text.encode("utf-8"))
    return parse_any_mapping(
        data, source=name, version=version, default_name=name.removesuffix(".yaml"), lines=lines
    )


def parse_any_mapping(
    data: object,
    *,
    source: str,
    version: str,
    default_name: str,
    lines: Mapping[str, int] | None = None,
) -> AnySpec:
    """Validate YAML data of any kind of mapping (``lines``: see ``source.rule_lines``)."""
    if is_outbound(data):
        return parse_outbound_mapping(
            data, source=source, version=version, default_name=default_name, lines=lines
        )
    if isinstance(data, dict) and data.get("kind") == "patient":
        return parse_patient_mapping(
            data, source=source, version=version, default_name=default_name, lines=lines
        )
    return parse_mapping(
        data, source=source, version=version, default_name=default_name, lines=lines
    )


def parse_patient_mapping(
    data: object,
    *,
    source: str,
    version: str,
    default_name: str,
    lines: Mapping[str, int] | None = None,
) -> PatientSpec:
    """Validate a ``kind: patient`` mapping's data."""
    return _PatientParser(source, lines).patient_mapping(data, version, default_name)


class _PatientParser(MappingParser):
    """The order parser's scalar, table and rule checks plus the patient sections."""

    def patient_mapping(self, data: object, version: str, default_name: str) -> PatientSpec:
        top = self.dict_of("(top level)", data)
        for key in top:
            if key not in _TOP_KEYS:
                self.fail(key, f"unknown setting{suggest(key, _TOP_KEYS)}")
        for key in ("events", "attributes"):
            if key not in top:
                self.fail(key, "missing: this section is required")
        events = self.events(top["events"])
        self.tables = self.parse_tables(top.get("tables", {}))
        rules = self.rules("attributes", top["attributes"])
        self.check_rules(rules)
        prior: tuple[HL7Path, ...] = ()
        moving = sorted(t for t, a in events.items() if a in _MOVES)
        if "prior_patient_id" in top:
            # Only merges read it: checked against their structures (A40: ADT_A39…).
            every = self.targets
            self.targets = tuple(t for t in every if t.message_type in moving)
            prior = self.paths("prior_patient_id", top["prior_patient_id"])
            self.targets = every
        if moving and not prior:
            self.fail(
                "prior_patient_id",
                f"missing: {', '.join(moving)} need the retired identifier, e.g. MRG-1",
            )
        return PatientSpec(
            name=self.text("name", top.get("name", default_name)),
            version=version,
            source=self.source,
            events=MappingProxyType(events),
            prior_patient_id=prior,
            tables=MappingProxyType(self.tables),
            rules=rules,
        )

    def events(self, data: object) -> dict[str, PatientAction]:
        """``ADT^A08: update`` or ``{action: update, versions: [...]}``; sets the path targets."""
        actions = [a.value for a in PatientAction]
        result: dict[str, PatientAction] = {}
        targets: list[Target] = []
        for mtype, raw in self.dict_of("events", data).items():
            rule = f"events.{mtype}"
            if not _ADT_TYPE_RE.fullmatch(mtype):
                self.fail(rule, "an event is written CODE^EVENT (MSH-9.1^MSH-9.2), e.g. ADT^A08")
            versions = default_versions(mtype)
            if isinstance(raw, dict):
                if "action" not in raw or not set(raw) <= {"action", "versions"}:
                    self.fail(rule, "an event has an action and optional versions")
                if "versions" in raw:
                    versions = self.versions(f"{rule}.versions", raw["versions"])
                raw = raw["action"]
            action = self.text(rule, raw)
            if action not in actions:
                self.fail(rule, f"{action!r} is not one of {', '.join(actions)}")
            result[mtype] = PatientAction(action)
            targets += (Target(mtype, v) for v in versions)
        self.targets = tuple(targets)
        return result

    def check_rules(self, rules: tuple[Rule, ...]) -> None:
        for rule in rules:
            if rule.keyword in ORDER_LEVEL_KEYWORDS:
                self.fail(rule.name, f"{rule.keyword} belongs to an order; an ADT cannot set it")
        pid = next((r for r in rules if r.keyword == "PatientID"), None)
        if not isinstance(pid, ValueRule) or not pid.required or not pid.paths:
            self.fail(
                "attributes.PatientID",
                "required: the patient to update, e.g. PatientID: {path: PID-3, required: true}",
            )


_MOVES = (PatientAction.MERGE, PatientAction.CHANGE_ID)

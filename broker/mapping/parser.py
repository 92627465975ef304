"""Reading mapping files: YAML with ``yaml.SafeLoader``, validated into ``broker.mapping.spec``.

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

import dataclasses
import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NoReturn

from pydicom import config as dicom_config
from pydicom.datadict import dictionary_VM, dictionary_VR, keyword_dict, tag_for_keyword
from pydicom.valuerep import validate_value

from broker.errors import ConfigError, MappingError
from broker.mapping.conditions import When, check_pattern, parse_when
from broker.mapping.conform import conform
from broker.mapping.hl7_structure import SUPPORTED_VERSIONS, Target, check_path, default_versions
from broker.mapping.paths import HL7Path, PathSyntaxError, parse_path
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
    Rule,
    SequenceRule,
    ValueRule,
)
from broker.mapping.stations import StationRule, parse_stations
from broker.mapping.transforms import TRANSFORMS

__all__ = [
    "MappingParser",
    "load_mapping",
    "parse_mapping",
    "suggest",
]

_RULE_KEYS = (
    "path",
    "value",
    "generate",
    "seed",
    "transform",
    "table",
    "default",
    "required",
    "fallback",
    "when",
    "extract",
)
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
_GENERATORS = ("uid", "id")
_ID_VRS = frozenset({"SH", "LO", "CS", "ST", "LT", "UT", "UC"})  # room for 16 characters
_LAST_PART_RE = re.compile(r"(\[\d+\]|\.[^.\[\]]*)$")  # "[2]" or ".key" at the end of a rule name


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


def _name_groups(vr: str, transforms: tuple[str, ...]) -> bool:
    """A PN rule whose repetitions become component groups (``transforms.person_name_groups``)."""
    return vr == "PN" and transforms in (("pn",), ("xcn_pn",))


def _then(rule: ValueRule, after: ValueRule) -> ValueRule:
    """``rule`` with ``after`` appended at the end of its fallback chain."""
    fallback = after if rule.fallback is None else _then(rule.fallback, after)
    return dataclasses.replace(rule, fallback=fallback)


def _chain(rule: ValueRule | None) -> Iterator[ValueRule]:
    while rule is not None:
        yield rule
        rule = rule.fallback


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


class MappingParser:
    """Validates one file's data; every error names the file, the line if known, and the rule.

    ``targets`` are the (message type, HL7 version) pairs the file handles,
    set by its message-type section before any path is read; each path must
    exist in at least one of them.
    """

    def __init__(self, source: str, lines: Mapping[str, int] | None = None) -> None:
        self.source = source
        self.lines: Mapping[str, int] = lines or {}
        self.tables: dict[str, LookupTable] = {}
        self.targets: tuple[Target, ...] = ()

    def fail(self, rule: str, message: str, *, at: str | None = None) -> NoReturn:
        """Raise for ``rule``; ``at`` is a finer place in the file (``...path[2]``) for the line."""
        line = self.line(at or rule)
        where = f"{self.source}:{line}" if line is not None else self.source
        raise ConfigError(setting=f"{where}: {rule}", message=message)

    def line(self, name: str) -> int | None:
        """The line of ``name``, else of the nearest enclosing name (``a.b[2]``, ``a.b``, ``a``)."""
        while name:
            if name in self.lines:
                return self.lines[name]
            name = _LAST_PART_RE.sub("", name) if _LAST_PART_RE.search(name) else ""
        return None

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

    # -- scalars and containers -------------------------------------------------
    def dict_of(self, rule: str, data: object) -> dict[str, object]:
        if not isinstance(data, dict) or not data:
            self.fail(rule, "must be a non-empty mapping (key: value lines)")
        for key in data:
            if not isinstance(key, str):
                self.fail(rule, f"key {key!r} must be text (quote it)")
        return data

    def text(self, rule: str, raw: object) -> str:
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            self.fail(rule, f"{raw!r} must be text (quote it: YAML reads yes/no as booleans)")
        return str(raw)

    def path(self, rule: str, raw: object, *, at: str | None = None) -> HL7Path:
        """Parse a path and check it exists in one of :attr:`targets` (HL7 v2 structures)."""
        try:
            path = parse_path(self.text(rule, raw))
        except PathSyntaxError as e:
            self.fail(rule, str(e), at=at)
        problem = check_path(path, self.targets)
        if problem is not None:
            self.fail(rule, problem, at=at)
        return path

    def paths(self, rule: str, raw: object, *, at: str | None = None) -> tuple[HL7Path, ...]:
        """One path or a list of them; ``at`` is where they are in the file (default ``rule``)."""
        at = at or rule
        if not isinstance(raw, list):
            return (self.path(rule, raw, at=at),)
        if not raw:
            self.fail(rule, "the list of HL7 paths is empty", at=at)
        return tuple(self.path(rule, item, at=f"{at}[{i}]") for i, item in enumerate(raw, 1))

    def versions(self, rule: str, raw: object) -> tuple[str, ...]:
        """``versions:``: an HL7 version or a list of them, each one hl7apy knows."""
        items = raw if isinstance(raw, list) else [raw]
        # An unquoted 2.4 is a YAML float; no HL7 version reads differently as one.
        versions = [str(v) if isinstance(v, float) else self.text(rule, v) for v in items]
        if not versions:
            self.fail(rule, "give an HL7 version or a list of them, e.g. ['2.3.1', '2.4']")
        for version in versions:
            if version not in SUPPORTED_VERSIONS:
                self.fail(
                    rule,
                    f"HL7 version {version!r} is not one hl7apy knows "
                    f"({', '.join(SUPPORTED_VERSIONS)}){suggest(version, SUPPORTED_VERSIONS)}",
                )
        return tuple(dict.fromkeys(versions))

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

    # -- attribute rules ------------------------------------------------------------
    def rules(self, where: str, data: object) -> tuple[Rule, ...]:
        return tuple(
            self.rule(f"{where}.{kw}", kw, raw) for kw, raw in self.dict_of(where, data).items()
        )

    def element(self, rule: str, keyword: str) -> tuple[int, str, str]:
        tag = tag_for_keyword(keyword)
        if tag is None:
            self.fail(rule, f"{keyword!r} is not a DICOM keyword{suggest(keyword, keyword_dict)}")
        return tag, dictionary_VR(tag), dictionary_VM(tag)

    def rule(self, rule: str, keyword: str, raw: object) -> Rule:
        tag, vr, vm = self.element(rule, keyword)
        if vr == "SQ":
            if not isinstance(raw, dict) or set(raw) & set(_RULE_KEYS):
                self.fail(
                    rule,
                    f"{keyword} is a sequence (VR SQ): give its item's attributes, Keyword: PATH",
                )
            return SequenceRule(rule, keyword, tag, self.rules(rule, raw))
        if vr not in TEXT_VRS:
            self.fail(
                rule,
                f"{keyword} has VR {vr}; mappable VRs: {', '.join(sorted(TEXT_VRS))}",
            )
        return self.value_rule(rule, keyword, (tag, vr, vm != "1"), raw, top=True)

    def value_rule(
        self, rule: str, keyword: str, element: tuple[int, str, bool], raw: object, *, top: bool
    ) -> ValueRule:
        if isinstance(raw, list) and raw and all(isinstance(item, dict) for item in raw):
            return self.alternatives(rule, keyword, element, raw, top=top)
        tag, vr, multi = element
        spec: dict[str, object] = dict(raw) if isinstance(raw, dict) else {"path": raw}
        for key in spec:
            if key in _RULE_KEYS:
                continue
            if isinstance(key, str) and tag_for_keyword(key) is not None:
                self.fail(rule, f"{keyword} has VR {vr}, not SQ: it cannot hold attributes ({key})")
            self.fail(rule, f"unknown setting {key!r}{suggest(str(key), _RULE_KEYS)}")
        sources = [k for k in ("path", "value", "generate") if k in spec]
        if len(sources) != 1:
            self.fail(rule, "give exactly one of path, value or generate")
        at = f"{rule}.path" if isinstance(raw, dict) else rule  # where the paths are written
        paths = self.paths(rule, spec["path"], at=at) if "path" in spec else ()
        transforms = self.transforms(rule, spec.get("transform"))
        if not multi and any(p.all_repetitions for p in paths) and not _name_groups(vr, transforms):
            self.fail(
                rule,
                f"{keyword} takes one value: a [*] path could give several (a person name "
                "takes [*] with transform pn or xcn_pn: its repetitions become name groups)",
            )
        generate = self.text(rule, spec["generate"]) if "generate" in spec else None
        if generate is not None and generate not in _GENERATORS:
            self.fail(rule, f"generate {generate!r} is not one of {', '.join(_GENERATORS)}")
        if generate == "id" and vr not in _ID_VRS:
            self.fail(rule, f"generate id makes a 16-character text; {keyword} has VR {vr}")
        if "seed" in spec and generate is None:
            self.fail(rule, "seed only goes with generate")
        if "required" in spec and (not top or not isinstance(spec["required"], bool)):
            self.fail(rule, "required is true or false, on the rule itself (not in a fallback)")
        if "default" in spec and "path" not in spec:
            self.fail(rule, "default only goes with path (it is used when the paths are empty)")
        fallback = None
        if "fallback" in spec:
            fallback = self.value_rule(
                f"{rule}.fallback", keyword, element, spec["fallback"], top=False
            )
        value_rule = ValueRule(
            name=rule,
            keyword=keyword,
            tag=tag,
            vr=vr,
            multi=multi,
            paths=paths,
            value=self.text(rule, spec["value"]) if "value" in spec else None,
            generate=generate,
            seed=self.paths(f"{rule}.seed", spec["seed"]) if "seed" in spec else (),
            transforms=transforms,
            table=self.table_name(rule, spec.get("table")),
            default=self.text(rule, spec["default"]) if "default" in spec else None,
            required=bool(spec.get("required", False)),
            fallback=fallback,
            when=self.when(rule, spec["when"]) if "when" in spec else None,
            extract=check_pattern(f"{rule}.extract", spec["extract"], self.fail)
            if "extract" in spec
            else None,
        )
        self.check_constants(value_rule)
        return value_rule

    def check_constants(self, rule: ValueRule) -> None:
        """A constant (as written, when nothing transforms it) and a default must fit the VR."""
        constants = [rule.default]
        if not rule.transforms and rule.table is None and rule.extract is None:
            constants.append(rule.value)
        for text in constants:
            if text is None:
                continue
            try:
                conform(text, rule, None)
            except MappingError as e:
                self.fail(rule.name, e.text)

    def alternatives(
        self,
        rule: str,
        keyword: str,
        element: tuple[int, str, bool],
        raw: list[object],
        *,
        top: bool,
    ) -> ValueRule:
        """A list of rules: the first that gives a value (``when:`` picks among them)."""
        chain: ValueRule | None = None
        for index in range(len(raw), 0, -1):
            item = self.value_rule(f"{rule}[{index}]", keyword, element, raw[index - 1], top=top)
            chain = item if chain is None else _then(item, chain)
        assert chain is not None
        required = any(r.required for r in _chain(chain))
        return dataclasses.replace(chain, name=rule, required=required)

    def when(self, rule: str, raw: object, *, keywords: bool = False) -> When:
        """``when:`` conditions, their HL7 paths checked like any path (``conditions``)."""
        when = parse_when(rule, raw, self.fail, keywords=keywords)
        self.check_conditions(rule, when)
        return when

    def check_conditions(self, rule: str, when: When) -> None:
        for condition in when.conditions:
            if isinstance(condition.subject, HL7Path):
                problem = check_path(condition.subject, self.targets)
                if problem is not None:
                    self.fail(f"{rule}.when.{condition.subject}", problem)

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

    def transforms(self, rule: str, raw: object) -> tuple[str, ...]:
        if raw is None:
            return ()
        names = [self.text(rule, n) for n in (raw if isinstance(raw, list) else [raw])]
        for name in names:
            if name not in TRANSFORMS:
                self.fail(rule, f"unknown transform {name!r}{suggest(name, TRANSFORMS)}")
        return tuple(names)

    def table_name(self, rule: str, raw: object) -> str | None:
        if raw is None:
            return None
        name = self.text(rule, raw)
        if name not in self.tables:
            self.fail(rule, f"unknown table {name!r}{suggest(name, self.tables)}")
        return name

"""Parsing the ``attributes:`` rules of a mapping file into ``broker.mapping.spec`` rules.

One rule per DICOM keyword, checked against pydicom's data dictionary (PS3.6)
with a "did you mean" suggestion: a sequence (VR SQ) holds its item's rules; any
other element takes a value rule (a path, a constant or a generated value, and
its options: transforms, table, default, required, fallback, ``when:``,
``extract:``, ``on_overflow:``), or a list of them, the first that gives a value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from pydicom.datadict import dictionary_VM, dictionary_VR, keyword_dict, tag_for_keyword

from broker.errors import MappingError
from broker.hl7.paths import HL7Path
from broker.mapping.conditions import When, check_pattern, parse_when
from broker.mapping.conform import conform
from broker.mapping.hl7_structure import check_path
from broker.mapping.overflow import OnOverflow, default_policy, why_not_cut
from broker.mapping.parser_base import ParserBase, suggest
from broker.mapping.spec import TEXT_VRS, Rule, SequenceRule, ValueRule
from broker.mapping.transforms import TRANSFORMS

__all__ = ["RuleParser"]

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
    "on_overflow",
)
_GENERATORS = ("uid", "id")
_ID_VRS = frozenset({"SH", "LO", "CS", "ST", "LT", "UT", "UC"})  # room for 16 characters


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


class RuleParser(ParserBase):
    """The attribute rules; table names are checked against :attr:`tables`, read before."""

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
        spec = self.value_settings(rule, keyword, vr, raw)
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
            on_overflow=self.on_overflow(rule, keyword, vr, spec, top=top),
        )
        self.check_constants(value_rule)
        return value_rule

    def value_settings(self, rule: str, keyword: str, vr: str, raw: object) -> dict[str, object]:
        """A value rule's settings (a bare path is ``{path: ...}``): known keys, one source."""
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
        return spec

    def on_overflow(
        self, rule: str, keyword: str, vr: str, spec: dict[str, object], *, top: bool
    ) -> OnOverflow:
        """The rule's ``on_overflow`` (``broker.mapping.overflow``), else the keyword's default."""
        if "on_overflow" not in spec:
            return default_policy(keyword, vr)
        at, raw = f"{rule}.on_overflow", spec["on_overflow"]
        if not top:
            self.fail(rule, "on_overflow goes on the rule itself (not in a fallback)", at=at)
        choices = [policy.value for policy in OnOverflow]
        if not isinstance(raw, str) or raw not in choices:
            self.fail(rule, f"on_overflow {raw!r} is not one of {', '.join(choices)}", at=at)
        policy = OnOverflow(raw)
        reason = why_not_cut(keyword, vr) if policy is OnOverflow.TRUNCATE else None
        if reason is not None:
            self.fail(rule, f"on_overflow: truncate cannot apply to {keyword}: {reason}", at=at)
        return policy

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
        chosen = {str(i["on_overflow"]) for i in raw if isinstance(i, dict) and "on_overflow" in i}
        if len(chosen) > 1:
            self.fail(rule, "on_overflow applies to the attribute: give its alternatives one value")
        policy = OnOverflow(chosen.pop()) if chosen else default_policy(keyword, element[1])
        return dataclasses.replace(chain, name=rule, required=required, on_overflow=policy)

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

"""Station routing: which scanner an entry is for, by rules with priorities.

A mapping's ``stations:`` list is read after an entry is built. The rule with
the highest ``priority`` (ties: the earlier in the file) whose ``when:`` holds
sets its attributes on the entry — by default only where the entry has no
value yet (so a station named in the message, IPC-9, wins), or always with
``override: true``::

    stations:
      - name: emergency CT
        priority: 20
        when: {Modality: CT, PV1-3.1: ER}
        set: {ScheduledStationAETitle: CT_ER, ScheduledStationName: CT Emergency}
      - name: any CT
        priority: 10
        when: {Modality: CT}
        set: {ScheduledStationAETitle: [CT_1, CT_2]}

Conditions are those of ``broker.mapping.conditions`` and may also name a
DICOM keyword of the entry (top level or its Scheduled Procedure Step item:
``Modality``, ``ScheduledProcedureStepLocation``…) to route on what the
mapping made of the message (e.g. a modality found through a table). The
attributes set are string attributes of the SPS item or the top level,
checked like any rule's value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydicom.datadict import keyword_dict
from pydicom.dataset import Dataset

from broker.hl7.paths import HL7Path
from broker.mapping.conditions import Fail, When, parse_when

__all__ = ["SPS_ITEM_KEYWORDS", "StationRule", "parse_stations", "route"]

# Attributes of the Scheduled Procedure Step item (PS3.4 Table K.6-1); others are top level.
SPS_ITEM_KEYWORDS = frozenset(
    {
        "ScheduledStationAETitle",
        "ScheduledStationName",
        "ScheduledProcedureStepLocation",
        "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime",
        "ScheduledProcedureStepEndDate",
        "ScheduledProcedureStepEndTime",
        "Modality",
        "ScheduledPerformingPhysicianName",
        "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepID",
        "PreMedication",
        "RequestedContrastAgent",
        "CommentsOnTheScheduledProcedureStep",
    }
)

Check = Callable[[str, str, list[str]], list[str]]
"""``check(rule, keyword, values)``: the values conformed to the keyword's VR, or a failure."""


@dataclass(frozen=True)
class StationRule:
    """One routing rule."""

    name: str
    priority: int
    when: When
    values: Mapping[str, tuple[str, ...]]  # DICOM keyword -> values to set
    override: bool = False


def parse_stations(raw: object, fail: Fail, check: Check) -> tuple[StationRule, ...]:
    """Validate the ``stations:`` list; the result is sorted by priority (stable)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        fail("stations", "must be a list of rules (name, priority, when, set, override)")
    rules = []
    for index, item in enumerate(raw, start=1):
        where = f"stations[{index}]"
        if not isinstance(item, Mapping):
            fail(where, "a rule is a mapping with name, priority, when and set")
        unknown = set(map(str, item)) - {"name", "priority", "when", "set", "override"}
        if unknown:
            fail(where, f"unknown key(s) {', '.join(sorted(unknown))}")
        name = str(item.get("name") or f"rule {index}")
        where = f"stations[{index}] ({name})"
        priority = item.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            fail(where, "priority: takes a whole number (higher wins)")
        if "when" not in item or "set" not in item:
            fail(where, "a rule needs when: (what it applies to) and set: (what it sets)")
        when = parse_when(where, item["when"], fail, keywords=True)
        override = item.get("override", False)
        if not isinstance(override, bool):
            fail(where, "override: takes true or false")
        rules.append(
            StationRule(name, priority, when, _values(where, item["set"], fail, check), override)
        )
    return tuple(sorted(rules, key=lambda r: -r.priority))


def _values(where: str, raw: object, fail: Fail, check: Check) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping) or not raw:
        fail(f"{where}.set", "must map DICOM keywords to values")
    out = {}
    for keyword, value in raw.items():
        items = value if isinstance(value, list) else [value]
        texts = [str(v).strip() for v in items if v is not None and str(v).strip()]
        if not texts:
            fail(f"{where}.set.{keyword}", "needs a value")
        out[str(keyword)] = tuple(check(f"{where}.set.{keyword}", str(keyword), texts))
    return out


def route(
    rules: tuple[StationRule, ...], entry: Dataset, read: Callable[[HL7Path | str], str]
) -> StationRule | None:
    """The first rule (by priority) whose conditions hold for ``entry``; it is applied."""
    step = _sps_item(entry)

    def subject_value(subject: HL7Path | str) -> str:
        if isinstance(subject, str) and subject in keyword_dict:
            for ds in (step, entry):
                if ds is not None and subject in ds:
                    value = ds.data_element(subject).value  # type: ignore[union-attr]
                    return str(value[0] if isinstance(value, list | tuple) else value).strip()
            return ""
        return read(subject)

    for rule in rules:
        if rule.when.holds(subject_value):
            _apply(rule, entry, step)
            return rule
    return None


def _apply(rule: StationRule, entry: Dataset, step: Dataset | None) -> None:
    for keyword, values in rule.values.items():
        target = step if step is not None and _in_step(keyword, step) else entry
        current = target.get(keyword)
        if current not in (None, "", []) and not rule.override:
            continue
        setattr(target, keyword, list(values) if len(values) > 1 else values[0])


def _in_step(keyword: str, step: Dataset) -> bool:
    return keyword in SPS_ITEM_KEYWORDS or keyword in step


def _sps_item(entry: Dataset) -> Dataset | None:
    sequence = entry.get("ScheduledProcedureStepSequence")
    return sequence[0] if sequence else None

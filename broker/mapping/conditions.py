"""``when:`` conditions of mapping rules: on field values, the sender, the sending host.

A condition set is a YAML mapping; every condition must hold::

    when:
      OBR-24: CT                   # the value equals CT
      PV1-3.1: [ER, ICU]           # equals one of these
      MSH-3: {match: "RIS_.*"}     # matches the regular expression (whole value)
      OBR-4.1: {not: [X1, X2]}     # equals none of these
      ZDS-1: {present: false}      # is empty
      sending_host: 10.1.2.3       # the peer address of the MLLP connection

A path reads the first repetition's first part, unescaped and stripped, as a
plain value does in a rule. Values are compared exactly (HL7 codes are case
sensitive); ``match`` must match the whole value, so add ``(?i)`` to ignore
case. Patterns are data, never code: they run on RE2, in time linear in the
value, and are compiled when the file is loaded (:mod:`broker.mapping.patterns`);
matched values are at most ``MAX_MATCHED`` characters long, longer ones do not
match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from pydicom.datadict import keyword_dict

from broker.hl7.paths import HL7Path, PathSyntaxError, parse_path
from broker.mapping.patterns import Pattern, PatternError, compile_pattern

__all__ = ["SUBJECTS", "Condition", "When", "check_pattern", "parse_when"]

SUBJECTS = {"sending_host": "the peer address of the MLLP connection (IPv4 or IPv6, no port)"}
Fail = Callable[[str, str], NoReturn]
"""``fail(rule, message)`` raises the parser's error for ``rule``."""


@dataclass(frozen=True)
class Condition:
    """One test on one subject (an HL7 path, or a name from :data:`SUBJECTS`)."""

    subject: HL7Path | str
    equals: frozenset[str] = frozenset()  # any of these
    excludes: frozenset[str] = frozenset()  # none of these
    pattern: Pattern | None = None
    present: bool | None = None

    def holds(self, value: str) -> bool:
        """Whether ``value`` (already read, unescaped and stripped) satisfies the condition."""
        if self.present is not None and bool(value) != self.present:
            return False
        if self.equals and value not in self.equals:
            return False
        if value in self.excludes:
            return False
        if self.pattern is not None:
            return self.pattern.fullmatch(value)
        return True


@dataclass(frozen=True)
class When:
    """Conditions that must all hold."""

    conditions: tuple[Condition, ...]

    def holds(self, read: Callable[[HL7Path | str], str]) -> bool:
        """``read(subject)`` gives a subject's value for the message at hand."""
        return all(c.holds(read(c.subject)) for c in self.conditions)


def parse_when(rule: str, raw: object, fail: Fail, *, keywords: bool = False) -> When:
    """Validate a ``when:`` mapping (see the module docstring).

    With ``keywords`` a subject may also be a DICOM keyword (of the entry being built).
    """
    where = f"{rule}.when"
    if not isinstance(raw, Mapping) or not raw:
        fail(where, "must be a mapping of HL7 path (or sending_host) to the value(s) wanted")
    conditions = []
    for key, test in raw.items():
        subject = _subject(f"{where}.{key}", key, fail, keywords)
        conditions.append(_condition(f"{where}.{key}", subject, test, fail))
    return When(tuple(conditions))


def _subject(rule: str, key: object, fail: Fail, keywords: bool) -> HL7Path | str:
    text = str(key).strip()
    if text in SUBJECTS or (keywords and text in keyword_dict):
        return text
    try:
        return parse_path(text)
    except PathSyntaxError as e:
        known = ", ".join(SUBJECTS) + (" or a DICOM keyword (Modality…)" if keywords else "")
        fail(rule, f"{e}; or {known}")


def _condition(rule: str, subject: HL7Path | str, test: object, fail: Fail) -> Condition:
    if isinstance(test, Mapping):
        unknown = set(map(str, test)) - {"match", "not", "present"}
        if unknown or not test:
            fail(rule, "a test is a value, a list of values, or {match|not|present: ...}")
        pattern = None
        if "match" in test:
            pattern = check_pattern(f"{rule}.match", test["match"], fail)
        present = test.get("present")
        if present is not None and not isinstance(present, bool):
            fail(rule, "present: takes true or false")
        excludes = _values(rule, test["not"], fail) if "not" in test else frozenset()
        return Condition(subject, excludes=excludes, pattern=pattern, present=present)
    return Condition(subject, equals=_values(rule, test, fail))


def _values(rule: str, raw: object, fail: Fail) -> frozenset[str]:
    items = raw if isinstance(raw, list) else [raw]
    values = set()
    for item in items:
        if item is None or isinstance(item, (dict, list, bool)):
            fail(rule, f"{item!r} is not a value to compare with (write text, e.g. 'CT')")
        values.add(str(item).strip())
    if not values:
        fail(rule, "an empty list never matches; write at least one value")
    return frozenset(values)


def check_pattern(rule: str, raw: object, fail: Fail) -> Pattern:
    """Compile an admin's regular expression (RE2), or ``fail`` saying what to write instead."""
    if not isinstance(raw, str) or not raw:
        fail(rule, "takes a regular expression (text)")
    try:
        return compile_pattern(raw)
    except PatternError as e:
        fail(rule, str(e))

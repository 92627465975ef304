"""One message as python-hl7's tree, or as light field lists for the mapping engine.

``parse`` is ``hl7.parse`` for one message, without python-hl7's per-element parse plans.

python-hl7 0.4.5 splits a message recursively and, for every element of every
level, makes a new ``_ParsePlan`` and searches the separator string again
(≈ 140 plans for one order, most of the parse's cost). This builds the very
same tree (the same container classes with the same separators, escape
character and factory, HL7 v2.5.1 §2.5 levels: segment, field, repetition,
component, subcomponent) from one plan per message. The plan itself comes from
python-hl7's ``create_parse_plan``, so a malformed header raises what
``hl7.parse`` raises; a message whose delimiters repeat a character is left
to ``hl7.parse`` itself, whose levels then follow the first occurrence.
Tests compare the two trees over the corpus and over generated text.

``segments`` is what the mapping engine reads: each segment a :class:`Fields`, the
list of its raw field strings indexed by HL7 field number (MSH-1 and MSH-2 hold the
delimiters, as in python-hl7's tree). Repetitions, components and subcomponents are
split only when a path reads them (``broker.hl7.paths.read``), which gives the
same values as the tree for a fraction of the cost: an order's tree is ≈ 140
objects, most never read.
"""

from __future__ import annotations

from typing import Any

import hl7
from hl7.parser import create_parse_plan

__all__ = ["Fields", "parse", "segments"]

_CONTAINERS = (hl7.Message, hl7.Segment, hl7.Field, hl7.Repetition, hl7.Component)
_HEADER_SEGMENTS = ("MSH", "BHS", "FHS")  # MSH-1/MSH-2 hold the delimiters (§2.14.9.1-2)


def parse(text: str) -> hl7.Message:
    """The message as ``hl7.parse(text)`` returns it."""
    message = text.strip()
    plan = create_parse_plan(message)
    separators, esc = str(plan.separators), str(plan.esc)
    if len(set(separators)) != len(separators):
        return hl7.parse(text)
    tree: hl7.Message = _split(message, 0, separators, esc)
    return tree


def _split(text: str, level: int, separators: str, esc: str) -> Any:
    """One element at ``level`` (0 message … 4 component), as python-hl7's ``_split``."""
    for s in separators[level:]:
        if s in text:
            break
    else:
        return _container(level, [text], separators, esc)
    data: list[Any] = []
    if level == 1 and text[:3] in _HEADER_SEGMENTS:
        sep0 = text[3]
        sep_end = text.find(sep0, 4)
        data = [
            _container(2, [text[:3]], separators, esc),
            _container(2, [sep0], separators, esc),
            _container(2, [text[4:sep_end]], separators, esc),
        ]
        text = text[sep_end + 1 :]
    if text:
        parts = text.split(separators[level])
        if level == 4:  # subcomponents are plain strings
            data += parts
        else:
            data += [_split(part, level + 1, separators, esc) for part in parts]
    return _container(level, data, separators, esc)


def _container(level: int, data: list[Any], separators: str, esc: str) -> Any:
    """``_CONTAINERS[level](sequence=data, ...)`` with the attributes its ``__init__`` sets.

    Made without the constructor chain (two asserts and two ``__init__`` calls for
    each of ≈ 140 elements); the tests compare every attribute with python-hl7's.
    """
    container = list.__new__(_CONTAINERS[level])
    list.__init__(container, data)
    container.__dict__.update(
        separator=separators[level], esc=esc, separators=separators, factory=hl7.Factory
    )
    return container


class Fields(list[str]):
    """One segment's raw (still escaped) field strings; ``[0]`` is the segment name.

    Carries the message's delimiters like python-hl7's containers do
    (``separators`` in python-hl7's order: segment, field, repetition, component,
    subcomponent) and the message's charset for ``\\Xhh\\`` escapes.
    """

    __slots__ = ("esc", "mwl_charset", "separators")

    def __init__(self, fields: list[str], separators: str, esc: str) -> None:
        super().__init__(fields)
        self.separators = separators
        self.esc = esc
        self.mwl_charset: str | None = None


def segments(text: str) -> list[Any]:
    """The message's segments as :class:`Fields`, laid out as ``parse(text)``'s segments.

    Raises what ``hl7.parse`` raises for a malformed header; a message whose
    delimiters repeat a character gets python-hl7's own segments (see ``parse``).
    """
    message = text.strip()
    plan = create_parse_plan(message)
    separators, esc = str(plan.separators), str(plan.esc)
    if len(set(separators)) != len(separators):
        return list(hl7.parse(text))
    return [_fields(segment, separators, esc) for segment in message.split(separators[0])]


def _fields(text: str, separators: str, esc: str) -> Fields:
    """One segment, split as python-hl7's ``_split`` splits it at the segment level."""
    if not any(s in text for s in separators[1:]):
        return Fields([text], separators, esc)
    head: list[str] = []
    if text[:3] in _HEADER_SEGMENTS:
        sep0 = text[3]
        sep_end = text.find(sep0, 4)
        head = [text[:3], sep0, text[4:sep_end]]
        text = text[sep_end + 1 :]
    return Fields(head + text.split(separators[1]) if text else head, separators, esc)

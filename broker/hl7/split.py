"""``hl7.parse`` for one message, without python-hl7's per-element parse plans.

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
"""

from __future__ import annotations

from typing import Any

import hl7
from hl7.parser import create_parse_plan

__all__ = ["parse"]

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

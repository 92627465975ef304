"""broker.hl7.split: ``parse`` builds exactly python-hl7's tree, or raises what it raises;
``segments`` reads (through ``broker.hl7.paths.read``) exactly what that tree reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.hl7 import split
from broker.hl7.paths import HL7Path, read
from tests.corpus import hl7_corpus_messages
from tests.messages import own_messages

DATA = Path(__file__).resolve().parents[1] / "data"


def same_tree(ours: Any, theirs: Any) -> None:
    assert type(ours) is type(theirs)
    if isinstance(theirs, str):
        assert ours == theirs
        return
    assert (ours.separator, ours.esc, ours.separators) == (
        theirs.separator,
        theirs.esc,
        theirs.separators,
    )
    assert ours.factory is theirs.factory
    assert vars(ours) == vars(theirs)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        same_tree(a, b)


def outcome(parse: Any, text: str) -> Any:
    try:
        return parse(text)
    except Exception as e:  # compared below: the same exception type, or the same tree
        return type(e)


def every_path(segment: str, width: int) -> list[HL7Path]:
    """Every path into a segment up to ``width`` fields, repetitions, components, subcomponents."""
    reps: list[int | None] = [None, *range(1, width + 1)]
    comps: list[int | None] = [None, *range(1, width + 1)]
    return [
        HL7Path(segment, field, rep, comp, sub)
        for field in range(1, width + 3)
        for rep in reps
        for comp in comps
        for sub in ([None] if comp is None else [None, *range(1, width + 1)])
    ]


def same_reads(text: str, width: int = 4) -> None:
    """``read`` gives the same values from ``segments`` as from python-hl7's segments."""
    light, tree = outcome(split.segments, text), outcome(hl7.parse, text)
    if isinstance(tree, type):
        assert light is tree
        return
    assert len(light) == len(tree)
    for ours, theirs in zip(light, tree, strict=True):
        name = str(theirs[0]) if len(theirs) else ""
        assert (str(ours[0]) if len(ours) else "") == name
        for path in every_path(name[:3] or "ZZZ", width):
            assert read(ours, path) == read(theirs, path), (text, str(path))


def assert_same(text: str, width: int = 4) -> None:
    ours, theirs = outcome(split.parse, text), outcome(hl7.parse, text)
    if isinstance(theirs, type):
        assert ours is theirs
    else:
        same_tree(ours, theirs)
        assert outcome(str, ours) == outcome(str, theirs)
    same_reads(text, width)


def test_every_own_test_message() -> None:
    messages = [raw for _name, raw in own_messages()]
    assert len(messages) > 50
    for raw in messages:
        assert_same(raw.decode("latin-1"), width=3)


@pytest.mark.corpus
def test_every_corpus_message() -> None:
    messages = [raw for _name, raw in hl7_corpus_messages()]
    assert len(messages) > 100
    for raw in messages:
        text = raw.decode("latin-1").replace("\r\n", "\r").replace("\n", "\r")
        assert_same(text, width=3)


def test_header_edge_cases() -> None:
    for text in [
        "MSH|^~\\&|A|B\rPID|||1^^^H~2^^^H||Doe^Jane&x",
        "MSH|^~\\&",
        "MSH|",
        "MSH",
        "PID|1",
        "  MSH|^~\\&|A\r\r\rPID\r  ",
        "MSH|^|A|B^C~D",  # encoding characters shorter than four
        "MSH|^~\\&#|A|B#C",  # a fifth (truncation) character
        "MSH|^^\\&|A|B^C",  # a repeated delimiter: left to python-hl7
        "MSH#^~\\&#A#B|C^D",  # another field separator
        "MSH|^~\\&|A\rMSH|^~\\&|B\rFHS|^~\\&\rBHS|x",
    ]:
        assert_same(text)


_ALPHABET = st.sampled_from(
    [*"|^~\\&#\r\n AZ09", "MSH", "PID", "FHS", "BHS", "ÄÖ", '""', "\\F\\"]  # null, escape
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join), st.sampled_from(["MSH|^~\\&|", "MSH|^~\\&"]))
def test_generated_text(body: str, header: str) -> None:
    assert_same(header + body)
    assert_same(body)

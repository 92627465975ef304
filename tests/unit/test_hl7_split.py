"""broker.hl7.split.parse builds exactly python-hl7's tree, or raises what it raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hl7
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.hl7 import split
from tests.unit.test_mapping_engine import corpus_messages

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


def assert_same(text: str) -> None:
    ours, theirs = outcome(split.parse, text), outcome(hl7.parse, text)
    if isinstance(theirs, type):
        assert ours is theirs
    else:
        same_tree(ours, theirs)
        assert outcome(str, ours) == outcome(str, theirs)


def test_every_corpus_and_test_message() -> None:
    messages = [raw for _name, raw in corpus_messages()]
    messages += [p.read_bytes() for p in sorted(DATA.glob("*.hl7"))]
    assert len(messages) > 100
    for raw in messages:
        assert_same(raw.decode("latin-1").replace("\r\n", "\r").replace("\n", "\r"))


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


_ALPHABET = st.sampled_from([*"|^~\\&#\r\n AZ09", "MSH", "PID", "FHS", "BHS", "ÄÖ"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join), st.sampled_from(["MSH|^~\\&|", "MSH|^~\\&"]))
def test_generated_text(body: str, header: str) -> None:
    assert_same(header + body)
    assert_same(body)

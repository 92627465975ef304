"""The broker's one JSON module: each writer gives exactly the bytes ``json.dumps`` gives
with the options it names, so what was stored before reads back and compares the same."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.common import jsontext

VALUES: list[Any] = [
    {"b": 1, "a": ["Müller^Jörg", "山田^太郎"], "c": {"z": None, "y": 1.5, "x": True}},
    'C:\\data\\mwl "broker"',
    "\x00\x1f\x7f\x85\u202e end",  # C0, DEL, C1 (NEL) and a bidirectional override
    [1, -2, 3.25, "", [], {}],
]


@pytest.mark.parametrize("value", VALUES)
def test_each_writer_is_json_dumps_with_its_options(value: Any) -> None:
    assert jsontext.dumps(value) == json.dumps(value, ensure_ascii=False)
    assert jsontext.canonical(value) == json.dumps(value, ensure_ascii=False, sort_keys=True)
    assert jsontext.ascii_only(value) == json.dumps(value)


@pytest.mark.parametrize("value", VALUES)
def test_what_is_written_reads_back(value: Any) -> None:
    for text in (jsontext.dumps(value), jsontext.canonical(value), jsontext.ascii_only(value)):
        assert jsontext.loads(text) == value
        assert jsontext.loads(text.encode()) == value  # as Redis returns it


def test_utf8_as_is_but_ascii_only_escapes_every_other_character() -> None:
    assert jsontext.dumps("Jörg") == '"Jörg"'
    assert jsontext.ascii_only("Jörg\x85\u202e") == '"J\\u00f6rg\\u0085\\u202e"'
    assert jsontext.canonical({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'

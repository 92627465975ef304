"""``when:`` conditions: parsing, every kind of test, and refused patterns."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import pytest

from broker.hl7.paths import HL7Path, parse_path
from broker.mapping.conditions import When, parse_when
from broker.mapping.patterns import MAX_MATCHED


class Refused(Exception):
    pass


def fail(rule: str, message: str) -> NoReturn:
    raise Refused(f"{rule}: {message}")


def when(raw: object) -> When:
    return parse_when("attributes.X", raw, fail)


def reader(values: dict[str, str]) -> Callable[[HL7Path | str], str]:
    def read(subject: HL7Path | str) -> str:
        return values.get(str(subject), "")

    return read


def test_all_conditions_must_hold() -> None:
    w = when({"OBR-24": "CT", "PV1-3.1": ["ER", "ICU"], "sending_host": "10.0.0.5"})
    assert isinstance(w.conditions[0].subject, HL7Path)
    assert w.conditions[0].subject == parse_path("OBR-24")
    assert w.conditions[2].subject == "sending_host"
    ok = {"OBR-24": "CT", "PV1-3.1": "ICU", "sending_host": "10.0.0.5"}
    assert w.holds(reader(ok))
    for key, other in (("OBR-24", "MR"), ("PV1-3.1", "WARD"), ("sending_host", "10.0.0.6")):
        assert not w.holds(reader(ok | {key: other}))


def test_match_not_and_present() -> None:
    w = when({"MSH-3": {"match": "(?i)ris_[a-z]+"}})
    assert w.holds(reader({"MSH-3": "RIS_North"}))
    assert not w.holds(reader({"MSH-3": "xRIS_North"}))  # whole value
    assert not w.holds(reader({"MSH-3": "RIS_" + "a" * MAX_MATCHED}))
    excluded = when({"OBR-4.1": {"not": ["X1", "X2"]}})
    assert excluded.holds(reader({"OBR-4.1": "CTHEAD"}))
    assert not excluded.holds(reader({"OBR-4.1": "X2"}))
    empty = when({"ZDS-1": {"present": False}})
    assert empty.holds(reader({}))
    assert not empty.holds(reader({"ZDS-1": "1.2.3"}))
    groups = when({"OBR-4.1": {"match": "(?i)(?:CT|MR)-[0-9]+"}})
    assert groups.holds(reader({"OBR-4.1": "mr-12"}))
    numbers = when({"OBR-1": 1})  # YAML numbers compare as their text
    assert numbers.holds(reader({"OBR-1": "1"}))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CT", "must be a mapping"),
        ({}, "must be a mapping"),
        ({"OBR24": "CT"}, "is not an HL7 path"),
        ({"sending-host": "x"}, "sending_host"),
        ({"OBR-24": []}, "an empty list never matches"),
        ({"OBR-24": [["CT"]]}, "is not a value"),
        ({"OBR-24": None}, "is not a value"),
        ({"OBR-24": {"equals": "CT"}}, "a test is a value"),
        ({"OBR-24": {"present": "no"}}, "true or false"),
        ({"OBR-24": {"match": "(CT"}}, "not a valid regular expression"),
        ({"OBR-24": {"match": r"(a)\1"}}, "back-references"),
        ({"OBR-24": {"match": "(?=a)a"}}, "look-arounds"),
        ({"OBR-24": {"match": "(?<=a)b"}}, "look-arounds"),
        ({"OBR-24": {"match": "a{,3}"}}, "write {0,3}"),
        ({"OBR-24": {"match": 3}}, "takes a regular expression"),
        ({"OBR-24": {"match": "a" * 201}}, "longer than 200"),
        ({"OBR-24": {"match": ""}}, "takes a regular expression"),
    ],
)
def test_refused_conditions_name_the_rule(raw: object, expected: str) -> None:
    with pytest.raises(Refused) as refused:
        when(raw)
    assert str(refused.value).startswith("attributes.X.when")
    assert expected in str(refused.value)


def test_nested_quantifiers_are_matched_in_linear_time() -> None:
    # ((a)+)+ took about 0.9 s on 24 characters with Python's re, in the one HL7 worker.
    nested = when({"MSH-3": {"match": "((a)+)+"}, "OBR-24": {"match": "(a|b*)*"}})
    assert nested.holds(reader({"MSH-3": "a" * 24, "OBR-24": "ab" * 12}))
    for hostile in ("a" * 24 + "!", "a" * (MAX_MATCHED - 1) + "!"):
        assert not nested.holds(reader({"MSH-3": hostile, "OBR-24": "ab"}))

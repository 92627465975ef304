"""Wild card matching (PS3.4 C.2.2.2.4): ``*`` any sequence, ``?`` exactly one character.

The matcher is checked against the definition written as a memoised recursion,
on random patterns and values; and a key built to make a backtracking matcher
take exponential time has to finish (no timing is asserted: pytest-timeout
ends a test that hangs).
"""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from broker.dicom.matching import matches
from broker.dicom.wildcard import compile_glob, glob_match
from tests.unit.matching_helpers import ENTRY_SPEC, make


def reference(pattern: str, value: str) -> bool:
    """The definition, literally: position by position, ``*`` consuming none or one more."""

    @cache
    def at(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(value)
        if pattern[i] == "*":
            return at(i + 1, j) or (j < len(value) and at(i, j + 1))
        if j == len(value):
            return False
        return (pattern[i] == "?" or pattern[i] == value[j]) and at(i + 1, j + 1)

    return at(0, 0)


# Few distinct letters, so that random patterns and values often nearly match.
ALPHABET = st.sampled_from(list("ab^ ßéΩ山"))
PATTERN_CHARS = st.one_of(ALPHABET, st.sampled_from(["*", "?"]))


@given(st.text(PATTERN_CHARS, max_size=12), st.text(ALPHABET, max_size=14))
@example("", "")
@example("*", "")
@example("?", "")
@example("a*a", "a")
@example("*a*a*", "aa")
def test_agrees_with_the_definition(pattern: str, value: str) -> None:
    assert glob_match(pattern, value) == reference(pattern, value)


@given(st.text(ALPHABET, max_size=14), st.data())
def test_a_pattern_cut_from_the_value_matches_it(value: str, data: st.DataObject) -> None:
    # Replace random runs of the value by "*" and random characters by "?".
    chars = list(value)
    for i in data.draw(st.lists(st.integers(0, max(len(chars) - 1, 0)), max_size=4)):
        if i < len(chars):
            chars[i] = data.draw(st.sampled_from(["?", "*"]))
    pattern = "".join(chars)
    assert glob_match(pattern, value)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("", "", True),
        ("", "a", False),
        ("*", "", True),
        ("*", "DOE^JOHN", True),
        ("**", "", True),
        ("?", "", False),
        ("?", "a", True),
        ("?", "ab", False),
        ("???", "abc", True),
        ("DOE*", "DOE^JOHN", True),
        ("DOE*", "DOE", True),
        ("*JOHN", "DOE^JOHN", True),
        ("*^*", "DOE^JOHN", True),
        ("D?E^*N", "DOE^JOHN", True),
        ("D?E^*N", "DOE^JOHNNY", False),
        ("*OE*OH*", "DOE^JOHN", True),
        ("*OH*OE*", "DOE^JOHN", False),
        ("a*a", "a", False),  # head and tail may not share a character
        ("a*a", "aa", True),
        ("ab*ba", "aba", False),
        ("*a?c*", "abxabc", True),  # the first "a" fails, a later one fits
        ("*a?c", "abcabc", True),
        ("*?*?*?#", "abc", False),
        ("*?*?*?#", "abc#", True),
        ("山田*", "山田^太郎", True),
        ("?田*", "山田^太郎", True),
        ("Straße", "Straße", True),
        ("Stra?e", "Straße", True),
        ("Stra?e", "Strasse", False),
        ("*\\", "a\\b", False),  # a backslash is a character like any other
        ("*\\?", "a\\b", True),
        ("[a]*", "[a]bc", True),  # nothing regex-like is special
        (".*", "abc", False),
    ],
)
def test_explicit_cases(pattern: str, value: str, expected: bool) -> None:
    assert glob_match(pattern, value) is expected
    assert reference(pattern, value) is expected


def test_consecutive_stars_are_one() -> None:
    assert compile_glob("a***b*****c") == compile_glob("a*b*c")


@pytest.mark.parametrize("k", [8, 10, 30])
def test_the_exponential_query_finishes(k: int) -> None:
    # "*?" k times then a character no name holds: a backtracking matcher tries every
    # split of the name (measured on main: 3.3 s per entry at k = 10, doubling per step).
    name = "Abcdefghijklmnopqrstuvwxyz^Abcdefgh"  # 36 characters, as measured
    entry = make({**ENTRY_SPEC, "PatientName": name})
    key = "*?" * k + "#"
    assert not matches(make({"PatientName": key}), entry)
    assert not matches(make({"PatientName": key}), entry, pn_case_insensitive=False)
    assert not glob_match(key, name * 100)
    assert glob_match(key, "x" * k + "#")
    assert not glob_match(key, "x" * (k - 1) + "#")

"""Mapping patterns on RE2: hostile patterns finish, answers agree with Python's ``re``,
and what RE2 cannot do (or would read otherwise) is refused with advice."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.mapping.patterns import (
    MAX_MATCHED,
    MAX_PATTERN,
    Pattern,
    PatternError,
    compile_pattern,
)


def reference(pattern: str, text: str) -> tuple[bool, str]:
    """What the broker answered with Python's ``re`` (``fullmatch``; ``extract``)."""
    compiled = re.compile(pattern)
    match = compiled.search(text[:MAX_MATCHED])
    found = "" if match is None else match.group(1 if compiled.groups else 0)
    return compiled.fullmatch(text) is not None, found or ""


def answer(pattern: Pattern, text: str) -> tuple[bool, str]:
    return pattern.fullmatch(text), pattern.extract(text)


# Patterns that backtrack exponentially (or as a high power of n) in Python's re: the
# short texts on which re still answers, and hostile texts as long as a matched value
# may be, with the answer (fullmatch, extract) they must give.
N = MAX_MATCHED
HOSTILE = [
    ("((a)+)+", ["aaaaaaaa!", "aaaa", "!"],
     [("a" * (N - 1) + "!", (False, "a" * (N - 1))), ("a" * N, (True, "a" * N))]),
    ("(a|aa)+$", ["aaaaaaa!", "aaaaaaa", ""],
     [("a" * (N - 1) + "!", (False, "")), ("a" * N, (True, "a"))]),
    ("(.*a){12}", ["a" * 11 + "!", "ba" * 12, "a" * 13],
     [("a" * (N - 1) + "!", (False, "a")), ("ab" * (N // 2), (False, "ba"))]),
    ("(a+)+b", ["aaaaaaa", "aaab", "b"],
     [("a" * N, (False, "")), ("a" * (N - 1) + "b", (True, "a" * (N - 1)))]),
    ("(x+x+)+y", ["xxxxxxx", "xxy"],
     [("x" * N, (False, "")), ("x" * (N - 2) + "y", (True, "x" * (N - 2)))]),
    ("(a|a)*c", ["aaaaaaaa!", "aac"],
     [("a" * N, (False, "")), ("a" * (N - 1) + "c", (True, "a"))]),
    ("(\\w+\\s?)*$", ["aaaa aaaa!", "aa aa"],
     [("a " * (N // 2 - 1) + "a!", (False, "")), ("a " * (N // 2), (True, "a "))]),
    ("^([a-z0-9]+-?)+$", ["aaaaaaaa!", "a-b"],
     [("a" * (N - 1) + "!", (False, "")), ("a-" * (N // 2), (True, "a-"))]),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "short", "hostile"), HOSTILE)
def test_backtracking_patterns_finish_and_agree_with_re(
    pattern: str, short: list[str], hostile: list[tuple[str, tuple[bool, str]]]
) -> None:
    compiled = compile_pattern(pattern)
    for text in short:
        assert answer(compiled, text) == reference(pattern, text), text
    for text, expected in hostile:
        assert answer(compiled, text) == expected


@dataclass(frozen=True)
class Sub:
    """A generated pattern: its text, whether it matches "", whether captures may differ."""

    text: str
    nullable: bool
    empty_repeat: bool  # a quantifier over something that matches "" (captures differ)


ATOMS = st.sampled_from(
    [
        Sub("a", False, False),
        Sub("b", False, False),
        Sub("A", False, False),
        Sub(".", False, False),
        Sub("[ab]", False, False),
        Sub("[^a]", False, False),
        Sub("[0-9]", False, False),
        Sub("\\d", False, False),
        Sub("\\w", False, False),
        Sub("\\s", False, False),
        Sub("-", False, False),
        Sub("^", True, False),
        Sub("$", True, False),
        Sub("\\b", True, False),
    ]
)
QUANTIFIERS = st.sampled_from(["*", "+", "?", "*?", "+?", "??", "{2}", "{1,3}", "{0,2}", "{2,}"])


def _extend(children: st.SearchStrategy[Sub]) -> st.SearchStrategy[Sub]:
    def concat(parts: list[Sub]) -> Sub:
        return Sub(
            "".join(p.text for p in parts),
            all(p.nullable for p in parts),
            any(p.empty_repeat for p in parts),
        )

    def alternate(parts: list[Sub]) -> Sub:
        return Sub(
            "|".join(p.text for p in parts),
            any(p.nullable for p in parts),
            any(p.empty_repeat for p in parts),
        )

    def group(sub: Sub, kind: str) -> Sub:
        return Sub(f"({kind}{sub.text})", sub.nullable, sub.empty_repeat)

    def repeat(sub: Sub, quantifier: str) -> Sub:
        nullable = sub.nullable or quantifier[0] in "*?" or quantifier.startswith("{0")
        return Sub(f"(?:{sub.text}){quantifier}", nullable, sub.empty_repeat or sub.nullable)

    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map(concat),
        st.lists(children, min_size=2, max_size=3).map(alternate),
        st.builds(group, children, st.sampled_from(["", "?:", "?i:"])),
        st.builds(repeat, children, QUANTIFIERS),
    )


PATTERNS = st.recursive(ATOMS, _extend, max_leaves=8)


@settings(max_examples=400, deadline=None)
@given(
    PATTERNS,
    st.booleans(),
    st.lists(st.text(alphabet="abA1- ", max_size=8), min_size=1, max_size=4),
)
def test_re2_answers_like_re_on_the_syntax_both_share(
    sub: Sub, ignore_case: bool, texts: list[str]
) -> None:
    pattern = ("(?i)" if ignore_case else "") + sub.text
    compiled = compile_pattern(pattern)
    for text in texts:
        full, found = answer(compiled, text)
        expected_full, expected_found = reference(pattern, text)
        assert full == expected_full, text
        if not sub.empty_repeat:  # a repeated group matching "": see mappings/README.md
            assert found == expected_found, text


def test_extract_keeps_the_first_group_named_or_not() -> None:
    assert compile_pattern("V-(?P<visit>[0-9]+)").extract("xV-5001y") == "5001"
    assert compile_pattern("(?:ID:)([0-9]+)-([0-9]+)").extract("ID:12-34") == "12"
    assert compile_pattern("[0-9]+").extract("ab123c45") == "123"
    assert compile_pattern("(X)|V").extract("V-1") == ""  # the group took no part
    assert compile_pattern("^NOPE").extract("YES") == ""


def test_flags_unicode_and_the_length_of_what_is_matched() -> None:
    assert compile_pattern("(?i)ris_[a-z]+").fullmatch("RIS_North")
    assert compile_pattern("(?i)MÜLLER").fullmatch("müller")
    assert compile_pattern("M\\x{fc}ller").fullmatch("Müller")
    assert compile_pattern("\\p{Lu}\\p{Ll}+").extract("名 Jürgen") == "Jürgen"
    assert compile_pattern("(?s)a.b").fullmatch("a\nb") and not compile_pattern("a.b").fullmatch(
        "a\nb"
    )
    assert compile_pattern("(?m)^b$").extract("a\nb\nc") == "b"
    assert compile_pattern("a\\z").fullmatch("a")
    # \d \w \s \b are ASCII (Python's re: Unicode); \p{Nd}, \p{L} are Unicode.
    assert not compile_pattern("\\d+").fullmatch("١٢٣")
    assert compile_pattern("\\p{Nd}+").fullmatch("١٢٣")
    assert compile_pattern("\\w+").extract("Jürgen") == "J"
    # $ is the end of the text only (Python's re: also before a final newline).
    assert compile_pattern("a$").extract("a\n") == ""
    long = "a" * MAX_MATCHED
    assert compile_pattern("a+").fullmatch(long) and not compile_pattern("a+").fullmatch(long + "a")
    assert compile_pattern("b").extract(long + "b") == ""  # only the first MAX_MATCHED are read


def test_a_lone_surrogate_is_read_as_a_replacement_character() -> None:
    assert compile_pattern("a.c").fullmatch("a\ud800c")
    assert compile_pattern("a(.)(c)").extract("xa\udfffc") == "\ufffd"


def test_patterns_compare_by_text() -> None:
    assert compile_pattern("a+") == compile_pattern("a+")
    assert compile_pattern("a+") != compile_pattern("a*")
    assert "a+" in repr(compile_pattern("a+"))


@pytest.mark.parametrize(
    ("pattern", "advice"),
    [
        (r"(a)\1", r"back-references (\1) are not supported"),
        (r"(?P<x>a)(?P=x)", "back-references ((?P=name))"),
        (r"(?<n>a)\k<n>", "back-references"),
        ("(?=a)a", "look-ahead"),
        ("(?!a)b", "negative look-ahead"),
        ("(?<=ID:)[0-9]+", "extract: 'ID:([0-9]+)'"),
        ("(?<!x)b", "negative look-behind"),
        ("(?>a+)b", "atomic groups"),
        ("(a)?(?(1)b|c)", "conditionals"),
        ("a++", "possessive quantifiers (++)"),
        ("a{2}+", "possessive"),
        ("(?x) a b", "inline flags (?x)"),
        ("(?ai)a", "not x, a, u or L"),
        ("(?#note)a", "comments"),
        ("a\\Z", "write \\z"),
        ("\\u00e9", "\\x{hhhh}"),
        ("a{,3}", "write {0,3}"),
        ("[{]a{,}", "write {0,}"),
        ("\\C", "write . (one character)"),
        ("a{1001}", "at most 1000"),
        ("(a{100}){100}", "counts inside counts multiply"),
        ("\\p{L}{200}", "KiB"),
        (".{1,1000}b", "KiB"),  # the reverse program does not fit: refused here, not at match
        ("(CT", "not a valid regular expression (RE2): missing ): (CT"),
        ("\\p{Foo}", "not a valid regular expression"),
        ("a" * (MAX_PATTERN + 1), f"longer than {MAX_PATTERN}"),
        ("\ud800", "lone surrogate"),
    ],
)
def test_what_re2_cannot_run_is_refused_with_advice(pattern: str, advice: str) -> None:
    with pytest.raises(PatternError) as refused:
        compile_pattern(pattern)
    assert advice in str(refused.value)


@pytest.mark.parametrize(
    "pattern",
    ["[a{,3}]", "\\{,3}", "\\Qa{,3}\\E", "[]{,]", "[[:alpha:]]{1,3}", "[^]]+", "a{0,3}"],
)
def test_braces_that_mean_the_same_in_both_engines_are_kept(pattern: str) -> None:
    compile_pattern(pattern)

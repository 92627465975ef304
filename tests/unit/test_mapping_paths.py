"""HL7 paths: syntax, canonical text, reading from python-hl7 segments, unescaping."""

from __future__ import annotations

from typing import Any

import hl7
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.hl7.paths import (
    HL7Path,
    PathSyntaxError,
    escape,
    parse_path,
    read,
    scalar,
    unescape,
)


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("PID-3", HL7Path("PID", 3), "PID-3"),
        ("OBR-4.2", HL7Path("OBR", 4, 1, 2), "OBR-4.2"),
        ("PID-3.4.1", HL7Path("PID", 3, 1, 4, 1), "PID-3.4.1"),
        ("PID-3[2]", HL7Path("PID", 3, 2), "PID-3[2]"),
        ("PID-3[2].1", HL7Path("PID", 3, 2, 1), "PID-3[2].1"),
        ("PID-3[1].1", HL7Path("PID", 3, 1, 1), "PID-3.1"),
        ("IPC-9[*]", HL7Path("IPC", 9, None), "IPC-9[*]"),
        ("IPC-9[*].1", HL7Path("IPC", 9, None, 1), "IPC-9[*].1"),
        ("ZDS-1.1", HL7Path("ZDS", 1, 1, 1), "ZDS-1.1"),
        ("Z01-12", HL7Path("Z01", 12), "Z01-12"),
        (" PV1-19 ", HL7Path("PV1", 19), "PV1-19"),
    ],
)
def test_parse(text: str, expected: HL7Path, canonical: str) -> None:
    path = parse_path(text)
    assert path == expected
    assert str(path) == canonical
    assert parse_path(str(path)) == path


def test_field_location_and_all_repetitions() -> None:
    assert parse_path("PID-3[2].1").field_location == "PID-3"
    assert parse_path("IPC-9[*]").all_repetitions
    assert not parse_path("IPC-9").all_repetitions


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PID", "not an HL7 path"),
        ("PID3", "not an HL7 path"),
        ("PID-", "not an HL7 path"),
        ("PI-3", "not an HL7 path"),
        ("PIDX-3", "not an HL7 path"),
        ("PID-3.", "not an HL7 path"),
        ("PID-3.1.2.3", "not an HL7 path"),
        ("PID-3[]", "not an HL7 path"),
        ("PID-3[x]", "not an HL7 path"),
        ("PID.3", "not an HL7 path"),
        ("pid-3", "upper case"),
        ("PID-0", "between 1 and"),
        ("PID-3[0]", "between 1 and"),
        ("PID-3.0", "between 1 and"),
        ("PID-1000", "between 1 and"),
        ("", "not an HL7 path"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(PathSyntaxError, match=message):
        parse_path(text)
    assert issubclass(PathSyntaxError, ValueError)


def test_non_text_is_a_syntax_error() -> None:
    with pytest.raises(PathSyntaxError):
        parse_path(3)  # type: ignore[arg-type]


MESSAGE = "\r".join(
    [
        "MSH|^~\\&|RIS|FAC|MWL|HOSP|20260101||ORM^O01|1|P|2.5.1",
        "PID|1||P1^^^HOSP&1.2.3&ISO^MR~P2^^^OTHER||Doe^John^^Jr^Dr^MD||"
        'A \\T\\ B \\F\\ C \\S\\ D \\R\\ E \\E\\ F|""|plain',
        "IPC|ACC|RP|1.2.3|SPS|CT||||AET1~AET2~~AET3",
    ]
)


@pytest.fixture(scope="module")
def message() -> Any:
    return hl7.parse(MESSAGE)


def segment(message: Any, name: str) -> Any:
    return message.segment(name)


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("PID-3", [("P1", "", "", "HOSP", "MR")]),
        ("PID-3.1", [("P1",)]),
        ("PID-3.4", [("HOSP", "1.2.3", "ISO")]),
        ("PID-3.4.2", [("1.2.3",)]),
        ("PID-3[2].4", [("OTHER",)]),
        ("PID-3[3]", []),
        ("PID-3[*].1", [("P1",), ("P2",)]),
        ("PID-3.9", [("",)]),
        ("PID-3.4.9", [("",)]),
        ("PID-5", [("Doe", "John", "", "Jr", "Dr", "MD")]),
        ("PID-1", [("1",)]),
        ("PID-1.2", [("",)]),
        ("PID-2", [("",)]),
        ("PID-8", [("",)]),  # the HL7 null "" reads as empty
        ("PID-9", [("plain",)]),
        ("PID-40", []),
        ("IPC-9[*]", [("AET1",), ("AET2",), ("",), ("AET3",)]),
        ("IPC-9", [("AET1",)]),
        ("MSH-1", [("|",)]),
        ("MSH-2", [("^~\\&",)]),
        ("MSH-9.2", [("O01",)]),
    ],
)
def test_read(message: Any, path: str, values: list[tuple[str, ...]]) -> None:
    parsed = parse_path(path)
    assert read(segment(message, parsed.segment), parsed) == values


def test_read_unescapes(message: Any) -> None:
    (value,) = read(segment(message, "PID"), parse_path("PID-7"))
    assert scalar(value) == "A & B | C ^ D ~ E \\ F"


def test_scalar_is_the_first_part() -> None:
    assert scalar(("a", "b")) == "a"
    assert scalar(()) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", "a|b^c&d~e\\f"),
        ("\\H\\bold\\N\\", "bold"),
        ("line1\\.br\\line2", "line1\nline2"),
        ("a\\.sp2\\b", "a\nb"),
        ("a\\.in+4\\b", "ab"),
        ("\\X41\\\\X42\\", "AB"),
        ("\\XC3A9\\", "\u00e9"),  # UTF-8 bytes
        ("\\XE9\\", "\u00e9"),  # not UTF-8: ISO 8859-1
        ("\\X0D0A\\", "\r\n"),
        ("\\XZZ\\", "\\XZZ\\"),  # not hex: kept
        ("a\\C2842\\b", "ab"),  # charset switch: dropped
        ("a\\M2442\\b", "ab"),
        ("a\\Zlocal\\b", "ab"),
        ("C:\\temp\\x", "C:\\temp\\x"),  # unknown sequence: kept literally
        ("unterminated \\F", "unterminated \\F"),
    ],
)
def test_unescape(text: str, expected: str) -> None:
    assert unescape(text) == expected


def test_unescape_with_other_delimiters() -> None:
    assert unescape("a/F/b/S/c", "/", "\r#*$%") == "a#b$c"


@pytest.mark.parametrize(
    ("text", "charset", "expected"),
    [
        ("\\XC3\\\\XA9\\", None, "\u00e9"),  # adjacent sequences form one UTF-8 character
        ("\\XC3\\x\\XA9\\", None, "\u00c3x\u00a9"),  # not adjacent: each alone
        ("\\XE9\\", "iso8859_1", "\u00e9"),
        ("\\XB1\\", "iso8859_2", "\u0105"),
        ("\\XC3A9\\", "iso8859_1", "\u00c3\u00a9"),
        ("\\X1B2442\\", "iso2022_jp", ""),  # an escape sequence alone decodes to nothing
        ("\\XE9\\", "ascii", "\u00e9"),  # invalid in the charset: ISO 8859-1, nothing lost
        ("\\XE9\\", "no-such-codec", "\u00e9"),
        ("\\X\\", None, "\\X\\"),  # no digits: kept
        ("\\XABC\\", None, "\\XABC\\"),  # odd number of digits: kept
    ],
)
def test_unescape_hex_in_charset(text: str, charset: str | None, expected: str) -> None:
    assert unescape(text, charset=charset) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("A|B^C&D~E\\F", "A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\F"),
        ("line1\r\nline2", "line1\\X0D\\\\X0A\\line2"),
        ("M\u00fcller", "M\u00fcller"),
    ],
)
def test_escape(text: str, expected: str) -> None:
    assert escape(text) == expected


_DELIMITER_CHARS = "|^~\\&#$*/%!@+"


@st.composite
def delimiters(draw: st.DrawFn) -> tuple[str, str]:
    """An escape character and python-hl7 separators, all five distinct."""
    chars = draw(st.permutations(_DELIMITER_CHARS))
    return chars[0], "\r" + "".join(chars[1:5])


@given(st.text(), delimiters(), st.sampled_from([None, "utf-8", "iso8859_1", "iso8859_2"]))
def test_escape_unescape_round_trip(
    text: str, delims: tuple[str, str], charset: str | None
) -> None:
    esc, separators = delims
    escaped = escape(text, esc, separators)
    assert not set(escaped) & set(separators[1:] + "\r\n")
    assert unescape(escaped, esc, separators, charset) == text

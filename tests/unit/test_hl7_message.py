"""Decoding framed HL7 bytes: MSH-18 charsets, separators, header errors, peek_header."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import HL7Error
from broker.hl7.charsets import charset_codec
from broker.hl7.codes import AckCode, ErrorCode
from broker.hl7.message import MessageDecoder, peek_header
from broker.hl7.paths import parse_path, read
from tests.corpus import corpus_path

LATIN1_U_UMLAUT = b"\xfc"
MSH = "MSH|^~\\&|RIS^1.2.3^ISO|RADIOLOGY|MWL|HOSP|20261125083000||{type}|{id}|P|{ver}|||AL|NE||{cs}"


def message(
    *segments: str,
    charset: str = "",
    encoding: str = "utf-8",
    type_: str = "ORM^O01^ORM_O01",
    control_id: str = "MSG-1",
    version: str = "2.5.1",
    sep: str = "\r",
) -> bytes:
    header = MSH.format(type=type_, id=control_id, ver=version, cs=charset)
    return sep.join([header, *segments]).encode(encoding) + sep.encode()


def pid5(raw: bytes, default: str = "UNICODE UTF-8") -> str:
    parsed = MessageDecoder(default).decode(raw)
    return str(parsed.message.segment("PID")(5))


def expect_error(raw: bytes, ack: AckCode, code: ErrorCode, location: str) -> HL7Error:
    with pytest.raises(HL7Error) as info:
        MessageDecoder("UNICODE UTF-8").decode(raw)
    assert (info.value.ack_code, info.value.err_code, info.value.location) == (ack, code, location)
    return info.value


# -- character sets -----------------------------------------------------------------


def test_latin1_bytes_with_8859_1() -> None:
    raw = message("PID|||P1||M\u00fcller^J\u00fcrgen", charset="8859/1", encoding="latin-1")
    assert b"\xfc" in raw
    parsed = MessageDecoder("UNICODE UTF-8").decode(raw)
    assert parsed.charset == "iso8859-1"
    assert str(parsed.message.segment("PID")(5)) == "M\u00fcller^J\u00fcrgen"


def test_utf8_declared() -> None:
    raw = message("PID|||P1||\u00d8verg\u00e5rd^Zo\u00eb", charset="UNICODE UTF-8")
    parsed = MessageDecoder("ASCII").decode(raw)
    assert parsed.charset == "utf-8"
    assert str(parsed.message.segment("PID")(5)) == "\u00d8verg\u00e5rd^Zo\u00eb"


@pytest.mark.parametrize("msh18", ["ISO IR87", "~ISO IR87", "~ISOIR87", "ISO IR6~ISO IR 87"])
def test_iso2022_jp(msh18: str) -> None:
    name = "\u5c71\u7530^\u592a\u90ce"  # 山田^太郎
    raw = message(f"PID|||P1||{name}", charset=msh18, encoding="iso2022_jp")
    assert b"\x1b$B" in raw
    parsed = MessageDecoder("UNICODE UTF-8").decode(raw)
    assert parsed.charset == "iso2022_jp"
    assert str(parsed.message.segment("PID")(5)) == name


def test_empty_msh18_uses_default_charset() -> None:
    raw = message("PID|||P1||Ren\u00e9", encoding="latin-1")
    assert pid5(raw, default="8859/1") == "Ren\u00e9"


def test_first_repetition_of_msh18_is_the_base_charset() -> None:
    raw = message("PID|||P1||Ren\u00e9", charset="8859/1~ISO IR100", encoding="latin-1")
    assert pid5(raw) == "Ren\u00e9"


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("ASCII", "ascii"),
        ("ISO IR6", "ascii"),
        ("ISO IR100", "iso8859_1"),
        ("iso ir 100", "iso8859_1"),
        ("8859/1", "iso8859_1"),
        ("8859/2", "iso8859_2"),
        ("8859/9", "iso8859_9"),
        ("8859/15", "iso8859_15"),
        ("UNICODE UTF-8", "utf_8"),
        ("unicode utf-8", "utf_8"),
        ("UNICODE", "utf_8"),
        ("UTF-8", "utf_8"),
        ("ISO IR87", "iso2022_jp"),
        ("ISO IR 87", "iso2022_jp"),
        ("ISOIR87", "iso2022_jp"),
        ("GB 18030-2000", "gb18030"),
        ("KS X 1001", "euc_kr"),
        ("BIG-5", "big5"),
        ("EBCDIC", None),
        ("", None),
    ],
)
def test_charset_names(name: str, codec: str | None) -> None:
    assert charset_codec(name) == codec


def test_utf8_bom_is_skipped() -> None:
    raw = b"\xef\xbb\xbf" + message("PID|||P1||Zo\u00eb", charset="UNICODE UTF-8")
    parsed = MessageDecoder("UNICODE UTF-8").decode(raw)
    assert parsed.text.startswith("MSH|")
    assert str(parsed.message.segment("PID")(5)) == "Zo\u00eb"


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_segment_separators(sep: str) -> None:
    raw = message("PID|||P1||A^B", "PV1||O", sep=sep)
    parsed = MessageDecoder("UNICODE UTF-8").decode(raw)
    assert parsed.text.split("\r")[1:] == ["PID|||P1||A^B", "PV1||O"]
    assert [str(s(0)) for s in parsed.message] == ["MSH", "PID", "PV1"]


def test_blank_lines_are_dropped() -> None:
    raw = message("PID|||P1", "", "PV1||O", sep="\r\n")
    assert MessageDecoder("UNICODE UTF-8").decode(raw).text.count("\r") == 2


# -- errors ------------------------------------------------------------------------


def test_no_msh() -> None:
    expect_error(b"PID|||P1\r", AckCode.REJECT, ErrorCode.SEGMENT_SEQUENCE_ERROR, "MSH")
    expect_error(b"\x00\x00MSH|^~\\&|\r", AckCode.REJECT, ErrorCode.SEGMENT_SEQUENCE_ERROR, "MSH")


def test_unknown_charset_is_rejected() -> None:
    raw = message("PID|||P1", charset="KLINGON")
    error = expect_error(raw, AckCode.REJECT, ErrorCode.DATA_TYPE_ERROR, "MSH-18")
    assert "KLINGON" in error.text


def test_bytes_invalid_for_the_declared_charset() -> None:
    raw = message("PID|||P1||M\u00fcller", charset="UNICODE UTF-8", encoding="latin-1")
    error = expect_error(raw, AckCode.ERROR, ErrorCode.DATA_TYPE_ERROR, "MSH-18")
    assert f"offset {raw.index(LATIN1_U_UMLAUT)}" in error.text
    assert "0xFC" in error.text


def test_bad_byte_offset_counts_the_bom() -> None:
    raw = b"\xef\xbb\xbf" + message("PID|||P1||M\u00fcller", encoding="latin-1")
    error = expect_error(raw, AckCode.ERROR, ErrorCode.DATA_TYPE_ERROR, "MSH-18")
    assert f"offset {raw.index(LATIN1_U_UMLAUT)}" in error.text


def test_missing_message_type() -> None:
    raw = message("PID|||P1", type_="")
    expect_error(raw, AckCode.REJECT, ErrorCode.REQUIRED_FIELD_MISSING, "MSH-9")


def test_missing_control_id() -> None:
    raw = message("PID|||P1", control_id="")
    expect_error(raw, AckCode.REJECT, ErrorCode.REQUIRED_FIELD_MISSING, "MSH-10")


def test_missing_encoding_characters() -> None:
    expect_error(b"MSH||RIS|X\r", AckCode.REJECT, ErrorCode.REQUIRED_FIELD_MISSING, "MSH-2")
    expect_error(b"MSH|\n", AckCode.REJECT, ErrorCode.REQUIRED_FIELD_MISSING, "MSH-2")


@pytest.mark.parametrize("encoding", ["^~\\\\&", "^^~&", "^~A&"])
def test_unusable_encoding_characters(encoding: str) -> None:
    raw = f"MSH|{encoding}|RIS|X|||||ORM^O01|1|P|2.5\r".encode()
    expect_error(raw, AckCode.REJECT, ErrorCode.DATA_TYPE_ERROR, "MSH-2")


def test_unknown_default_charset_is_refused_when_the_decoder_is_built() -> None:
    with pytest.raises(ValueError, match="default charset"):
        MessageDecoder("KLINGON")


# -- header ------------------------------------------------------------------------


def test_header_fields() -> None:
    parsed = MessageDecoder("UNICODE UTF-8").decode(message("PID|||P1", version="2.5^DEU"))
    assert parsed.message_type == "ORM^O01"
    assert parsed.message_structure == "ORM_O01"
    assert parsed.control_id == "MSG-1"
    assert parsed.sending_application == "RIS^1.2.3^ISO"
    assert parsed.sending_facility == "RADIOLOGY"
    assert (parsed.receiving_application, parsed.receiving_facility) == ("MWL", "HOSP")
    assert (parsed.processing_id, parsed.version) == ("P", "2.5")
    assert (parsed.accept_ack_type, parsed.application_ack_type) == ("AL", "NE")
    assert (parsed.field_separator, parsed.encoding_characters) == ("|", "^~\\&")
    assert parsed.raw.startswith(b"MSH|")


def test_message_type_without_event() -> None:
    assert MessageDecoder("ASCII").decode(message(type_="ACK")).message_type == "ACK"


def test_other_delimiters() -> None:
    raw = b"MSH#$*/%#RIS#FAC#MWL#HOSP#2026##ORM$O01#C1#P#2.5.1\rPID###P1$$$AUTH##FAM$GIV\r"
    parsed = MessageDecoder("ASCII").decode(raw)
    assert (parsed.field_separator, parsed.encoding_characters) == ("#", "$*/%")
    assert parsed.message_type == "ORM^O01"


# -- peek_header ---------------------------------------------------------------------


def test_peek_header_reads_an_undecodable_message() -> None:
    raw = message("PID|||P1||M\u00fcller", charset="UNICODE UTF-8", encoding="latin-1")
    header = peek_header(raw)
    assert header is not None
    assert header["control_id"] == "MSG-1"
    assert header["message_type"] == "ORM^O01"
    assert header["trigger_event"] == "O01"
    assert header["sending_application"] == "RIS^1.2.3^ISO"
    assert header["receiving_facility"] == "HOSP"
    assert header["version"] == "2.5.1"
    assert header["processing_id"] == "P"
    assert (header["field_separator"], header["encoding_characters"]) == ("|", "^~\\&")


def test_peek_header_after_bom_and_with_lf() -> None:
    header = peek_header(b"\xef\xbb\xbf" + message("PID|||P1", sep="\n"))
    assert header is not None and header["control_id"] == "MSG-1"


@pytest.mark.parametrize("raw", [b"", b"MSH", b"PID|||", b"\x00MSH|", b"\xff\xfe\x00M"])
def test_peek_header_without_msh(raw: bytes) -> None:
    assert peek_header(raw) is None


def test_peek_header_of_a_bare_msh() -> None:
    header = peek_header(b"MSH|")
    assert header is not None
    assert header["control_id"] == "" and header["encoding_characters"] == ""


@given(st.binary(max_size=300))
def test_peek_header_never_raises(raw: bytes) -> None:
    peek_header(raw)
    peek_header(b"MSH" + raw)


@given(st.binary(max_size=300))
def test_decode_raises_only_hl7_errors(raw: bytes) -> None:
    for candidate in (raw, b"MSH|^~\\&|" + raw, b"MSH|^~\\&|A|B|C|D|E||ORM^O01|1|P|2.5|" + raw):
        with contextlib.suppress(HL7Error):
            MessageDecoder("UNICODE UTF-8").decode(candidate)


# -- per-sender default charset, mislabelled UTF-8 -------------------------------------

SENDERS = {"RIS": "8859/1", "RIS^OTHER_FAC": "8859/2", "LEGACY": "ASCII"}


def test_sender_charset_applies_when_msh18_is_empty() -> None:
    raw = message("PID|||P1||Ren\u00e9", encoding="latin-1")  # MSH-3 RIS^1.2.3^ISO
    parsed = MessageDecoder("UNICODE UTF-8", SENDERS).decode(raw)
    assert parsed.charset == "iso8859-1"
    assert str(parsed.message.segment("PID")(5)) == "Ren\u00e9"


def test_sender_and_facility_key_wins_over_sender_key() -> None:
    raw = message("PID|||P1||\u0141\u00f3d\u017a", encoding="iso8859_2").replace(
        b"|RADIOLOGY|", b"|OTHER_FAC|"
    )
    parsed = MessageDecoder("UNICODE UTF-8", SENDERS).decode(raw)
    assert parsed.charset == "iso8859-2"
    assert str(parsed.message.segment("PID")(5)) == "\u0141\u00f3d\u017a"


def test_declared_msh18_wins_over_the_sender_charset() -> None:
    raw = message("PID|||P1||\u00d8ver", charset="UNICODE UTF-8")
    assert MessageDecoder("ASCII", SENDERS).decode(raw).charset == "utf-8"


def test_unknown_sender_gets_the_default() -> None:
    raw = message("PID|||P1||Zo\u00eb").replace(b"|RIS^1.2.3^ISO|", b"|PACS|")
    assert MessageDecoder("UNICODE UTF-8", SENDERS).decode(raw).charset == "utf-8"


def test_unknown_sender_charset_is_refused_when_the_decoder_is_built() -> None:
    with pytest.raises(ValueError, match="KLINGON"):
        MessageDecoder("UNICODE UTF-8", {"RIS": "KLINGON"})


@pytest.mark.parametrize(
    ("declared", "senders"),
    [("8859/1", {}), ("ASCII", {}), ("", {"RIS": "8859/1"})],
)
def test_multibyte_utf8_under_a_single_byte_label_is_read_as_utf8(
    declared: str, senders: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    raw = message(
        "PID|||P1||M\u00fcller^J\u00fcrgen", "OBR|1||||||||||||||||||||||||||||||A \u2013 B"
    )
    raw = raw.replace(b"||AL|NE||", f"||AL|NE||{declared}".encode())
    with caplog.at_level("WARNING", logger="broker.hl7.message"):
        parsed = MessageDecoder("UNICODE UTF-8", senders).decode(raw)
    assert (parsed.charset, parsed.charset_mislabelled) == ("utf-8", True)
    assert str(parsed.message.segment("PID")(5)) == "M\u00fcller^J\u00fcrgen"
    (record,) = caplog.records
    assert "MSG-1" in record.getMessage() and "UTF-8" in record.getMessage()
    assert "M\u00fcller" not in record.getMessage()  # no patient data in the log


def test_real_latin1_is_not_mistaken_for_utf8() -> None:
    # "Ã©" in ISO 8859-1 is C3 A9, which is also valid UTF-8 for "é": only such
    # pairs are ambiguous, and they do not occur in real names.
    raw = message("PID|||P1||M\u00fcller", charset="8859/1", encoding="latin-1")
    parsed = MessageDecoder("UNICODE UTF-8").decode(raw)
    assert (parsed.charset, parsed.charset_mislabelled) == ("iso8859-1", False)


def test_latin1_bytes_under_ascii_label_are_still_an_error() -> None:
    raw = message("PID|||P1||M\u00fcller", charset="ASCII", encoding="latin-1")
    expect_error(raw, AckCode.ERROR, ErrorCode.DATA_TYPE_ERROR, "MSH-18")


def test_utf8_never_overrides_a_multibyte_declaration() -> None:
    name = "\u5c71\u7530"
    raw = message(f"PID|||P1||{name}", charset="~ISO IR87", encoding="iso2022_jp")
    assert MessageDecoder("UNICODE UTF-8").decode(raw).charset_mislabelled is False


@pytest.mark.corpus
def test_dcm4che_order_with_en_dash_under_8859_1() -> None:
    path = corpus_path("hl7", "dcm4che", "OMG_O19-GeneralClinicalOrder-Eyecare.hl7")
    parsed = MessageDecoder("UNICODE UTF-8").decode(path.read_bytes())
    assert (parsed.charset, parsed.charset_mislabelled) == ("utf-8", True)
    assert "\u2013" in parsed.text


# -- escape sequences, end to end (decode, then read through a mapping path) ----------


@pytest.mark.parametrize(
    ("charset", "encoding", "field", "expected"),
    [
        ("UNICODE UTF-8", "utf-8", "A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\F", "A|B^C&D~E\\F"),
        ("UNICODE UTF-8", "utf-8", "\\H\\IMPORTANT\\N\\ note", "IMPORTANT note"),
        ("UNICODE UTF-8", "utf-8", "line 1\\.br\\line 2", "line 1\nline 2"),
        ("UNICODE UTF-8", "utf-8", "a\\X0D\\\\X0A\\b", "a\r\nb"),
        ("UNICODE UTF-8", "utf-8", "Ren\\XC3A9\\", "Ren\u00e9"),
        ("UNICODE UTF-8", "utf-8", "Ren\\XC3\\\\XA9\\", "Ren\u00e9"),  # one char, two escapes
        ("8859/1", "latin-1", "FRAN\\XC7\\OIS", "FRAN\u00c7OIS"),  # dcm4che SIU^S12 style
        ("8859/1", "latin-1", "\\XC3A9\\", "\u00c3\u00a9"),  # Latin-1 bytes, not UTF-8
        ("8859/2", "iso8859_2", "\\XB1\\", "\u0105"),  # 0xB1 is a-ogonek in ISO 8859-2
        ("UNICODE UTF-8", "utf-8", "\\XE9\\", "\u00e9"),  # invalid UTF-8: ISO 8859-1 kept
        ("UNICODE UTF-8", "utf-8", "C:\\temp\\", "C:\\temp\\"),  # unknown: literal
    ],
)
def test_escapes_end_to_end(charset: str, encoding: str, field: str, expected: str) -> None:
    raw = message(f"OBR|1||||||||||||||||||||||||||||||{field}", charset=charset, encoding=encoding)
    obr = MessageDecoder("UNICODE UTF-8").decode(raw).message.segment("OBR")
    assert read(obr, parse_path("OBR-31")) == [(expected,)]


def test_custom_delimiters_end_to_end() -> None:
    # MSH-1 '#', MSH-2 component '$', repetition '*', escape '/', subcomponent '%'
    raw = (
        b"MSH#$*/%#RIS#FAC#MWL#HOSP#2026##ORM$O01#C1#P#2.5.1###AL#NE##8859/1\r"
        b"PID###P1$$$AUTH*P2##FAM/F/ILY$GIV/S/EN/T/X/R/Y/E/Z$\xc9\r"
    )
    parsed = MessageDecoder("UNICODE UTF-8").decode(raw)
    pid = parsed.message.segment("PID")
    assert read(pid, parse_path("PID-3[*]")) == [("P1", "", "", "AUTH"), ("P2",)]
    assert read(pid, parse_path("PID-5")) == [("FAM#ILY", "GIV$EN%X*Y/Z", "\u00c9")]

"""ACK building: MSA/ERR content per HL7 v2.5.1 §2.9 and §2.14, per sender version."""

from datetime import UTC, datetime

import pytest

from broker.errors import HL7Error, MappingError
from broker.hl7.ack import AckContext, AckWarning, build_ack, hl7_location
from broker.hl7.ackmode import AckCondition, AckMode
from broker.hl7.codes import AckCode, ErrorCode, Severity
from broker.worklist.model import Truncation

NOW = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


def segments(ack: bytes, codec: str = "utf-8") -> dict[str, list[str]]:
    text = ack.decode(codec)
    assert text.endswith("\r")
    return {s[:3]: s.split("|") for s in text.strip("\r").split("\r")}


def test_aa_echoes_control_id_and_swaps_applications() -> None:
    ctx = AckContext(
        sending_application="RIS",
        sending_facility="HOSP",
        control_id="MSG42",
        trigger_event="O01",
        version="2.3.1",
        processing_id="P",
    )
    segs = segments(
        build_ack(ctx, AckCode.ACCEPT, application="MWL_BROKER", facility="RAD", now=NOW)
    )
    msh, msa = segs["MSH"], segs["MSA"]
    assert msh[2:7] == ["MWL_BROKER", "RAD", "RIS", "HOSP", "20261125100000"]
    assert msh[8] == "ACK^O01^ACK"
    assert msh[9] and msh[9] != "MSG42"
    assert (msh[10], msh[11]) == ("P", "2.3.1")
    assert msa == ["MSA", "AA", "MSG42"]
    assert "ERR" not in segs


def test_v251_error_uses_err2_err3_err4_err8() -> None:
    ctx = AckContext(control_id="7", trigger_event="O23", version="2.5.1")
    error = MappingError(ErrorCode.REQUIRED_FIELD_MISSING, "PID-3", "PID-3 (patient ID) is empty")
    segs = segments(build_ack(ctx, AckCode.ERROR, error=error, now=NOW))
    assert segs["MSA"] == ["MSA", "AE", "7", "PID-3 (patient ID) is empty"]
    err = segs["ERR"]
    assert err[1] == ""
    assert err[2] == "PID^1^3"
    assert err[3] == "101^Required field missing^HL70357"
    assert err[4] == "E"
    assert err[8] == "PID-3 (patient ID) is empty"


def test_v23_error_uses_err1() -> None:
    ctx = AckContext(control_id="7", trigger_event="O01", version="2.3")
    error = HL7Error(AckCode.REJECT, ErrorCode.UNSUPPORTED_MESSAGE_TYPE, "MSH-9", "no")
    segs = segments(build_ack(ctx, AckCode.REJECT, error=error, now=NOW))
    assert segs["MSH"][8] == "ACK^O01"
    assert segs["ERR"] == ["ERR", "MSH^1^9^200&Unsupported message type&HL70357"]


def test_text_is_escaped_and_charset_echoed() -> None:
    ctx = AckContext(control_id="1", version="2.5.1", charset_field="8859/1", codec="latin-1")
    error = MappingError(ErrorCode.VALUE_TOO_LONG, "OBR-18", "Accession 'Ä|B^C' too long")
    ack = build_ack(ctx, AckCode.ERROR, error=error, now=NOW)
    segs = segments(ack, "latin-1")
    assert segs["MSH"][17] == "8859/1"
    assert segs["MSA"][3] == "Accession 'Ä\\F\\B\\S\\C' too long"
    assert "Ä".encode("latin-1") in ack


def test_custom_delimiters_are_used() -> None:
    ctx = AckContext(
        field_separator="#",
        encoding_characters="$~\\&",
        control_id="1",
        trigger_event="O01",
        version="2.4",
    )
    text = build_ack(ctx, AckCode.ACCEPT, now=NOW).decode()
    assert text.startswith("MSH#$~\\&#")
    assert "#ACK$O01$ACK#" in text


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("PID-3", ["PID", "1", "3"]),
        ("MSH-9.2", ["MSH", "1", "9", "1", "2"]),
        ("IPC-9[2]", ["IPC", "1", "9", "2"]),
        ("OBR-4.1.2", ["OBR", "1", "4", "1", "1", "2"]),
        ("MSH", ["MSH", "1"]),
        ("PID-5[*]", ["PID", "1", "5"]),
        (None, []),
    ],
)
def test_locations(location: str | None, expected: list[str]) -> None:
    assert hl7_location(location) == expected


@pytest.mark.parametrize(
    ("raw", "field_sep", "encoding"),
    [
        (b"MSH|^~\\&|RIS|H|||20261125||ORM^O01|9|P|2.3\r", "|", "^~\\&"),
        (b"MSH#$~\\&#RIS#H###20261125##ORM$O01#9#P#2.4\r", "#", "$~\\&"),
        (b"MSH|^^^^|RIS|H|||20261125||ORM^O01|9|P|2.3\r", "|", "^~\\&"),
        (b"MSH|ab\\&|RIS|H|||20261125||ORM^O01|9|P|2.3\r", "|", "^~\\&"),
        (b"garbage", "|", "^~\\&"),
    ],
)
def test_nak_for_undecodable_message_uses_readable_delimiters(
    raw: bytes, field_sep: str, encoding: str
) -> None:
    from broker.hl7.ack import context_from_raw

    ctx = context_from_raw(raw)
    assert (ctx.field_separator, ctx.encoding_characters) == (field_sep, encoding)


# -- enhanced acknowledgment mode (HL7 v2.5.1 §2.9.3, table 0155) ---------------


def test_empty_msh15_and_msh16_mean_original_mode() -> None:
    mode = AckMode.of("", " ")
    assert not mode.enhanced
    for code in (AckCode.ACCEPT, AckCode.ERROR, AckCode.REJECT):
        assert mode.accept_code(code) is code
        assert mode.sends_accept_ack(code)
        assert not mode.wants_application_ack(code)


@pytest.mark.parametrize(
    ("msh15", "msh16", "accept", "application"),
    [
        ("AL", "NE", AckCondition.ALWAYS, AckCondition.NEVER),
        ("NE", "AL", AckCondition.NEVER, AckCondition.ALWAYS),
        ("er", "su", AckCondition.ERROR_ONLY, AckCondition.SUCCESS_ONLY),
        ("", "ER", AckCondition.ALWAYS, AckCondition.ERROR_ONLY),  # empty MSH-15: AL
        ("AL", "", AckCondition.ALWAYS, AckCondition.ALWAYS),
        ("XX", "NE", AckCondition.ALWAYS, AckCondition.NEVER),  # unknown value: AL
    ],
)
def test_any_valued_msh15_or_msh16_means_enhanced_mode(
    msh15: str, msh16: str, accept: AckCondition, application: AckCondition
) -> None:
    assert AckMode.of(msh15, msh16) == AckMode(True, accept, application)


@pytest.mark.parametrize(
    ("original", "accept"),
    [
        (AckCode.ACCEPT, AckCode.COMMIT_ACCEPT),
        (AckCode.ERROR, AckCode.COMMIT_ERROR),
        (AckCode.REJECT, AckCode.COMMIT_REJECT),
    ],
)
def test_accept_ack_code_follows_the_original_outcome(original: AckCode, accept: AckCode) -> None:
    assert AckMode.of("AL", "NE").accept_code(original) is accept


# condition → (sent on success, sent on AE, sent on AR), table 0155
CONDITION_TABLE = {
    "AL": (True, True, True),
    "NE": (False, False, False),
    "ER": (False, True, True),
    "SU": (True, False, False),
}


@pytest.mark.parametrize("condition", sorted(CONDITION_TABLE))
def test_table_0155_decides_both_acknowledgments(condition: str) -> None:
    outcomes = (AckCode.ACCEPT, AckCode.ERROR, AckCode.REJECT)
    accept = AckMode.of(condition, "NE")
    application = AckMode.of("AL", condition)
    on_success = CONDITION_TABLE[condition][0]
    # MSH-15 may withhold a positive accept ACK; a refusal is always sent.
    assert tuple(accept.sends_accept_ack(c) for c in outcomes) == (on_success, True, True)
    expected = CONDITION_TABLE[condition]
    assert tuple(application.wants_application_ack(c) for c in outcomes) == expected
    assert not accept.wants_application_ack(AckCode.ACCEPT)


def test_commit_ack_carries_the_same_err_segment() -> None:
    ctx = AckContext(control_id="7", trigger_event="O01", version="2.5.1")
    mode = AckMode.of("AL", "AL")
    error = MappingError(ErrorCode.REQUIRED_FIELD_MISSING, "PID-3", "PID-3 (patient ID) is empty")
    original = segments(build_ack(ctx, AckCode.ERROR, error=error, now=NOW))
    commit = segments(build_ack(ctx, mode.accept_code(AckCode.ERROR), error=error, now=NOW))
    assert commit["MSA"] == ["MSA", "CE", "7", "PID-3 (patient ID) is empty"]
    assert commit["ERR"] == original["ERR"]


# -- warnings in an accepting ACK (values cut to fit their VR) -----------------------

NAME_CUT = Truncation("PV1-8", "ReferringPhysicianName", "PN", 68, 64)
SCHEME_CUT = Truncation("OBR-4.3", "CodingSchemeDesignator", "SH", 17, 16)


def all_segments(ack: bytes) -> list[list[str]]:
    return [s.split("|") for s in ack.decode().strip("\r").split("\r")]


def test_v251_aa_carries_one_err_of_severity_w_per_warning() -> None:
    ctx = AckContext(control_id="9", trigger_event="O23", version="2.5.1")
    warnings = [AckWarning.of(NAME_CUT), AckWarning.of(SCHEME_CUT)]
    segs = all_segments(build_ack(ctx, AckCode.ACCEPT, warnings=warnings, now=NOW))
    assert [s[0] for s in segs] == ["MSH", "MSA", "ERR", "ERR"]
    msa, first, second = segs[1], segs[2], segs[3]
    assert msa[:3] == ["MSA", "AA", "9"]
    assert msa[3] == "Warnings: 2 values cut to fit their DICOM attributes (PV1-8, OBR-4.3)"
    assert first[1:5] == ["", "PV1^1^8", "104^Value too long^HL70357", Severity.WARNING.value]
    assert first[8] == (
        "PV1-8 (ReferringPhysicianName) had 68 characters; "
        "VR PN allows at most 64 per name group: cut to 64"
    )
    assert second[2:5] == ["OBR^1^4^1^3", "104^Value too long^HL70357", "W"]
    assert second[8].startswith("OBR-4.3 (CodingSchemeDesignator) had 17 characters")


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_v23_and_v24_aa_carry_the_warnings_in_err1(version: str) -> None:
    """One ERR segment (the only one their ACK allows), one ERR-1 repetition per warning."""
    ctx = AckContext(control_id="9", trigger_event="O01", version=version)
    warnings = [AckWarning.of(NAME_CUT), AckWarning.of(SCHEME_CUT)]
    segs = all_segments(build_ack(ctx, AckCode.ACCEPT, warnings=warnings, now=NOW))
    assert [s[0] for s in segs] == ["MSH", "MSA", "ERR"]
    assert segs[1][1] == "AA"
    first, second = segs[2][1].split("~")
    assert first == (
        "PV1^1^8^104&Warning: PV1-8 (ReferringPhysicianName) had 68 characters; "
        "VR PN allows at most 64 per name group: cut to 64&HL70357"
    )
    assert second.startswith("OBR^1^4^104&Warning: OBR-4.3 (CodingSchemeDesignator) had 17")


def test_one_warning_is_msa3_and_delimiters_in_it_are_escaped() -> None:
    ctx = AckContext(control_id="9", version="2.3.1")
    warning = AckWarning(ErrorCode.VALUE_TOO_LONG, "OBR-4.2", "a&b^c")
    segs = all_segments(build_ack(ctx, AckCode.ACCEPT, warnings=[warning], now=NOW))
    assert segs[1] == ["MSA", "AA", "9", "Warning: a\\T\\b\\S\\c"]
    assert segs[2] == ["ERR", "OBR^1^4^104&Warning: a\\T\\b\\S\\c&HL70357"]


def test_aa_without_warnings_has_no_err() -> None:
    ctx = AckContext(control_id="9", version="2.5.1")
    segs = all_segments(build_ack(ctx, AckCode.ACCEPT, warnings=[], now=NOW))
    assert [s[0] for s in segs] == ["MSH", "MSA"] and segs[1] == ["MSA", "AA", "9"]

"""split_messages and summarize_ack (broker.mllp.client): bytes in, values out."""

from __future__ import annotations

import pytest

from broker.errors import BrokerError
from broker.mllp.client import AckSummary, MLLPClientError, split_messages, summarize_ack

MSH_1 = b"MSH|^~\\&|RIS|HOSP|MWL|HOSP|20240101120000||ORM^O01|A1|P|2.5.1"
MSH_2 = b"MSH|^~\\&|RIS|HOSP|MWL|HOSP|20240101120001||ADT^A08|B2|P|2.5.1"
PID = b"PID|1||123^^^HOSP||DOE^JANE"
ORC = b"ORC|NW|ORD1"

ONE = MSH_1 + b"\r" + PID + b"\r" + ORC + b"\r"
TWO = MSH_2 + b"\r" + PID + b"\r"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(MSH_1 + b"\r" + PID + b"\r" + ORC, [ONE], id="cr-no-trailing"),
        pytest.param(MSH_1 + b"\n" + PID + b"\n" + ORC + b"\n", [ONE], id="lf"),
        pytest.param(MSH_1 + b"\r\n" + PID + b"\r\n" + ORC + b"\r\n", [ONE], id="crlf"),
        pytest.param(
            b"\n\n" + MSH_1 + b"\n\n" + PID + b"\n   \n" + ORC + b"\n\n", [ONE], id="blank-lines"
        ),
        pytest.param(ONE + TWO, [ONE, TWO], id="two-messages-cr"),
        pytest.param(
            (ONE + b"\n" + TWO).replace(b"\r", b"\r\n"), [ONE, TWO], id="two-messages-crlf-blank"
        ),
        pytest.param(
            b"FHS|^~\\&|RIS\rBHS|^~\\&|RIS\r" + ONE + TWO + b"BTS|2\rFTS|1\r",
            [ONE, TWO],
            id="batch-wrappers",
        ),
        pytest.param(b"\xef\xbb\xbf" + ONE, [ONE], id="utf8-bom"),
        pytest.param(b"\x0b" + ONE + b"\x1c\r" + b"\x0b" + TWO + b"\x1c\r", [ONE, TWO], id="mllp"),
        pytest.param(
            b"/*\n * examples\n */\n" + ONE + b"\n// next one\n# shell style\n" + TWO,
            [ONE, TWO],
            id="comment-lines",
        ),
        pytest.param(b"", [], id="empty"),
        pytest.param(b"\n\r\n", [], id="only-blank"),
    ],
)
def test_split_messages(data: bytes, expected: list[bytes]) -> None:
    assert split_messages(data) == expected


def test_split_messages_keeps_non_ascii_bytes_untouched() -> None:
    message = MSH_1 + b"\rPID|1||1||M\xc3\xbcller^J\xc3\xb6rg\r"
    assert split_messages(message.replace(b"\r", b"\n")) == [message]


def test_split_messages_refuses_segments_before_msh() -> None:
    with pytest.raises(ValueError, match=r"segment 1 \('PID'\) comes before any MSH"):
        split_messages(PID + b"\n" + ONE)


ACK_HEADER = "MSH|^~\\&|MWL|HOSP|RIS|HOSP|20240101120000||ACK^O01^ACK|X9|P|2.5.1\r"


def ack(*segments: str, header: str = ACK_HEADER) -> bytes:
    return (header + "".join(s + "\r" for s in segments)).encode()


def test_summarize_aa() -> None:
    assert summarize_ack(ack("MSA|AA|A1|Message accepted")) == AckSummary(
        code="AA", control_id="A1", text="Message accepted", errors=()
    )


def test_summarize_ae_with_v25_err() -> None:
    summary = summarize_ack(
        ack(
            "MSA|AE|A1",
            "ERR||PID^1^3|101^Required field missing^HL70357|E||||"
            "PID-3 (patient identifier) is empty",
        )
    )
    assert summary.code == "AE"
    assert summary.control_id == "A1"
    assert summary.text == ""
    assert summary.errors == (
        "PID-3 101 Required field missing: PID-3 (patient identifier) is empty",
    )


def test_summarize_several_err_segments_and_locations() -> None:
    summary = summarize_ack(
        ack(
            "MSA|AR|B2|rejected",
            "ERR||MSH^1^9^1^2|201^Unsupported event code^HL70357|E",
            "ERR||OBR^2^4^1^1|103^Table value not found^HL70357|E||||unknown code",
            "ERR||||E||||store unavailable",
        )
    )
    assert summary.code == "AR"
    assert summary.text == "rejected"
    assert summary.errors == (
        "MSH-9.2 201 Unsupported event code",
        "OBR[2]-4.1 103 Table value not found: unknown code",
        "store unavailable",
    )


def test_summarize_v23_err1() -> None:
    summary = summarize_ack(
        ack(
            "MSA|AE|A1|Error",
            "ERR|PID^1^3^101&Required field missing&HL70357~ORC^1^1^103&Table value not found",
        ),
    )
    assert summary.errors == (
        "PID-3 101 Required field missing",
        "ORC-1 103 Table value not found",
    )


def test_summarize_uses_the_acks_own_delimiters() -> None:
    header = "MSH#$*@%#MWL#HOSP#RIS#HOSP#20240101120000##ACK#X9#P#2.5.1\r"
    summary = summarize_ack(
        ack("MSA#AE#A1#bad", "ERR##PID$1$3#101$Required field missing#E", header=header)
    )
    assert summary == AckSummary(
        code="AE", control_id="A1", text="bad", errors=("PID-3 101 Required field missing",)
    )


def test_summarize_unescapes_text() -> None:
    summary = summarize_ack(
        ack("MSA|AE|A1|a\\F\\b\\S\\c\\E\\d", "ERR||PID^1^5|102^Data type error|E||||x\\T\\y")
    )
    assert summary.text == "a|b^c\\d"
    assert summary.errors == ("PID-5 102 Data type error: x&y",)


def test_summarize_tolerates_lf_and_bad_utf8() -> None:
    raw = ack("MSA|AE|A1|caf\u00e9", "ERR||PID^1^3|101|E").replace(b"\r", b"\n")
    raw = raw.replace("\u00e9".encode(), b"\xff")
    summary = summarize_ack(raw)
    assert summary.text == "caf\ufffd"
    assert summary.errors == ("PID-3 101",)


def test_summarize_without_msa_is_an_error() -> None:
    with pytest.raises(ValueError, match="no MSA"):
        summarize_ack(ACK_HEADER.encode())


def test_client_error_is_a_broker_error() -> None:
    assert issubclass(MLLPClientError, BrokerError)


def test_mllp_commit_blocks_read_as_commit_codes() -> None:
    assert summarize_ack(b"\x06").code == "CA"
    assert summarize_ack(b"\x15").code == "CR"
    assert "resend" in summarize_ack(b"\x15").text

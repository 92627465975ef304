"""Header checks (HL7 v2.5.1 §2.9.2): type, event, processing ID, version, sender."""

from __future__ import annotations

import pytest

from broker.errors import HL7Error
from broker.hl7.codes import AckCode, ErrorCode
from broker.hl7.message import MessageDecoder, ParsedMessage
from broker.hl7.validate import HeaderPolicy, check_header

POLICY = HeaderPolicy(
    supported_types=frozenset({"ORM^O01", "OMI^O23", "ADT^A08"}),
    processing_ids=frozenset({"P"}),
    versions=frozenset({"2.3.1", "2.5.1"}),
)


def header(
    msh9: str = "ORM^O01", msh11: str = "P", msh12: str = "2.3.1", sender: str = "RIS|HOSP"
) -> ParsedMessage:
    raw = f"MSH|^~\\&|{sender}|MWL|RAD|20261125||{msh9}|C1|{msh11}|{msh12}\rPID|||1\r"
    return MessageDecoder("UNICODE UTF-8").decode(raw.encode())


def refusal(policy: HeaderPolicy, **fields: str) -> tuple[AckCode, ErrorCode, str | None]:
    with pytest.raises(HL7Error) as info:
        check_header(header(**fields), policy)
    return info.value.ack_code, info.value.err_code, info.value.location


def test_accepted_header_passes() -> None:
    check_header(header(), POLICY)
    check_header(header(msh9="OMI^O23^OMI_O23", msh12="2.5.1"), POLICY)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"msh9": "ORU^R01"}, (AckCode.REJECT, ErrorCode.UNSUPPORTED_MESSAGE_TYPE, "MSH-9")),
        ({"msh9": "ORM^O02"}, (AckCode.REJECT, ErrorCode.UNSUPPORTED_EVENT_CODE, "MSH-9.2")),
        ({"msh9": "ADT^A99"}, (AckCode.REJECT, ErrorCode.UNSUPPORTED_EVENT_CODE, "MSH-9.2")),
        ({"msh11": "T"}, (AckCode.REJECT, ErrorCode.UNSUPPORTED_PROCESSING_ID, "MSH-11")),
        ({"msh11": ""}, (AckCode.REJECT, ErrorCode.UNSUPPORTED_PROCESSING_ID, "MSH-11")),
        ({"msh12": "2.10"}, (AckCode.REJECT, ErrorCode.UNSUPPORTED_VERSION_ID, "MSH-12")),
        ({"msh12": "3.0"}, (AckCode.REJECT, ErrorCode.UNSUPPORTED_VERSION_ID, "MSH-12")),
    ],
)
def test_refusals_name_the_field(
    fields: dict[str, str], expected: tuple[AckCode, ErrorCode, str]
) -> None:
    assert refusal(POLICY, **fields) == expected


def test_type_is_checked_before_processing_id() -> None:
    assert refusal(POLICY, msh9="ORU^R01", msh11="T")[2] == "MSH-9"


def test_sender_allow_list_by_application_or_application_and_facility() -> None:
    by_app = HeaderPolicy(POLICY.supported_types, accepted_senders=frozenset({"RIS"}))
    by_pair = HeaderPolicy(POLICY.supported_types, accepted_senders=frozenset({"HIS^CLINIC"}))
    check_header(header(sender="RIS|ANYWHERE"), by_app)
    check_header(header(sender="HIS^1.2.3^ISO|CLINIC"), by_pair)
    assert refusal(by_pair, sender="HIS|OTHER") == (
        AckCode.REJECT, ErrorCode.APPLICATION_INTERNAL_ERROR, "MSH-3",
    )  # fmt: skip
    assert refusal(by_app, sender="|HOSP")[2] == "MSH-3"


def test_empty_version_list_accepts_any_version() -> None:
    check_header(header(msh12="2.8"), HeaderPolicy(POLICY.supported_types))

"""Header checks, before any business logic: who sent it, what it is, in which mode.

HL7 v2.5.1 §2.9.2 (message processing by the receiver): the receiver checks
MSH-9 (message type and trigger event), MSH-11 (processing ID) and MSH-12
(version ID) and rejects what it does not accept with AR and an ERR segment:
200 unsupported message type, 201 unsupported event code, 202 unsupported
processing ID, 203 unsupported version ID (HL7 table 0357). Messages from a
sending application/facility that is not configured are rejected too (AR 207
at MSH-3: the sender is not known to this interface).
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.errors import HL7Error
from broker.hl7.codes import AckCode, ErrorCode
from broker.hl7.message import ParsedMessage

__all__ = ["HeaderPolicy", "check_header"]


@dataclass(frozen=True)
class HeaderPolicy:
    """What this interface accepts; empty ``accepted_senders`` means any sender."""

    supported_types: frozenset[str]
    processing_ids: frozenset[str] = frozenset({"P"})
    versions: frozenset[str] = frozenset()
    accepted_senders: frozenset[str] = frozenset()


def _component(field: str, msg: ParsedMessage) -> str:
    """The first component of a header field, e.g. HD-1 of MSH-3."""
    return field.split(msg.encoding_characters[:1] or "^", 1)[0].strip()


def check_header(msg: ParsedMessage, policy: HeaderPolicy) -> None:
    """Raise :class:`HL7Error` (AR) when the MSH names something this interface refuses."""
    _check_type(msg.message_type, policy.supported_types)
    if msg.processing_id not in policy.processing_ids:
        accepted = ", ".join(sorted(policy.processing_ids))
        raise HL7Error(
            AckCode.REJECT,
            ErrorCode.UNSUPPORTED_PROCESSING_ID,
            "MSH-11",
            f"processing ID {msg.processing_id or '(empty)'} is not accepted "
            f"(accepted: {accepted})",
        )
    if policy.versions and msg.version not in policy.versions:
        raise HL7Error(
            AckCode.REJECT,
            ErrorCode.UNSUPPORTED_VERSION_ID,
            "MSH-12",
            f"HL7 version {msg.version or '(empty)'} is not supported",
        )
    if policy.accepted_senders:
        app = _component(msg.sending_application, msg)
        facility = _component(msg.sending_facility, msg)
        senders = policy.accepted_senders
        if app not in senders and f"{app}^{facility}" not in senders:
            raise HL7Error(
                AckCode.REJECT,
                ErrorCode.APPLICATION_INTERNAL_ERROR,
                "MSH-3",
                f"sending application {app or '(empty)'} at facility {facility or '(empty)'} "
                "is not configured as a sender for this interface",
            )


def _check_type(message_type: str, supported: frozenset[str]) -> None:
    """AR 200 for an unknown message type, AR 201 for an unknown event of a known type."""
    if message_type in supported:
        return
    code = message_type.split("^", 1)[0]
    known_codes = {t.split("^", 1)[0] for t in supported}
    listing = ", ".join(sorted(supported)) or "none"
    if code in known_codes:
        raise HL7Error(
            AckCode.REJECT,
            ErrorCode.UNSUPPORTED_EVENT_CODE,
            "MSH-9.2",
            f"event {message_type} is not supported (supported: {listing})",
        )
    raise HL7Error(
        AckCode.REJECT,
        ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
        "MSH-9",
        f"message type {message_type or '(empty)'} is not supported (supported: {listing})",
    )

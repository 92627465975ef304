"""Whether a decoded message may be processed at all, before any mapping or store work.

The header policy (``broker.hl7.validate``: type, processing ID, version, MSH-3/MSH-4
list), the sender bound to the connection's address (``broker.hl7.senders``) and the
sender's clock: a message dated in the future would make the real updates after it,
cancels included, look older and be skipped (``broker.worklist.ordering``). Each refusal
is an ``HL7Error`` naming the field; nothing is stored; each is on the audit trail
(``broker.audit``: the address, MSH-3^MSH-4, MSH-10, MSH-9 and the refused field).
"""

from __future__ import annotations

from broker.audit.record import message_refused
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.errors import HL7Error
from broker.hl7.codes import AckCode, ErrorCode
from broker.hl7.message import ParsedMessage
from broker.hl7.senders import SenderSet
from broker.hl7.validate import HeaderPolicy, check_header
from broker.worklist.ordering import MessageTime, seconds_ahead

__all__ = ["admit", "check_not_ahead"]


def admit(
    msg: ParsedMessage,
    peer: str,
    policy: HeaderPolicy,
    senders: SenderSet,
    clock: tuple[MessageTime | None, float, float],
    audit: AuditSink = NO_AUDIT,
) -> None:
    """Raise the ``HL7Error`` that refuses ``msg`` from ``peer``, if any, recorded on
    ``audit``. ``clock`` is MSH-7 as read, the broker's time now and the skew allowed
    (``check_not_ahead``)."""
    try:
        check_header(msg, policy)
        senders.check_message(peer, msg)
        check_not_ahead(*clock)
    except HL7Error as e:
        audit.record(message_refused(peer, msg, e))
        raise


def check_not_ahead(sent: MessageTime | None, now: float, limit: float) -> None:
    """AE 102 at MSH-7 when MSH-7 (HL7 v2.5.1 §2.14.9.7) lies more than ``limit`` seconds
    after ``now``; no check with ``limit`` 0 or no usable MSH-7."""
    if not limit or sent is None:
        return
    ahead = seconds_ahead(sent, now)
    if ahead > limit:
        raise HL7Error(
            AckCode.ERROR,
            ErrorCode.DATA_TYPE_ERROR,
            "MSH-7",
            f"MSH-7 (date/time of message) is {_duration(ahead)} ahead of this broker's "
            f"clock (at most {_duration(limit)} allowed): check the sending system's clock "
            "and time zone; nothing was stored",
        )


def _duration(seconds: float) -> str:
    """``seconds`` for a person: minutes up to two days, then days."""
    if seconds < 2 * 86400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 86400:.0f} days"

"""Building HL7 acknowledgments: MSA and ERR from an outcome, in one place.

HL7 v2.5.1 §2.9 (acknowledgment rules), §2.14.8 (MSA), §2.14.5 (ERR). Senders
of v2.5 and later get ERR-2 (location), ERR-3 (table 0357 code), ERR-4
(severity, table 0516) and ERR-8 (text for a person); older senders get ERR-1
(segment, sequence, field, code) as their version defines it. An accepted
message can carry warnings (:class:`AckWarning`): one ERR of severity ``W``
each from v2.5, one more ERR-1 repetition each, its text marked as a warning,
before (the ACK of v2.3/v2.4 holds one ERR segment, whose ERR-1 repeats).
MSA-3 carries the text too, because many interface engines show only that.
The :class:`AckContext` of a message comes from its decoded header
(``context_from_message``) or, for bytes that could not be decoded, from what
can be read of it (``context_from_raw``).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from broker.common.clock import SYSTEM_CLOCK
from broker.errors import HL7Error
from broker.hl7.codes import AckCode, ErrorCode, Severity
from broker.hl7.message import ParsedMessage, peek_header
from broker.worklist.model import Truncation

__all__ = [
    "AckContext",
    "AckWarning",
    "build_ack",
    "context_from_message",
    "context_from_raw",
    "hl7_location",
]

_LOCATION = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})(?:-(?P<field>\d+)(?:\[(?P<rep>\d+|\*)\])?"
    r"(?:\.(?P<comp>\d+))?(?:\.(?P<sub>\d+))?)?$"
)
_counter = itertools.count(1)
_counter_lock = threading.Lock()


@dataclass(frozen=True)
class AckContext:
    """What an ACK needs to know of the message it answers (from its MSH)."""

    field_separator: str = "|"
    encoding_characters: str = "^~\\&"
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    control_id: str = ""
    trigger_event: str = ""
    processing_id: str = "P"
    version: str = "2.5.1"
    charset_field: str = ""  # MSH-18 as received, echoed in the ACK
    accept_ack_type: str = ""  # MSH-15 as received (enhanced mode, HL7 v2.5.1 §2.9.3)
    application_ack_type: str = ""  # MSH-16 as received
    codec: str = "utf-8"  # how the ACK bytes are encoded


@dataclass(frozen=True)
class AckWarning:
    """A remark on an accepted message: an ERR of severity W (HL7 v2.5.1 §2.15.5, table 0516
    "transaction successful, but there may be issues")."""

    err_code: ErrorCode
    location: str | None  # ERR-2, e.g. "PV1-8"
    text: str  # ERR-8, for a person

    @classmethod
    def of(cls, cut: Truncation) -> AckWarning:
        """The warning for a value cut to fit its DICOM VR: code 104, value too long."""
        return cls(ErrorCode.VALUE_TOO_LONG, cut.location or None, cut.text)


def hl7_location(location: str | None) -> list[str]:
    """``"PID-3.1"`` → ``["PID", "1", "3", "", "1"]``: an ERL (HL7 v2.5.1 §2.A.27).

    ``PID-5[*]`` (every repetition, as a mapping path says) is the field, no repetition.
    """
    if not location:
        return []
    m = _LOCATION.match(location)
    if m is None:
        return [location]
    rep = "" if m["rep"] == "*" else m["rep"]
    parts = [
        m["seg"],
        "1",
        m["field"] or "",
        rep or ("1" if m["comp"] else ""),
        m["comp"] or "",
        m["sub"] or "",
    ]
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _escape(text: str, ctx: AckContext) -> str:
    """Escape delimiters in free text (HL7 v2.5.1 §2.7.4)."""
    enc = ctx.encoding_characters.ljust(4, "&")
    comp, rep, esc, sub = enc[0], enc[1], enc[2], enc[3]
    out = text.replace(esc, f"{esc}E{esc}")
    for char, code in ((ctx.field_separator, "F"), (comp, "S"), (rep, "R"), (sub, "T")):
        out = out.replace(char, f"{esc}{code}{esc}")
    return out.replace("\r", " ").replace("\n", " ")


def _version_tuple(version: str) -> tuple[int, ...]:
    nums = []
    for part in version.split("."):
        if not part.isdigit():
            break
        nums.append(int(part))
    return tuple(nums) or (2, 5)


def _err_segments(
    error: HL7Error | None, warnings: Sequence[AckWarning], ctx: AckContext
) -> list[str]:
    """The ERR segments: the error's, then one per warning (HL7 v2.5.1 §2.15.5); before
    v2.5, one ERR whose ERR-1 repeats (HL7 v2.4 §2.16.5.1, ELD)."""
    f = ctx.field_separator
    comp = ctx.encoding_characters[:1] or "^"
    rep = ctx.encoding_characters[1:2] or "~"
    items: list[tuple[HL7Error | AckWarning, Severity]] = []
    if error is not None:
        items.append((error, Severity.ERROR))
    items += [(warning, Severity.WARNING) for warning in warnings]
    if _version_tuple(ctx.version) < (2, 5):
        elds = [_eld(item, severity, ctx) for item, severity in items]
        return [f"ERR{f}{rep.join(elds)}"] if elds else []
    segments = []
    for item, severity in items:
        code: ErrorCode = item.err_code
        fields = [
            "",  # ERR-1, not used from v2.5 on
            comp.join(hl7_location(item.location)),
            comp.join([code.value, _escape(code.text, ctx), "HL70357"]),
            severity.value,
            "", "", "",
            _escape(item.text, ctx),
        ]  # fmt: skip
        segments.append("ERR" + f + f.join(fields))
    return segments


def _eld(item: HL7Error | AckWarning, severity: Severity, ctx: AckContext) -> str:
    """ERR-1 (ELD): segment ^ sequence ^ field ^ code&text&HL70357; a warning's text says so."""
    comp = ctx.encoding_characters[:1] or "^"
    sub = ctx.encoding_characters[3:4] or "&"
    code: ErrorCode = item.err_code
    eld = [*hl7_location(item.location)[:3]]
    eld += [""] * (3 - len(eld))
    label = code.text if severity is Severity.ERROR else f"Warning: {item.text}"
    eld.append(sub.join([code.value, _escape(label, ctx), "HL70357"]))
    return comp.join(eld)


def _next_control_id(moment: datetime) -> str:
    with _counter_lock:
        n = next(_counter) % 1000
    return f"{int(moment.timestamp() * 1000)}{n:03d}"


def build_ack(
    ctx: AckContext,
    code: AckCode,
    *,
    error: HL7Error | None = None,
    warnings: Sequence[AckWarning] = (),
    text: str = "",
    application: str = "MWL_BROKER",
    facility: str = "",
    now: datetime | None = None,
) -> bytes:
    """The ACK message answering ``ctx``'s message, encoded like that message.

    MSH-3/4 of the ACK are the broker, MSH-5/6 echo the sender (HL7 v2.5.1
    §2.9.2); MSH-7 is ``now`` (by default the system clock's time) and MSH-10 a new
    id made from it; MSA-2 echoes the message's MSH-10; ERR is present when ``error``
    or ``warnings`` are given, and MSA-3 holds the error's text, else the warnings'.
    """
    f = ctx.field_separator
    comp = ctx.encoding_characters[:1] or "^"
    moment = now or datetime.fromtimestamp(SYSTEM_CLOCK.now(), UTC)
    ack_type = "ACK"
    if ctx.trigger_event:
        ack_type += comp + ctx.trigger_event
        if _version_tuple(ctx.version) >= (2, 3, 1):
            ack_type += comp + "ACK"
    msh = [
        "MSH",
        ctx.encoding_characters,
        application,
        facility,
        ctx.sending_application,
        ctx.sending_facility,
        moment.strftime("%Y%m%d%H%M%S"),
        "",
        ack_type,
        _next_control_id(moment),
        ctx.processing_id or "P",
        ctx.version or "2.5.1",
    ]
    if ctx.charset_field:
        msh += ["", "", "", "", "", ctx.charset_field]
    message_text = text or (error.text if error else _warnings_text(warnings))
    msa = ["MSA", code.value, ctx.control_id]
    if message_text:
        msa.append(_escape(message_text, ctx))
    segments = [f.join(msh), f.join(msa), *_err_segments(error, warnings, ctx)]
    return ("\r".join(segments) + "\r").encode(ctx.codec, errors="replace")


def _warnings_text(warnings: Sequence[AckWarning]) -> str:
    """MSA-3 of an ACK with warnings: the one warning, or how many and where."""
    if len(warnings) == 1:
        return f"Warning: {warnings[0].text}"
    if not warnings:
        return ""
    places = ", ".join(w.location or "-" for w in warnings)
    return f"Warnings: {len(warnings)} values cut to fit their DICOM attributes ({places})"


_CODECS_FOR_ACK = {"ascii": "ascii"}


def context_from_message(msg: ParsedMessage) -> AckContext:
    """ACK context from a decoded message."""
    trigger = msg.message_type.split("^", 1)[1] if "^" in msg.message_type else ""
    charset_field = _msh18(msg)
    return AckContext(
        field_separator=msg.field_separator,
        encoding_characters=msg.encoding_characters,
        sending_application=msg.sending_application,
        sending_facility=msg.sending_facility,
        receiving_application=msg.receiving_application,
        receiving_facility=msg.receiving_facility,
        control_id=msg.control_id,
        trigger_event=trigger,
        processing_id=msg.processing_id,
        version=msg.version,
        charset_field=charset_field,
        codec=_CODECS_FOR_ACK.get(msg.charset, msg.charset),
        accept_ack_type=msg.accept_ack_type,
        application_ack_type=msg.application_ack_type,
    )


def _msh18(msg: ParsedMessage) -> str:
    segment = msg.text.split("\r", 1)[0]
    parts = segment.split(msg.field_separator)
    return parts[17] if len(parts) > 17 else ""


def context_from_raw(raw: bytes) -> AckContext:
    """Best-effort ACK context for a message that could not be decoded."""
    header = peek_header(raw) or {}
    field_sep, encoding = _usable_delimiters(
        header.get("field_separator", ""), header.get("encoding_characters", "")
    )
    return AckContext(
        field_separator=field_sep,
        encoding_characters=encoding,
        sending_application=header.get("sending_application", ""),
        sending_facility=header.get("sending_facility", ""),
        receiving_application=header.get("receiving_application", ""),
        receiving_facility=header.get("receiving_facility", ""),
        control_id=header.get("control_id", ""),
        trigger_event=header.get("trigger_event", ""),
        processing_id=header.get("processing_id", "P") or "P",
        version=header.get("version", "2.5.1") or "2.5.1",
        codec="latin-1",
        accept_ack_type=header.get("accept_ack_type", ""),
        application_ack_type=header.get("application_ack_type", ""),
    )


def _usable_delimiters(field_sep: str, encoding: str) -> tuple[str, str]:
    """The sender's delimiters if a reader can use them, else the standard ``|^~\\&``.

    HL7 v2.5.1 §2.5.4: MSH-1 is one character and MSH-2 four distinct ones
    (three in old versions), none alphanumeric and none equal to MSH-1. A NAK
    written with broken delimiters could not be read by its receiver.
    """
    chars = field_sep + encoding
    if (
        len(field_sep) == 1
        and len(encoding) in (3, 4)
        and len(set(chars)) == len(chars)
        and not any(c.isalnum() or c.isspace() for c in chars)
    ):
        return field_sep, encoding
    return "|", "^~\\&"

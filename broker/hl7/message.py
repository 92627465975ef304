"""Decode one framed HL7 v2 message: character set, segment separators, MSH header.

:class:`MessageDecoder` is the entry point, built once from the settings.

The character set is read from MSH-18 in the raw bytes before decoding (HL7
v2.5.1 §2.14.9.18; names from HL7 table 0211). MSH-1 to MSH-17 are codes and
identifiers, in practice ASCII, so the header can be split on the MSH-1 field
separator before the charset is known. An empty MSH-18 takes the sender's
configured charset, else the default; a single-byte declaration over valid
multi-byte UTF-8 is read as UTF-8 with a warning (the rules, and table 0211,
are in :mod:`broker.hl7.charsets`). ``\\Xhh\\`` escapes are decoded
later, per value, in the charset chosen here (``paths.CHARSET_ATTRIBUTE``).

Errors raise :class:`broker.errors.HL7Error` carrying the ACK outcome:

============================================  ====  ====  ===========
problem                                       ACK   0357  ERR-2
============================================  ====  ====  ===========
no MSH segment at the start                   AR    100   MSH
MSH-1 not a usable delimiter                  AR    102   MSH-1
MSH-2 missing or not usable delimiters        AR    101/102  MSH-2
MSH-18 names an unknown character set         AR    102   MSH-18
bytes invalid in the declared character set   AE    102   MSH-18
MSH-9 message type missing                    AR    101   MSH-9
MSH-10 control id missing                     AR    101   MSH-10
============================================  ====  ====  ===========
"""

from __future__ import annotations

import codecs
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from typing import Any

import hl7

from broker.errors import HL7Error
from broker.hl7 import split
from broker.hl7.charsets import charset_codec, declared_codec, sender_charset, utf8_mislabelled
from broker.hl7.codes import AckCode, ErrorCode
from broker.hl7.paths import CHARSET_ATTRIBUTE

__all__ = ["MessageDecoder", "ParsedMessage", "peek_header"]

log = logging.getLogger(__name__)

_BOM = b"\xef\xbb\xbf"
_DEFAULT_ENCODING = "^~\\&"  # HL7 v2.5.1 §2.5.4: component, repetition, escape, subcomponent


@dataclass(frozen=True)
class ParsedMessage:
    """A decoded message and the MSH fields the broker needs (raw field text)."""

    raw: bytes
    text: str  # decoded, segments separated by "\r"
    charset: str  # Python codec name used to decode
    segments: list[Any]  # split.Fields per segment, what the mapping engine reads
    message_type: str  # "ORM^O01" (MSH-9.1^MSH-9.2), "ACK" when MSH-9.2 is empty
    message_structure: str  # MSH-9.3 or ""
    control_id: str  # MSH-10
    sending_application: str  # MSH-3
    sending_facility: str  # MSH-4
    receiving_application: str  # MSH-5
    receiving_facility: str  # MSH-6
    processing_id: str  # MSH-11.1
    version: str  # MSH-12.1
    accept_ack_type: str  # MSH-15
    application_ack_type: str  # MSH-16
    field_separator: str  # MSH-1
    encoding_characters: str  # MSH-2
    charset_mislabelled: bool = False  # declared single-byte, decoded as UTF-8
    message_datetime: str = ""  # MSH-7.1 (DTM, HL7 v2.5.1 §2.14.9.7), "" when absent
    zone: tzinfo | None = None  # where MSH-7 without an offset is local time; None: the host

    @functools.cached_property
    def message(self) -> hl7.Message:
        """python-hl7's tree of the message, built on first use (previews, tools)."""
        tree = split.parse(self.text)
        for segment in tree:  # so that \Xhh\ escapes decode in the message's charset
            setattr(segment, CHARSET_ATTRIBUTE, self.charset)
        return tree


@dataclass(frozen=True)
class MessageDecoder:
    """How the broker reads a sender's bytes: the one decode path of every face.

    Intake, reprocessing and the mapping preview all decode with it, so that a
    preview shows what the live broker makes of the same bytes;
    ``broker.app.build_decoder`` builds it from the settings. The charset is
    MSH-18's (HL7 v2.5.1 §2.14.9.18), else the sender's, else the default, with
    the UTF-8 correction (rules in :mod:`broker.hl7.charsets`). The zone in which
    the sender's MSH-7 values without an offset are read (§2A.22) is the
    sender's, else ``local_zone``. ``sender_charsets`` and ``sender_zones`` are
    keyed ``"APP^FACILITY"`` or ``"APP"``, matched against HD-1 of MSH-3 and
    MSH-4, the facility key first. A name that is not a table 0211 charset
    raises ``ValueError`` (a configuration error, caught by the settings at
    start-up).
    """

    default_charset: str = "UNICODE UTF-8"
    sender_charsets: Mapping[str, str] = field(default_factory=dict)  # when MSH-18 is empty
    sender_zones: Mapping[str, tzinfo] = field(default_factory=dict)
    local_zone: tzinfo | None = None  # the other senders' zone; None: the host's

    def __post_init__(self) -> None:
        if charset_codec(self.default_charset) is None:
            raise ValueError(f"unknown default charset {self.default_charset!r}")
        for sender, name in self.sender_charsets.items():
            if charset_codec(name) is None:
                raise ValueError(f"unknown charset {name!r} configured for sender {sender}")

    def zone_of(self, application: str, facility: str) -> tzinfo | None:
        """The zone of the sender's MSH-7 values without an offset (HD-1 of MSH-3, MSH-4)."""
        zones = self.sender_zones
        return zones.get(f"{application}^{facility}", zones.get(application, self.local_zone))

    def decode(self, raw: bytes) -> ParsedMessage:
        """Decode and parse one message; errors as in the module's table."""
        offset = len(_BOM) if raw.startswith(_BOM) else 0
        body = raw[offset:]
        stripped = body.lstrip(b"\r\n\t ")
        offset += len(body) - len(stripped)
        body = stripped
        separator, encoding, fields = _split_header(body)
        sender = (_raw_field(fields, 3, encoding), _raw_field(fields, 4, encoding))
        configured = sender_charset(self.sender_charsets, *sender) or self.default_charset
        default_codec = charset_codec(configured)
        assert default_codec is not None  # every configured name was checked in __post_init__
        codec = declared_codec(fields[17] if len(fields) > 17 else b"", encoding, default_codec)
        mislabelled = utf8_mislabelled(body, codec)
        if mislabelled:
            log.warning(
                "msg %s from %s: declared %s but the bytes are multi-byte UTF-8; decoded as UTF-8",
                _raw_field(fields, 10, encoding),
                sender[0],
                codecs.lookup(codec).name,
            )
            codec = "utf_8"
        text = _segments_text(_text(body, codec, offset))
        header = _header_fields(text.split("\r", 1)[0], separator, encoding)
        parsed = _parsed(raw, text, codecs.lookup(codec).name, header, separator, encoding)
        return replace(parsed, charset_mislabelled=mislabelled, zone=self.zone_of(*sender))


def _text(body: bytes, codec: str, offset: int) -> str:
    """``body`` decoded; AE 102 at MSH-18 naming the first invalid byte (``offset``: of
    ``body`` in the message as received)."""
    try:
        return body.decode(codec)
    except UnicodeDecodeError as e:
        raise HL7Error(
            AckCode.ERROR,
            ErrorCode.DATA_TYPE_ERROR,
            "MSH-18",
            f"byte 0x{body[e.start]:02X} at offset {offset + e.start} is not valid "
            f"{codecs.lookup(codec).name}",
        ) from e


def _raw_field(fields: list[bytes], number: int, encoding: str) -> str:
    """HD-1 / first component of MSH-``number`` from the undecoded header."""
    raw = fields[number - 1] if len(fields) >= number else b""
    return _first_component(raw.decode("latin-1"), encoding)


def _split_header(body: bytes) -> tuple[str, str, list[bytes]]:
    """Validate MSH-1/MSH-2 on the raw bytes; return them and the MSH fields (bytes)."""
    if not body.startswith(b"MSH") or len(body) < 4:
        raise HL7Error(
            AckCode.REJECT,
            ErrorCode.SEGMENT_SEQUENCE_ERROR,
            "MSH",
            "the message does not start with MSH",
        )
    separator = body[3:4].decode("latin-1")
    if separator.isalnum() or not separator.isprintable() or separator in " \\":
        raise HL7Error(
            AckCode.REJECT, ErrorCode.DATA_TYPE_ERROR, "MSH-1", "MSH-1 is not a field separator"
        )
    end = min((i for i in (body.find(b"\r"), body.find(b"\n")) if i >= 0), default=len(body))
    fields = body[:end].split(body[3:4])
    encoding = fields[1].decode("latin-1") if len(fields) > 1 else ""
    if not encoding:
        raise HL7Error(
            AckCode.REJECT,
            ErrorCode.REQUIRED_FIELD_MISSING,
            "MSH-2",
            "MSH-2 (encoding characters) is empty",
        )
    full = encoding[:4] + _DEFAULT_ENCODING[len(encoding) :]
    if (
        len(encoding) > 5
        or len(set(full + separator)) != 5
        or any(ch.isalnum() or not ch.isprintable() or ch == " " for ch in encoding)
    ):
        raise HL7Error(
            AckCode.REJECT,
            ErrorCode.DATA_TYPE_ERROR,
            "MSH-2",
            "MSH-2 (encoding characters) is not usable",
        )
    return separator, encoding, fields


def _first_component(text: str, encoding: str) -> str:
    return text.split(encoding[0])[0].strip() if encoding else text.strip()


def _segments_text(text: str) -> str:
    """Accept CR, LF and CRLF between segments (HL7 says CR); drop blank lines."""
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    return "\r".join(line for line in lines if line.strip())


def _header_fields(msh: str, separator: str, encoding: str) -> dict[int, str]:
    """MSH-n → raw field text (MSH-1 is the separator, MSH-2 the encoding characters)."""
    parts = msh.split(separator)
    return {1: separator} | {n: parts[n - 1] for n in range(2, len(parts) + 1)}


def _component(field: str, encoding: str, index: int) -> str:
    first_repetition = field.split(encoding[1])[0] if len(encoding) > 1 else field
    parts = first_repetition.split(encoding[0])
    return parts[index - 1].strip() if index <= len(parts) else ""


def _parsed(
    raw: bytes, text: str, charset: str, header: dict[int, str], separator: str, encoding: str
) -> ParsedMessage:
    code = _component(header.get(9, ""), encoding, 1)
    if not code:
        raise HL7Error(
            AckCode.REJECT,
            ErrorCode.REQUIRED_FIELD_MISSING,
            "MSH-9",
            "MSH-9 (message type) is empty",
        )
    control_id = header.get(10, "").strip()
    if not control_id:
        raise HL7Error(
            AckCode.REJECT,
            ErrorCode.REQUIRED_FIELD_MISSING,
            "MSH-10",
            "MSH-10 (message control id) is empty",
        )
    event = _component(header.get(9, ""), encoding, 2)
    try:
        segments = split.segments(text)
    except (hl7.ParseException, ValueError, IndexError) as e:
        raise HL7Error(
            AckCode.REJECT, ErrorCode.SEGMENT_SEQUENCE_ERROR, "MSH", "unparseable message"
        ) from e
    for segment in segments:  # so that \Xhh\ escapes decode in the message's charset
        setattr(segment, CHARSET_ATTRIBUTE, charset)
    return ParsedMessage(
        raw=raw,
        text=text,
        charset=charset,
        segments=segments,
        message_type=f"{code}^{event}" if event else code,
        message_structure=_component(header.get(9, ""), encoding, 3),
        control_id=control_id,
        sending_application=header.get(3, ""),
        sending_facility=header.get(4, ""),
        receiving_application=header.get(5, ""),
        receiving_facility=header.get(6, ""),
        processing_id=_component(header.get(11, ""), encoding, 1),
        version=_component(header.get(12, ""), encoding, 1),
        accept_ack_type=header.get(15, "").strip(),
        application_ack_type=header.get(16, "").strip(),
        field_separator=separator,
        encoding_characters=encoding,
        message_datetime=_component(header.get(7, ""), encoding, 1),
    )


def peek_header(raw: bytes) -> dict[str, str] | None:
    """Best-effort MSH read from raw bytes (as ISO 8859-1), so even a message that
    cannot be decoded can be NAKed with the sender's delimiters. Never raises.

    Keys: field_separator, encoding_characters, sending_application,
    sending_facility, receiving_application, receiving_facility, message_type
    ("CODE^EVENT"), trigger_event (MSH-9.2), control_id, processing_id, version,
    accept_ack_type (MSH-15), application_ack_type (MSH-16).
    None if there is no MSH.
    """
    text = raw[len(_BOM) :] if raw.startswith(_BOM) else raw
    msh = text.lstrip(b"\r\n\t ").decode("latin-1")
    if not msh.startswith("MSH") or len(msh) < 4:
        return None
    separator = msh[3]
    end = min((i for i in (msh.find("\r"), msh.find("\n")) if i >= 0), default=len(msh))
    parts = msh[:end].split(separator)
    encoding = parts[1] if len(parts) > 1 else ""
    safe = encoding if len(encoding) >= 2 else _DEFAULT_ENCODING
    header = {1: separator} | {n: parts[n - 1] for n in range(2, len(parts) + 1)}
    code = _component(header.get(9, ""), safe, 1)
    event = _component(header.get(9, ""), safe, 2)
    return {
        "field_separator": separator,
        "encoding_characters": encoding,
        "sending_application": header.get(3, ""),
        "sending_facility": header.get(4, ""),
        "receiving_application": header.get(5, ""),
        "receiving_facility": header.get(6, ""),
        "message_type": f"{code}^{event}" if event else code,
        "trigger_event": event,
        "control_id": header.get(10, "").strip(),
        "processing_id": _component(header.get(11, ""), safe, 1),
        "version": _component(header.get(12, ""), safe, 1),
        "accept_ack_type": header.get(15, "").strip(),
        "application_ack_type": header.get(16, "").strip(),
    }

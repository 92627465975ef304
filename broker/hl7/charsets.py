"""Choosing how to decode a message when MSH-18 is empty or wrong.

Two rules complement MSH-18 (HL7 v2.5.1 §2.14.9.18, table 0211), which
:mod:`broker.hl7.message` reads first:

- **Per-sender default.** When MSH-18 is empty, the charset configured for the
  sender in ``hl7_sender_charsets`` applies: a key ``"APP^FACILITY"`` matches
  HD-1 of MSH-3 and HD-1 of MSH-4, a key ``"APP"`` matches MSH-3 alone; the
  facility key wins. Without a match, ``hl7_default_charset`` applies.
- **Mislabelled UTF-8.** When the charset to use is a single-byte one (ASCII,
  ISO 8859-n) but the bytes are valid UTF-8 and contain at least one
  multi-byte sequence, the message is decoded as UTF-8. Real ISO 8859 text is
  almost never valid multi-byte UTF-8 (an accented letter would have to be
  followed by one of the C1-range bytes 0x80-0xBF, which ISO 8859 leaves
  unused), while senders that write UTF-8 under a ``8859/1`` label exist
  (dcm4che's sample orders). Everything else follows the declaration; bytes
  invalid in it are answered AE 102 at MSH-18.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping

__all__ = ["is_single_byte", "parse_sender_charsets", "sender_charset", "utf8_mislabelled"]


def sender_charset(
    sender_charsets: Mapping[str, str], application: str, facility: str
) -> str | None:
    """The configured charset name for MSH-3/MSH-4 (HD-1 of each), or None."""
    return sender_charsets.get(f"{application}^{facility}", sender_charsets.get(application))


def is_single_byte(codec: str) -> bool:
    """True for ASCII and the ISO 8859 family, where every byte is one character."""
    name = codecs.lookup(codec).name
    return name == "ascii" or name.startswith("iso8859")


def utf8_mislabelled(body: bytes, codec: str) -> bool:
    """True when ``body`` is declared single-byte but is valid multi-byte UTF-8."""
    if not is_single_byte(codec) or body.isascii():
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_sender_charsets(value: object) -> dict[str, str]:
    """``{"APP^FAC": "8859/1"}`` from a TOML table or ``"APP^FAC=8859/1,APP2=ASCII"``.

    Raises ``ValueError`` for an item without ``=`` or with an empty side.
    """
    if isinstance(value, Mapping):
        items = [(str(k), str(v)) for k, v in value.items()]
    else:
        items = []
        for part in str(value).split(","):
            if not part.strip():
                continue
            key, sep, charset = part.partition("=")
            if not sep:
                raise ValueError(f"{part.strip()!r} is not SENDER=CHARSET")
            items.append((key, charset))
    result: dict[str, str] = {}
    for key, charset in items:
        if not key.strip() or not charset.strip():
            raise ValueError(f"{key.strip()}={charset.strip()}: both sides must be non-empty")
        result[key.strip()] = charset.strip()
    return result

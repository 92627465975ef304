"""Choosing the character set a message is decoded with.

MSH-18 (HL7 v2.5.1 §2.14.9.18, names from table 0211) decides first: its
first repetition is the base set, and a later ``ISO IR87``/``ISO IR159`` code
extension switches the whole message to the ISO 2022 decoder (as Japanese
SS-MIX2 senders write ``~ISO IR87``). Two rules complement it:

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
from types import MappingProxyType

from broker.errors import HL7Error
from broker.hl7.codes import AckCode, ErrorCode

__all__ = [
    "charset_codec",
    "declared_codec",
    "is_single_byte",
    "parse_sender_charsets",
    "sender_charset",
    "utf8_mislabelled",
]

# HL7 table 0211 (and common spellings) → Python codec. Keys are normalized:
# upper case without spaces, "_" or "-".
_CHARSETS = MappingProxyType(
    {
        "ASCII": "ascii",
        "USASCII": "ascii",
        "ISOIR6": "ascii",
        "ISOIR100": "iso8859_1",
        "LATIN1": "iso8859_1",
        "ISOIR101": "iso8859_2",
        "ISOIR109": "iso8859_3",
        "ISOIR110": "iso8859_4",
        "ISOIR144": "iso8859_5",
        "ISOIR127": "iso8859_6",
        "ISOIR126": "iso8859_7",
        "ISOIR138": "iso8859_8",
        "ISOIR148": "iso8859_9",
        **{f"8859/{n}": f"iso8859_{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)},
        **{f"ISO8859{n}": f"iso8859_{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)},
        "UNICODEUTF8": "utf_8",
        "UNICODE": "utf_8",
        "UTF8": "utf_8",
        "ISOIR87": "iso2022_jp",
        "ISOIR159": "iso2022_jp_2",
        "GB180302000": "gb18030",
        "GB18030": "gb18030",
        "KSX1001": "euc_kr",
        "BIG5": "big5",
    }
)
# Code extensions (MSH-18 repetitions after the first) that switch the whole
# message to an ISO 2022 decoder (HL7 v2.5.1 §2.14.9.18, e.g. "~ISO IR87").
_ISO2022_EXTENSIONS = MappingProxyType({"ISOIR87": "iso2022_jp", "ISOIR159": "iso2022_jp_2"})


def _normalize(name: str) -> str:
    return "".join(ch for ch in name.upper() if ch not in " _-\t")


def charset_codec(name: str) -> str | None:
    """The Python codec for an HL7 table 0211 charset name, matched loosely; None if unknown."""
    return _CHARSETS.get(_normalize(name))


def declared_codec(field: bytes, encoding: str, default_codec: str) -> str:
    """MSH-18 (raw bytes) → codec: the first repetition (empty: ``default_codec``), or an
    ISO 2022 code extension in a later one (HL7 v2.5.1 §2.14.9.18, table 0211).

    ``encoding`` is MSH-2. Raises :class:`HL7Error` AR 102 at MSH-18 for a name
    that is not ASCII or not supported.
    """
    try:
        text = field.decode("ascii")
    except UnicodeDecodeError:
        raise HL7Error(
            AckCode.REJECT,
            ErrorCode.DATA_TYPE_ERROR,
            "MSH-18",
            "MSH-18 is not a character set name",
        ) from None
    repetition = encoding[1] if len(encoding) > 1 else "~"
    names = [r.split(encoding[0])[0].strip() for r in text.split(repetition)]
    first = names[0]
    codec = default_codec if not first else charset_codec(first)
    if codec is None:
        raise HL7Error(
            AckCode.REJECT,
            ErrorCode.DATA_TYPE_ERROR,
            "MSH-18",
            f"MSH-18 character set {first!r} is not supported (HL7 table 0211)",
        )
    for extension in filter(None, names[1:]):
        if _normalize(extension) in _ISO2022_EXTENSIONS:
            return _ISO2022_EXTENSIONS[_normalize(extension)]
        if charset_codec(extension) is None:
            raise HL7Error(
                AckCode.REJECT,
                ErrorCode.DATA_TYPE_ERROR,
                "MSH-18",
                f"MSH-18 code extension {extension!r} is not supported (HL7 table 0211)",
            )
    return codec


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

"""HL7 v2 field paths (``PID-3``, ``OBR-4.2``, ``IPC-9[*]``) and reading them from a segment.

A path names a segment, a field, optionally a repetition, a component and a
subcomponent (HL7 v2.5.1 §2.5: message, segment, field, component,
subcomponent; §2.5.3 repetition). Its canonical text form is the one HL7
uses for ERR-2 locations in prose, ``SEG-F[.C[.S]]``, with ``[n]`` only when
the repetition is not the first.

Reading follows the HL7 compatibility rule for composite data (HL7 v2.5.1
§2.11, "treat the first component as the value when a primitive is
expected"): a path yields, per repetition, the parts one level below what it
selects (a field path yields its components, a component path its
subcomponents), and the *scalar* value is the first part. Each part is
unescaped (HL7 v2.5.1 §2.7); the HL7 null ``""`` reads as empty. ``\\Xhh\\``
hex data is decoded in the charset the decoder attached to the segment as
:data:`CHARSET_ATTRIBUTE` (the message's MSH-18 charset).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHARSET_ATTRIBUTE",
    "HL7Path",
    "PathSyntaxError",
    "Value",
    "escape",
    "parse_path",
    "read",
    "scalar",
    "unescape",
]

Value = tuple[str, ...]
"""One repetition as read by a path: its parts one level below the selected element."""

_PATH_RE = re.compile(
    r"(?P<seg>[A-Za-z0-9]{3})-(?P<field>\d+)"
    r"(?:\[(?P<rep>\d+|\*)\])?"
    r"(?:\.(?P<comp>\d+)(?:\.(?P<sub>\d+))?)?"
)
_MAX_INDEX = 999  # larger than any HL7 v2 field, component or repetition count used in practice
_HL7_NULL = '""'
CHARSET_ATTRIBUTE = "mwl_charset"
"""Attribute of a python-hl7 segment naming the Python codec of its message."""


class PathSyntaxError(ValueError):
    """An HL7 path is not of the form ``SEG-F[rep].C.S``."""


@dataclass(frozen=True)
class HL7Path:
    """A parsed HL7 path; ``repetition`` is 1-based, ``None`` means all repetitions."""

    segment: str
    field: int
    repetition: int | None = 1
    component: int | None = None
    subcomponent: int | None = None

    @property
    def all_repetitions(self) -> bool:
        """True for ``[*]`` paths, which yield every repetition (a multi-valued element)."""
        return self.repetition is None

    @property
    def field_location(self) -> str:
        """The field this path lies in, e.g. ``PID-3`` for ``PID-3.1``."""
        return f"{self.segment}-{self.field}"

    def __post_init__(self) -> None:
        object.__setattr__(self, "_text", self._canonical())  # ERR-2 locations, on every read

    def __str__(self) -> str:
        return self._text  # type: ignore[attr-defined, no-any-return]

    def _canonical(self) -> str:
        text = self.field_location
        if self.repetition is None:
            text += "[*]"
        elif self.repetition != 1:
            text += f"[{self.repetition}]"
        if self.component is not None:
            text += f".{self.component}"
            if self.subcomponent is not None:
                text += f".{self.subcomponent}"
        return text


def parse_path(text: str) -> HL7Path:
    """Parse ``SEG-F``, ``SEG-F.C``, ``SEG-F.C.S`` with an optional ``[n]`` or ``[*]``."""
    if not isinstance(text, str):
        raise PathSyntaxError(f"an HL7 path must be text like 'PID-3.1', not {text!r}")
    candidate = text.strip()
    match = _PATH_RE.fullmatch(candidate)
    if match is None:
        raise PathSyntaxError(
            f"{text!r} is not an HL7 path; write SEG-F, SEG-F.C or SEG-F.C.S with an "
            "optional repetition, e.g. 'PID-3', 'OBR-4.2', 'PID-3[2].1', 'IPC-9[*]'"
        )
    segment = match["seg"]
    if segment != segment.upper():
        raise PathSyntaxError(f"{text!r}: segment names are upper case ({segment.upper()!r})")
    field = _index(text, "field", match["field"])
    rep_text = match["rep"]
    repetition = None if rep_text == "*" else _index(text, "repetition", rep_text or "1")
    component = _index(text, "component", match["comp"]) if match["comp"] else None
    sub = _index(text, "subcomponent", match["sub"]) if match["sub"] else None
    return HL7Path(segment, field, repetition, component, sub)


def _index(text: str, what: str, digits: str) -> int:
    number = int(digits)
    if not 1 <= number <= _MAX_INDEX:
        raise PathSyntaxError(f"{text!r}: the {what} number must be between 1 and {_MAX_INDEX}")
    return number


def read(segment: Sequence[Any], path: HL7Path) -> list[Value]:
    """Read ``path`` from a python-hl7 segment: one :data:`Value` per selected repetition.

    A repetition or component that is absent reads as nothing (an empty
    list), never as an error; ``MSH-1`` and ``MSH-2`` are returned verbatim
    (HL7 v2.5.1 §2.14.9.1-2: they hold the delimiters and are not escaped).
    """
    if path.field >= len(segment):
        return []
    field = segment[path.field]
    if path.field in (1, 2) and _leaf_name(segment) in {"MSH", "BHS", "FHS"}:
        if isinstance(field, str):  # light segments (broker.hl7.split.segments)
            return [(field,)]
        return [(str(field[0]),)] if len(field) else []
    if isinstance(field, str) and hasattr(segment, "separators"):
        return _read_text(field, path, _delimiters(segment))
    repetitions = _children(field)
    if path.repetition is not None:
        if path.repetition > len(repetitions):
            return []
        repetitions = [repetitions[path.repetition - 1]]
    delimiters = _delimiters(segment)
    return [_read_repetition(rep, path, delimiters) for rep in repetitions]


def _read_repetition(rep: Any, path: HL7Path, delimiters: tuple[str, str, str | None]) -> Value:
    components = _children(rep)
    if path.component is None:
        return tuple(_clean(_first(_children(c)), delimiters) for c in components)
    if path.component > len(components):
        return ("",)
    subs = _children(components[path.component - 1])
    if path.subcomponent is None:
        return tuple(_clean(s, delimiters) for s in subs)
    if path.subcomponent > len(subs):
        return ("",)
    return (_clean(subs[path.subcomponent - 1], delimiters),)


def _read_text(field: str, path: HL7Path, delimiters: tuple[str, str, str | None]) -> list[Value]:
    """``read`` on a raw field string: split only the levels the path selects."""
    separators = delimiters[1]
    repetitions = field.split(separators[2])
    if path.repetition is not None:
        if path.repetition > len(repetitions):
            return []
        repetitions = [repetitions[path.repetition - 1]]
    # Most fields hold no escape sequence and no HL7 null: their parts are read as they are.
    plain = delimiters[0] not in field and _HL7_NULL not in field
    values = []
    for rep in repetitions:
        components = rep.split(separators[3])
        if path.component is None:
            firsts = [c.split(separators[4], 1)[0] for c in components]
            values.append(tuple(firsts) if plain else tuple(_clean(c, delimiters) for c in firsts))
            continue
        if path.component > len(components):
            values.append(("",))
            continue
        subs = components[path.component - 1].split(separators[4])
        if path.subcomponent is not None:
            if path.subcomponent > len(subs):
                values.append(("",))
                continue
            subs = [subs[path.subcomponent - 1]]
        values.append(tuple(subs) if plain else tuple(_clean(sub, delimiters) for sub in subs))
    return values


def scalar(value: Value) -> str:
    """The value of a part read as a primitive: its first part (HL7 v2.5.1 §2.11)."""
    return value[0] if value else ""


def _children(node: Any) -> list[Any]:
    # python-hl7 stores a level without delimiters as a bare string.
    return [node] if isinstance(node, str) else list(node)


def _first(parts: list[Any]) -> Any:
    return parts[0] if parts else ""


def _leaf_name(segment: Sequence[Any]) -> str:
    head = segment[0] if len(segment) else ""
    return str(head[0]) if not isinstance(head, str) and len(head) else str(head)


def _delimiters(segment: Any) -> tuple[str, str, str | None]:
    esc = str(getattr(segment, "esc", "\\"))
    separators = str(getattr(segment, "separators", "\r|~^&"))
    charset = getattr(segment, CHARSET_ATTRIBUTE, None)
    return esc, separators, None if charset is None else str(charset)


def _clean(text: Any, delimiters: tuple[str, str, str | None]) -> str:
    raw = str(text)
    if raw == _HL7_NULL:
        return ""
    return unescape(raw, *delimiters)


def escape(text: str, esc: str = "\\", separators: str = "\r|~^&") -> str:
    """Escape text for an HL7 field value, the inverse of :func:`unescape`.

    HL7 v2.5.1 §2.7.1: the escape character and the field, component,
    repetition and subcomponent separators become ``\\E\\ \\F\\ \\S\\ \\R\\
    \\T\\``; CR and LF, which would end a segment, become ``\\X0D\\``/``\\X0A\\``
    (§2.7.3). ``separators`` is in python-hl7's order, as for :func:`unescape`.
    """
    codes = {
        esc: "E",
        separators[1]: "F",
        separators[2]: "R",
        separators[3]: "S",
        separators[4]: "T",
        "\r": "X0D",
        "\n": "X0A",
    }
    return "".join(f"{esc}{codes[ch]}{esc}" if ch in codes else ch for ch in text)


def unescape(
    text: str, esc: str = "\\", separators: str = "\r|~^&", charset: str | None = None
) -> str:
    """Replace HL7 escape sequences (HL7 v2.5.1 §2.7).

    ``separators`` is python-hl7's order: segment, field, repetition,
    component, subcomponent. ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` give the
    delimiters (§2.7.1); ``\\H\\``/``\\N\\`` highlighting is dropped (§2.7.2);
    ``\\.br\\`` and ``\\.sp\\`` become a line feed and other formatting commands
    are dropped (§2.7.6); ``\\Xhh..\\`` hex data (§2.7.3; adjacent sequences
    joined, so a multi-byte character may be split across them) is decoded in
    ``charset`` (a Python codec; None: UTF-8) and, when not valid there, as
    ISO 8859-1 so that no data is lost; charset switches ``\\C..\\``/``\\M..\\``
    (§2.7.4) and local ``\\Z..\\`` sequences (§2.7.5) are dropped. Any other
    text between escape characters, or an unterminated escape, is kept
    literally so no data is lost.
    """
    if not esc or esc not in text:
        return text
    out: list[str] = []
    data = bytearray()  # bytes of adjacent \Xhh\ sequences, decoded together
    i = 0
    while i < len(text):
        start = text.find(esc, i)
        end = text.find(esc, start + 1) if start >= 0 else -1
        if end < 0:  # no further escape sequence: the rest is literal text
            out += [_hex_text(data, charset), text[i:]]
            data.clear()
            break
        sequence = text[start + 1 : end]
        hex_data = _hex_bytes(sequence)
        if start > i or hex_data is None:
            out += [_hex_text(data, charset), text[i:start]]
            data.clear()
        if hex_data is None:
            out.append(_expand(sequence, esc, separators))
        else:
            data += hex_data
        i = end + 1
    out.append(_hex_text(data, charset))
    return "".join(out)


def _expand(seq: str, esc: str, separators: str) -> str:
    delimiters = {
        "F": separators[1],
        "R": separators[2],
        "S": separators[3],
        "T": separators[4],
        "E": esc,
    }
    if seq in delimiters:
        return delimiters[seq]
    if seq in ("H", "N"):
        return ""
    if seq[:3] in (".br", ".sp"):
        return "\n"
    if seq[:1] == "." or seq[:1] in ("C", "M", "Z"):
        return ""
    return f"{esc}{seq}{esc}"  # unknown, or \X..\ that is not hex: kept literally


def _hex_bytes(sequence: str) -> bytes | None:
    """The bytes of a ``Xhh..`` escape sequence, None if it is not one."""
    if sequence[:1] != "X" or len(sequence) < 3:
        return None
    try:
        return bytes.fromhex(sequence[1:])
    except ValueError:
        return None


def _hex_text(data: bytes | bytearray, charset: str | None) -> str:
    try:
        return bytes(data).decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return bytes(data).decode("latin-1")

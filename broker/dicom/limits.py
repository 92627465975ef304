"""Bounds on a C-FIND identifier, checked before anything is matched.

A key longer than its Value Representation allows (PS3.5 Table 6.2-1) is not
a valid key of the Modality Worklist Information Model: it is refused with
0xA900 "Identifier does not match SOP Class", its tag as Offending Element
(0000,0901) and an Error Comment that names its keyword, never its value
(PS3.4 K.4.1.1.4, C.4.1.1.4). Wild card characters count as characters like
any other; a DA, TM or DT range (``a-b``, PS3.4 C.2.2.2.5) counts each side.
UC, UR and UT allow 2**32-2 characters: the identifier's size bounds them.

The broker also bounds what any identifier may hold: its encoded size (after
inflating a Deflated transfer syntax), the attributes in it, the values of one
key, the items of one sequence and how deep sequences nest. A real worklist
query is far inside these; past them the query is refused with 0xA700
"Refused: Out of resources" and an Error Comment.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from broker.dicom.status import Status
from broker.errors import DicomServiceError

__all__ = [
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "MAX_IDENTIFIER_BYTES",
    "MAX_ITEMS",
    "MAX_VALUES",
    "MAX_VALUE_LENGTH",
    "check_identifier",
    "check_identifier_size",
]

# PS3.5 Table 6.2-1: the longest value of each VR, in characters (bytes for the
# VRs limited to ASCII); PN per component group. DA/TM/DT per side of a range.
MAX_VALUE_LENGTH = {
    "AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64,
    "LT": 10240, "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UI": 64,
}  # fmt: skip

MAX_IDENTIFIER_BYTES = 65_536  # a worklist query with every key of Table K.6-1 is < 4 KiB
MAX_ELEMENTS = 256  # attributes, at every level (Table K.6-1 has fewer than 100 keys)
MAX_VALUES = 128  # values of one key (List of UID Matching, PS3.4 C.2.2.2.2)
MAX_ITEMS = 16  # items of one sequence (a key sequence holds one, PS3.4 C.2.2.2.6)
MAX_DEPTH = 8  # sequences within sequences

_RANGE_VRS = frozenset({"DA", "TM", "DT"})
_TEXT_VRS = frozenset({"LT", "ST"})  # leading spaces are significant (PS3.5 6.2)


def check_identifier_size(encoded: bytes | bytearray | memoryview, deflated: bool) -> None:
    """Refuse (0xA700) an identifier of more than ``MAX_IDENTIFIER_BYTES``, deflated or
    not: the inflated size is measured without inflating more than that."""
    size = len(encoded)
    if deflated:
        size = len(
            zlib.decompressobj(-zlib.MAX_WBITS).decompress(encoded, MAX_IDENTIFIER_BYTES + 1)
        )
    if size > MAX_IDENTIFIER_BYTES:
        raise DicomServiceError(
            Status.OUT_OF_RESOURCES, f"identifier larger than {MAX_IDENTIFIER_BYTES} bytes"
        )


def check_identifier(identifier: Dataset) -> None:
    """Refuse a key longer than its VR allows (0xA900) or an identifier past the
    broker's bounds (0xA700); see the module docstring. Every element is touched
    and every PN value read as text, which decodes them (pydicom decodes lazily):
    a malformed one raises here, pydicom's exception, not halfway through matching."""
    _check_items([identifier], depth=0, count=[0])


def _check_items(items: Iterable[Dataset], depth: int, count: list[int]) -> None:
    """Every element of ``items``; ``count`` is the running total of attributes."""
    for item in items:
        for elem in item:
            count[0] += 1
            if count[0] > MAX_ELEMENTS:
                raise DicomServiceError(
                    Status.OUT_OF_RESOURCES,
                    f"more than {MAX_ELEMENTS} attributes in the identifier",
                )
            if elem.VR == "SQ":
                _check_sequence(elem, depth, count)
            else:
                _check_values(elem)


def _check_sequence(elem: DataElement, depth: int, count: list[int]) -> None:
    name = _name(elem)
    items = list(elem.value or [])
    if len(items) > MAX_ITEMS:
        raise DicomServiceError(Status.OUT_OF_RESOURCES, f"{name}: more than {MAX_ITEMS} items")
    if items and depth + 1 > MAX_DEPTH:
        raise DicomServiceError(
            Status.OUT_OF_RESOURCES, f"{name}: sequences nested deeper than {MAX_DEPTH}"
        )
    _check_items(items, depth + 1, count)


def _check_values(elem: DataElement) -> None:
    value = elem.value
    values = list(value) if isinstance(value, MultiValue | list) else [value]
    if len(values) > MAX_VALUES:
        raise DicomServiceError(
            Status.OUT_OF_RESOURCES, f"{_name(elem)}: more than {MAX_VALUES} values"
        )
    vr = str(elem.VR)
    limit = MAX_VALUE_LENGTH.get(vr)
    if limit is None:
        return
    for v in values:
        if v is not None and _too_long(vr, _text(v, vr), limit):
            raise DicomServiceError(
                Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
                f"{_name(elem)}: longer than {vr} allows ({limit})",
                offending=int(elem.tag),
            )


def _text(value: object, vr: str) -> str:
    """A value as the matcher sees it, without padding (PS3.5 6.2)."""
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return text.rstrip(" \x00") if vr in _TEXT_VRS else text.strip(" \x00")


def _too_long(vr: str, text: str, limit: int) -> bool:
    if vr == "PN":
        return any(len(group) > limit for group in text.split("="))
    if vr not in _RANGE_VRS or len(text) <= limit:
        return len(text) > limit
    if vr == "DA":
        text = text.replace(".", "")  # ACR-NEMA YYYY.MM.DD, which matching accepts
    elif vr == "TM":
        text = text.replace(":", "")  # ACR-NEMA HH:MM:SS
    if len(text) <= limit:
        return False
    # A range: some "-" must leave each side within the limit (a DT offset has a "-" too).
    return not any(
        len(text[:i]) <= limit and len(text) - i - 1 <= limit
        for i, c in enumerate(text)
        if c == "-"
    )


def _name(elem: DataElement) -> str:
    """The keyword, or the tag of a private or unknown attribute."""
    return elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"

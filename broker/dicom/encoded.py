"""C-FIND answers whose text values are encoded here, once, as pydicom would encode them.

pydicom's writer spends ≈ 12 µs on each text element of an answer (a buffer, the
character set's codecs looked up, the value's type checked), and building the
``DataElement`` first costs ≈ 5 µs more. An answer made here holds each text,
person-name and UID value as a ``RawDataElement``: the bytes pydicom's writer
(``pydicom.filewriter``: ``write_string``, ``write_text``, ``write_PN``, ``write_UI``)
makes of it in the answer's Specific Character Set, which pydicom's writer copies as
they are when the answer says it was "read" in the association's transfer syntax
(``Dataset.set_original_encoding``). Any other element is the entry's own, as in
``build_response``.

The bytes are pydicom's only for character sets that are one codec without code
extensions or custom encoders; anything else (ISO 2022 sets, ISO_IR 13, values fitted
to a set, private creators, a value pydicom would not encode) is
``build_response``'s answer. A test compares the encoded bytes of both over generated
entries, queries and character sets.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pydicom.charset import convert_encodings, python_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName

from broker.dicom.matching import DEFAULT_CHARACTER_SET
from broker.dicom.response import Projection, build_response, charset_for, projection

__all__ = ["encoded_response"]

# One codec each, no escape sequences, no custom encoder in pydicom.charset.
_PLAIN_SETS = frozenset(
    {"ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 126", "ISO_IR 127",
     "ISO_IR 138", "ISO_IR 144", "ISO_IR 148", "ISO_IR 166", "ISO_IR 192", "GB18030", "GBK"}
)  # fmt: skip
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UR", "UI"})  # write_string
_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})  # write_text
_DEFAULT = "iso8859"  # pydicom's default_encoding
_VALUE, _WHOLE, _ITEMS, _CREATOR = range(4)  # as broker.dicom.response's steps

# A projected element before encoding: (tag, VR, texts) with texts to encode, or
# (tag, "SQ", items) with each item a list of nodes, or (tag, None, element) kept as is.
_Node = tuple[BaseTag, str | None, Any]


class _Unsupported(Exception):
    """The answer is left to ``build_response``."""


def encoded_response(
    query: Dataset,
    entry: Dataset,
    *,
    character_set: str = DEFAULT_CHARACTER_SET,
    unrepresentable: str = "utf8",
    plan: Projection | None = None,
    encoding: tuple[bool, bool] = (True, True),
) -> Dataset:
    """``build_response(query, entry, …)``, encoded the same, with its text values
    already encoded; ``encoding``: (implicit VR, little endian) of the association's
    transfer syntax. Send it in that one only: in another, pydicom decodes the values
    again (with its reader's rules: trailing spaces dropped) before encoding them."""
    plan = plan or projection(query)
    if unrepresentable == "utf8" and character_set in _PLAIN_SETS:
        try:
            return _encoded(_nodes(plan, entry), character_set, encoding)
        except _Unsupported:
            pass
    return build_response(
        query, entry, character_set=character_set, unrepresentable=unrepresentable, plan=plan
    )


def _texts(elem: DataElement) -> list[str] | None:
    """The element's values as the strings pydicom encodes; None: not one of them."""
    value = elem.value
    if type(value) is str:  # the usual case first
        return [value]
    if value is None:
        return []
    values = list(value) if isinstance(value, MultiValue | list) else [value]
    if elem.VR == "PN":
        if all(isinstance(v, PersonName) for v in values):
            return ["=".join(v.components) for v in values]
        return None
    return values if all(isinstance(v, str) for v in values) else None


def _value_node(tag: BaseTag, elem: DataElement) -> _Node:
    vr = elem.VR
    if vr in _ASCII_VRS or vr in _TEXT_VRS or vr == "PN":
        texts = _texts(elem)
        if texts is not None:
            return (tag, vr, texts)
    if vr == "SQ" or not _ascii_only(elem.value):
        raise _Unsupported
    return (tag, None, elem)


def _ascii_only(value: Any) -> bool:
    values = list(value) if isinstance(value, MultiValue | list) else [value]
    return not any(isinstance(v, str) and not v.isascii() for v in values)


def _nodes(plan: Projection, entry: Dataset) -> list[_Node]:
    out: list[_Node] = []
    for tag, vr, how, extra in plan.steps:
        stored = _element(entry, tag)
        if how == _VALUE:
            if len(vr) != 2:
                raise _Unsupported
            if stored is None or stored.VR == "SQ":
                out.append((tag, vr, []))
            else:
                out.append(_value_node(tag, stored))
        elif how == _CREATOR:
            raise _Unsupported
        else:
            items = list(stored.value or []) if stored is not None and stored.VR == "SQ" else []
            if how == _WHOLE:
                out.append((tag, "SQ", [_whole(item) for item in items]))
            else:
                out.append((tag, "SQ", [_nodes(extra, item) for item in items]))
    return out


def _element(ds: Dataset, tag: BaseTag) -> DataElement | None:
    """``ds.get(tag)``, without what ``Dataset.__getitem__`` does besides for a
    converted element (a decoded entry holds only those)."""
    elem = ds.get_item(tag)
    if elem is None or isinstance(elem, DataElement):
        return elem
    return ds.get(tag)


def _whole(item: Dataset) -> list[_Node]:
    out: list[_Node] = []
    for elem in item:
        if elem.VR == "SQ":
            out.append((elem.tag, "SQ", [_whole(i) for i in elem.value or []]))
        else:
            out.append(_value_node(elem.tag, elem))
    return out


def _non_ascii(nodes: list[_Node], found: list[str]) -> list[str]:
    for _, vr, payload in nodes:
        if vr == "SQ":
            for item in payload:
                _non_ascii(item, found)
        elif vr is not None:
            found.extend(t for t in payload if not t.isascii())
    return found


def _answer_set(nodes: list[_Node], character_set: str) -> str | None:
    """As ``response._answer_charset``: None when all is ASCII, else the set or UTF-8."""
    return charset_for(_non_ascii(nodes, []), character_set)


def _encoded(nodes: list[_Node], character_set: str, encoding: tuple[bool, bool]) -> Dataset:
    charset = _answer_set(nodes, character_set)
    codec = python_encoding[charset] if charset else _DEFAULT
    # What the datasets' text is encoded with, said as pydicom compares it (write_dataset
    # copies raw values only when it equals the dataset's character set).
    sets: str | list[str] = convert_encodings(charset) if charset else _DEFAULT
    try:
        out = _dataset(nodes, _Encoding(codec, sets, encoding), top=True)
    except UnicodeError as e:  # pydicom would warn and replace: its answer, then
        raise _Unsupported from e
    if charset is not None:
        out.SpecificCharacterSet = charset
    return out


class _Encoding(NamedTuple):
    codec: str  # the text values' Python codec
    sets: str | list[str]  # pydicom's encodings of the answer's character set
    syntax: tuple[bool, bool]  # implicit VR, little endian


def _dataset(nodes: list[_Node], how: _Encoding, *, top: bool = False) -> Dataset:
    """An answer (``top``) or a sequence item of it, marked as read in ``how``."""
    elements: dict[BaseTag, DataElement | RawDataElement] = {}
    for tag, vr, payload in nodes:
        if vr is None:
            elements[tag] = payload
        elif vr == "SQ":
            items = Sequence([_dataset(item, how) for item in payload])
            elements[tag] = DataElement(tag, "SQ", items)
        else:
            raw = _bytes(vr, payload, how.codec)
            elements[tag] = RawDataElement(tag, vr, len(raw), raw, 0, *how.syntax)
    # An item's character set is its parent's: said here (pydicom's default is its own).
    out = Dataset(elements) if top else Dataset(elements, parent_encoding=how.sets)
    out.set_original_encoding(*how.syntax, how.sets)
    return out


def _bytes(vr: str, texts: list[str], codec: str) -> bytes:
    """The value as pydicom's writer writes it (padded to an even length)."""
    if vr in _ASCII_VRS:
        text = "\\".join(texts)
        if len(text) % 2:
            text += "\0" if vr == "UI" else " "
        return text.encode(_DEFAULT)
    if vr == "PN":
        raw = b"\\".join(_pn(text, codec) for text in texts)
    else:
        raw = b"\\".join(text.encode(codec) for text in texts)
    return raw + b" " if len(raw) % 2 else raw


def _pn(text: str, codec: str) -> bytes:
    """``PersonName.encode`` with one plain codec: trailing empty groups dropped."""
    groups = [group.encode(codec) for group in text.split("=")]
    while groups and not groups[-1]:
        groups.pop()
    return b"=".join(groups)

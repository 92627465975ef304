"""Building C-FIND answers: only the requested keys, in a character set the scanner reads.

PS3.4 C.4.1.1.3.2 / K.4.1.2: a response carries exactly the keys of the
request's identifier (return keys), values taken from the matching entry, with
sequences projected item by item. PS3.5 6.1: Specific Character Set (0008,0005)
is set when any text value is outside the default repertoire.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydicom import config
from pydicom.charset import python_encoding
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from broker.dicom.matching import DEFAULT_CHARACTER_SET, SPECIFIC_CHARACTER_SET, element_of

__all__ = [
    "AnswerShape",
    "Projection",
    "answer_shape",
    "build_response",
    "charset_for",
    "check_character_set",
    "projection",
]

# What of a query its answers depend on, besides the entry (see ``answer_shape``).
AnswerShape = tuple[tuple[object, ...], ...]


def check_character_set(term: str) -> None:
    """Raise ``ValueError`` unless ``term`` is a single Specific Character Set
    defined term pydicom can encode (PS3.3 C.12.1.1.2, PS3.5 6.1)."""
    if term not in python_encoding:
        raise ValueError(f"unsupported Specific Character Set {term!r}")


def _text_values(ds: Dataset) -> Iterable[str]:
    for elem in ds.iterall():
        if elem.VR == "SQ" or elem.value is None:
            continue
        values = elem.value if isinstance(elem.value, MultiValue | list) else [elem.value]
        for value in values:
            if not isinstance(value, bytes | int | float):
                yield str(value)


def _answer_charset(ds: Dataset, character_set: str) -> str | None:
    """The Specific Character Set of an answer (PS3.5 6.1.2.1).

    None (attribute omitted, Default Character Repertoire) when every value
    is ASCII; otherwise ``character_set``, or ISO_IR 192 (UTF-8) when some
    value cannot be encoded in it (e.g. a Cyrillic name with ISO_IR 100).
    """
    return charset_for([t for t in _text_values(ds) if not t.isascii()], character_set)


def charset_for(texts: list[str], character_set: str) -> str | None:
    """The answer's set for its non-ASCII ``texts``: None when there are none, else
    ``character_set`` if it encodes them all, else ISO_IR 192."""
    if not texts:
        return None
    codec = python_encoding[character_set]
    try:
        for text in texts:
            text.encode(codec)
    except UnicodeEncodeError:
        return DEFAULT_CHARACTER_SET
    return character_set


# Letters NFKD does not take apart (PS3.5 leaves transliteration to the application).
_LATIN = str.maketrans(
    {"Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "ß": "ss", "Æ": "AE", "æ": "ae", "Đ": "D",
     "đ": "d", "Þ": "Th", "þ": "th", "Œ": "OE", "œ": "oe", "\u0131": "i"}
)  # fmt: skip


def fit(text: str, codec: str, policy: str) -> str:
    """``text`` made encodable in ``codec``: ``replace`` puts ``?`` for what it cannot
    carry; ``transliterate`` first writes letters without their accents (Müller →
    Muller, Łódź → Lodz), then ``?`` for the rest."""
    try:
        text.encode(codec)
        return text
    except UnicodeEncodeError:
        pass
    if policy == "transliterate":
        out = []
        for ch in text:
            try:
                ch.encode(codec)
                out.append(ch)
            except UnicodeEncodeError:
                plain = unicodedata.normalize("NFKD", ch.translate(_LATIN))
                out.append("".join(c for c in plain if not unicodedata.combining(c)))
        text = "".join(out)
    return text.encode(codec, errors="replace").decode(codec)


def _fitted(ds: Dataset, codec: str, policy: str) -> None:
    """Every text value of ``ds`` (sequences included) made encodable, in place."""
    for elem in ds.iterall():
        if elem.VR in ("SQ", "UI") or elem.value is None:
            continue
        if elem.VR == "PN":
            values = elem.value if isinstance(elem.value, MultiValue | list) else [elem.value]
            fixed = [fit(str(v), codec, policy) for v in values]
            elem.value = fixed if len(fixed) > 1 else fixed[0]
        elif isinstance(elem.value, str):
            elem.value = fit(elem.value, codec, policy)
        elif isinstance(elem.value, MultiValue | list):
            elem.value = [fit(v, codec, policy) if isinstance(v, str) else v for v in elem.value]


def _copy(elem: DataElement) -> DataElement:
    """A new element for an answer: values are shared, containers are not.

    Much cheaper than ``copy.deepcopy``, and skips re-validating stored values.
    """
    value = elem.value
    if elem.VR == "SQ":
        value = Sequence([_copy_item(item) for item in value or []])
    elif isinstance(value, MultiValue):
        value = list(value)
    return DataElement(elem.tag, elem.VR, value, validation_mode=config.IGNORE)


def _copy_item(item: Dataset) -> Dataset:
    out = Dataset()
    for elem in item:
        out.add(_copy(elem))
    return out


# One return key of a projection: its tag, its VR and how it is answered.
_VALUE, _WHOLE, _ITEMS, _CREATOR = range(4)
_Step = tuple[BaseTag, str, int, Any]


@dataclass(frozen=True, repr=False)
class Projection:
    """What an answer to one identifier holds (PS3.4 C.4.1.1.3.2), worked out once per
    query (``projection``) instead of once per answer: its return keys in tag order,
    each with how it is answered."""

    steps: tuple[_Step, ...]


def projection(query: Dataset) -> Projection:
    """The projection of ``query``'s identifier (``build_response`` applies it)."""
    steps: list[_Step] = []
    for q in query:
        if q.tag.element == 0 or q.tag == SPECIFIC_CHARACTER_SET:
            continue
        if q.VR == "SQ":
            keys = [item for item in q.value or [] if any(e.tag.element for e in item)]
            if keys:  # zero items or one empty item: the stored items whole
                steps.append((q.tag, "SQ", _ITEMS, projection(keys[0])))
            else:
                steps.append((q.tag, "SQ", _WHOLE, None))
        elif q.tag.is_private and 0x0010 <= q.tag.element <= 0x00FF:
            steps.append((q.tag, str(q.VR), _CREATOR, q))  # private creator: names the block
        else:
            steps.append((q.tag, str(q.VR), _VALUE, None))
    return Projection(tuple(steps))


def _project(plan: Projection, entry: Dataset, share: bool) -> Dataset:
    """The entry's values of the projection's return keys. ``share``: an element that
    needs no copy (not PN, not SQ) is the entry's own (``build_response``)."""
    out: dict[BaseTag, DataElement | RawDataElement] = {}
    for tag, vr, how, extra in plan.steps:
        stored = element_of(entry, tag)
        if how == _VALUE:
            if stored is None or stored.VR == "SQ":
                out[tag] = DataElement(tag, vr, empty_value_for_VR(vr))
            else:
                shared = share and stored.VR != "PN"
                out[tag] = stored if shared else _copy(stored)
        elif how == _CREATOR:
            out[tag] = _copy(extra)
        else:
            items = list(stored.value or []) if stored is not None and stored.VR == "SQ" else []
            answered = (
                [_copy_item(i) for i in items]
                if how == _WHOLE
                else [_project(extra, i, share) for i in items]
            )
            out[tag] = DataElement(tag, "SQ", Sequence(answered))
    return Dataset(out)


def answer_shape(query: Dataset) -> AnswerShape:
    """Everything of ``query`` that :func:`build_response` reads: the return keys' tags
    and VRs, each sequence key's item keys (as ``projection`` picks them), and
    the values of private creators. Two queries of one shape get the same answer from
    the same entry, whatever values they match on. Plain ints and strings, so that
    hashing and comparing a shape stays in C (pydicom's ``BaseTag.__eq__`` is Python)."""
    shape: list[tuple[object, ...]] = []
    for q in query:
        if q.tag.element == 0 or q.tag == SPECIFIC_CHARACTER_SET:
            continue
        tag, vr = int(q.tag), str(q.VR)
        if vr == "SQ":
            keys = [item for item in q.value or [] if any(e.tag.element for e in item)]
            shape.append((tag, vr, answer_shape(keys[0]) if keys else None))
        elif q.tag.is_private and 0x0010 <= q.tag.element <= 0x00FF:
            shape.append((tag, vr, repr(q.value)))
        else:
            shape.append((tag, vr))
    return tuple(shape)


def build_response(
    query: Dataset,
    entry: Dataset,
    *,
    character_set: str = DEFAULT_CHARACTER_SET,
    unrepresentable: str = "utf8",
    plan: Projection | None = None,
) -> Dataset:
    """One C-FIND pending answer: the query's keys with the entry's values.

    Every key of the identifier is returned (empty when the entry lacks it),
    nothing else (PS3.4 C.4.1.1.3.2, K.6.1.2). A sequence key with zero items
    or one empty item returns the entry's items whole; an item with keys
    returns just those keys of each stored item. Specific Character Set
    (0008,0005) is present only when a value is not ASCII (see
    ``_answer_charset``); pydicom then encodes the values with it. With
    ``unrepresentable`` ``replace`` or ``transliterate``, values are first made
    to fit ``character_set`` (:func:`fit`) instead of falling back to UTF-8.

    ``plan``: ``projection(query)``, when the caller answers many entries. An answer
    shares the entry's elements whose values it sends as they are (text and numbers:
    nothing changes them once built, and pydicom's encoding only reads them); person
    names and sequences are copied, as is everything when values must be fitted.
    """
    check_character_set(character_set)
    fitting = unrepresentable != "utf8"
    out = _project(plan or projection(query), entry, share=not fitting)
    if fitting:
        _fitted(out, python_encoding[character_set], unrepresentable)
    charset = _answer_charset(out, character_set)
    if charset is not None:
        # ISO 2022 sets with code extensions: the first value is the default
        # repertoire, written empty (PS3.3 C.12.1.1.2), e.g. "\ISO 2022 IR 87".
        out.SpecificCharacterSet = ["", charset] if charset.startswith("ISO 2022") else charset
    return out

"""DICOM JSON (PS3.18 Annex F) of worklist entries and patient records, written and read
directly.

pydicom's ``Dataset.to_json_dict`` is general (bulk data, numbers, AT, raw
elements) and was a quarter of the cost of applying an order. Entries hold
string VRs, person names and sequences, so those are written here; any other
element is handed to pydicom's own ``DataElement.to_json_dict``, so the result
is the same dictionary in every case (tests compare the two byte for byte).

Reading is the same trade (``dataset_from_json``): ``Dataset.from_json`` took
≈ 290 µs of a cold C-FIND's ≈ 750 µs per candidate entry (bench/RESULTS.md). Text,
person names and sequences are built here, with pydicom's own element constructor
(no value validation: stored entries were checked when they were mapped); any
other element, and any dataset with a private element (pydicom links those to
their creators as it adds them), is pydicom's ``from_json``, so the result equals
pydicom's in every case (tests compare them).
"""

from __future__ import annotations

import functools
from typing import Any

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName

from broker.common import jsontext
from broker.worklist.model import Entry, MappedEntry

__all__ = ["dataset_from_json", "dataset_json", "dumps", "entry_json", "mapped_element"]

# PS3.5 §6.2 string VRs whose JSON value is the string itself (PS3.18 F.2.3);
# IS and DS are left to pydicom, which turns them into JSON numbers.
_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
_CONVERTED_VRS = frozenset({"UI"})  # pydicom makes a UID of the text
_DATE_TIME_VRS = frozenset({"DA", "DT", "TM"})  # and dates and times, when configured to
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")  # PS3.18 F.2.2
# pydicom's defaults for Dataset.to_json_dict, used for every element left to it.
_BULK_THRESHOLD = 1024


def dumps(ds: Dataset) -> str:
    """The dataset as DICOM JSON text, as ``jsontext.dumps(ds.to_json_dict())``."""
    return jsontext.dumps(dataset_json(ds))


def entry_json(entry: Entry) -> dict[str, Any]:
    """An entry's DICOM JSON: as the mapping engine wrote it, or of a ``Dataset``."""
    return entry.json if isinstance(entry, MappedEntry) else dataset_json(entry)


def mapped_element(tag: int, vr: str, values: list[str]) -> dict[str, Any]:
    """One element of mapped text ``values`` (already checked for their VR), as
    ``dataset_json`` writes the element pydicom makes of them: a string per value, a
    person name as its component groups, anything else (numbers) as pydicom writes it."""
    if vr in _TEXT_VRS:
        return {"vr": vr, "Value": values} if values else {"vr": vr}
    if vr == "PN":  # the component groups PersonName(v) has (checked values: no decoding)
        names = [dict(zip(_PN_GROUPS, _name_groups(v)[:3], strict=False)) for v in values if v]
        return {"vr": vr, "Value": names} if names else {"vr": vr}
    value: Any = values if len(values) > 1 else (values[0] if values else "")
    return _element(DataElement(BaseTag(tag), vr, value))


def dataset_json(ds: Dataset) -> dict[str, Any]:
    """PS3.18 F.2 JSON model of ``ds``: equal to ``ds.to_json_dict()``, element order included."""
    out: dict[str, Any] = {}
    # keys(), not iteration: a Dataset iterates its elements sorted by tag, while
    # to_json_dict writes them in insertion order.
    for tag in ds.keys():  # noqa: SIM118
        out[f"{tag:08X}"] = _element(ds[tag])
    return out


def _element(elem: DataElement) -> dict[str, Any]:
    """One element (PS3.18 F.2.2/F.2.3); anything but text, PN and SQ is pydicom's."""
    vr = elem.VR
    value = elem.value
    if vr == "SQ":
        return {"vr": "SQ", "Value": [dataset_json(item) for item in value]}
    if vr in _TEXT_VRS:
        values = _texts(value)
        if values is not None:
            return {"vr": vr, "Value": values} if values else {"vr": vr}
    elif vr == "PN":
        names = _names(value)
        if names is not None:
            return {"vr": vr, "Value": names} if names else {"vr": vr}
    return elem.to_json_dict(None, _BULK_THRESHOLD)


def _texts(value: Any) -> list[str] | None:
    """A string value as a JSON value list; None when it is not plain text."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if _multi(value) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _names(value: Any) -> list[dict[str, str]] | None:
    """A PN value as component groups (PS3.18 F.2.2); None when it is not a PersonName."""
    if value is None:
        return []
    if isinstance(value, PersonName):
        return [_groups(value)] if value else []
    if _multi(value) and all(isinstance(v, PersonName) for v in value):
        return [_groups(v) for v in value]
    return None


def _multi(value: Any) -> bool:
    # pydicom writes a one-item MultiValue (VM 1) as a nested value: left to it, unchanged.
    return isinstance(value, MultiValue) and len(value) != 1


def _name_groups(text: str) -> list[str]:
    """``PersonName(text).components`` of a str: split at "=", trailing empty groups dropped."""
    groups = text.split("=")
    while groups and not groups[-1]:
        groups.pop()
    return groups


def _groups(name: PersonName) -> dict[str, str]:
    components = name.components
    return dict(zip(_PN_GROUPS, components[:3], strict=False))


def dataset_from_json(data: dict[str, Any]) -> Dataset:
    """The dataset of PS3.18 F.2 JSON ``data``: equal to ``Dataset.from_json(data)``,
    element order included (module docstring)."""
    tags = [_tag(key) for key in data]
    if any(tag.is_private for tag in tags):  # pydicom links them to their creators
        return Dataset.from_json(data)
    return Dataset(
        {
            tag: _read(key, tag, element)
            for tag, (key, element) in zip(tags, data.items(), strict=True)
        }
    )


def _read(key: str, tag: BaseTag, element: Any) -> DataElement:
    """One element (PS3.18 F.2.2/F.2.3); anything but text, PN and SQ is pydicom's."""
    if isinstance(element, dict) and element.keys() <= {"vr", "Value"}:  # no bulk data
        vr, values = element.get("vr"), element.get("Value")
        if vr in _TEXT_VRS and (values is None or _all(values, str)):
            return _element_of(tag, vr, values if values else "")
        if vr == "PN" and (values is None or _all(values, dict)):
            names = [_pn_text(groups) for groups in values] if values else ""
            return _element_of(tag, vr, names)
        if vr == "SQ" and (values is None or _all(values, dict)):
            items = Sequence([dataset_from_json(item) for item in values or ()])
            return DataElement(tag, vr, items, validation_mode=config.IGNORE)
    return Dataset.from_json({key: element})[tag]


def _element_of(tag: BaseTag, vr: str, values: list[Any] | str) -> DataElement:
    """A text or PN element of JSON ``values`` (one value alone, several as a list)."""
    value = values[0] if isinstance(values, list) and len(values) == 1 else values
    if isinstance(value, str) and "\\" not in value and vr not in _CONVERTED_VRS:
        # What pydicom's value setter makes of one string without a backslash (which
        # it would split into values), made here: the text itself, or a PersonName.
        if vr == "PN":
            value = PersonName(value, validation_mode=config.IGNORE)
        elif vr in _DATE_TIME_VRS and config.datetime_conversion:
            return DataElement(tag, vr, value, validation_mode=config.IGNORE)
        return DataElement(tag, vr, value, validation_mode=config.IGNORE, already_converted=True)
    return DataElement(tag, vr, value, validation_mode=config.IGNORE)


def _all(values: Any, kind: type) -> bool:
    return isinstance(values, list) and all(isinstance(v, kind) for v in values)


def _pn_text(groups: dict[str, str]) -> str:
    """A PN value's component groups as pydicom reads them: ``=``-joined up to the last
    group present (PS3.18 F.2.2)."""
    if "Phonetic" in groups:
        count = 3
    elif "Ideographic" in groups:
        count = 2
    else:
        count = 1
    return "=".join(groups.get(name, "") for name in _PN_GROUPS[:count])


@functools.lru_cache(maxsize=4096)
def _tag(key: str) -> BaseTag:
    """The tag of a JSON key (8 hex digits); the few an entry uses, made once."""
    return BaseTag(int(key, 16))

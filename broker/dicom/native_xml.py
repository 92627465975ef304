"""A dataset as PS3.19 Native DICOM Model XML (``application/dicom+xml``, PS3.19 A.1).

pydicom reads and writes DICOM JSON but has no XML writer; this small one covers
what worklist answers hold:

- ``<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">``, one
  ``<DicomAttribute tag="GGGGEEEE" vr="VR" keyword="...">`` per element in tag order
  (``privateCreator`` on private elements, no ``keyword``);
- ``<Value number="n">`` per value (1-based), ``<Item number="n">`` per sequence item,
  ``<PersonName number="n">`` with ``<Alphabetic>``, ``<Ideographic>``, ``<Phonetic>``
  groups of ``<FamilyName>``, ``<GivenName>``, ``<MiddleName>``, ``<NamePrefix>``,
  ``<NameSuffix>`` (empty components left out, PS3.19 A.1.5);
- binary VRs as ``<InlineBinary>`` (base64); no BulkData;
- text escaped by ``xml.etree`` (``&``, ``<``, ``>``, quotes in attributes); characters
  XML 1.0 cannot carry (controls other than TAB, LF, CR; lone surrogates) are refused
  with ``ValueError``.
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET  # writing only, never parsing
from collections.abc import Iterable

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

__all__ = ["NAMESPACE", "to_xml"]

NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_PN_PARTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: object) -> str:
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    if _NOT_XML.search(text):
        raise ValueError("a value holds a character XML 1.0 cannot carry")
    return text


def _values(elem: DataElement) -> list[object]:
    value = elem.value
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, MultiValue | list) else [value]


def _person_name(parent: ET.Element, number: int, value: object) -> None:
    """One PN value (PS3.19 A.1.5): component groups, then their components."""
    name = value if isinstance(value, PersonName) else PersonName(_text(value))
    node = ET.SubElement(parent, "PersonName", number=str(number))
    for group_name, group in zip(_PN_GROUPS, _text(name).split("="), strict=False):
        if not group:
            continue
        group_node = ET.SubElement(node, group_name)
        for part_name, part in zip(_PN_PARTS, group.split("^"), strict=False):
            if part:
                ET.SubElement(group_node, part_name).text = _text(part)


def _attribute(parent: ET.Element, elem: DataElement, creators: dict[int, str]) -> None:
    """One ``DicomAttribute`` (PS3.19 A.1.1) with its values, items or inline binary."""
    tag = elem.tag
    attrs = {"tag": f"{int(tag):08X}", "vr": str(elem.VR)}
    if tag.is_private:
        creator = creators.get((tag.group << 16) | (tag.element >> 8))
        if creator and tag.element > 0x00FF:
            attrs["privateCreator"] = creator
    elif elem.keyword:
        attrs["keyword"] = elem.keyword
    node = ET.SubElement(parent, "DicomAttribute", attrs)
    if elem.VR == "SQ":
        for number, item in enumerate(elem.value or [], start=1):
            _items(ET.SubElement(node, "Item", number=str(number)), item)
        return
    if elem.VR in _BINARY_VRS:
        if elem.value:
            ET.SubElement(node, "InlineBinary").text = base64.b64encode(elem.value).decode()
        return
    for number, value in enumerate(_values(elem), start=1):
        if elem.VR == "PN":
            _person_name(node, number, value)
        else:
            ET.SubElement(node, "Value", number=str(number)).text = _text(value)


def _items(parent: ET.Element, ds: Dataset) -> None:
    creators = {
        (int(e.tag.group) << 16) | int(e.tag.element): str(e.value)
        for e in ds
        if e.tag.is_private and 0x0010 <= e.tag.element <= 0x00FF
    }
    for elem in _sorted(ds):
        if elem.tag.element == 0:  # group lengths are not part of the model
            continue
        _attribute(parent, elem, creators)


def _sorted(ds: Dataset) -> Iterable[DataElement]:
    return sorted(ds, key=lambda e: int(e.tag))


def to_xml(ds: Dataset) -> bytes:
    """``ds`` as one UTF-8 ``application/dicom+xml`` document (PS3.19 A.1)."""
    root = ET.Element("NativeDicomModel", xmlns=NAMESPACE)
    root.set("xml:space", "preserve")
    _items(root, ds)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document

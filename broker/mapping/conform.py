"""Values checked against their DICOM VR, and made into pydicom elements cheaply.

PS3.5 §6.2 (Table 6.2-1): every value a mapping produces is checked for the
length and character repertoire of its VR and never truncated; a value that
does not fit is an HL7 error naming the field (AE 104 too long, AE 102 not
valid). Used by the engine for mapped values and by the parser for the
constants a mapping file holds.
"""

from __future__ import annotations

import functools
import re

from pydicom import config as dicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.valuerep import validate_value

from broker.errors import MappingError
from broker.hl7.codes import ErrorCode
from broker.mapping.spec import ValueRule

__all__ = ["MAX_LENGTH", "conform", "element", "put"]

MAX_LENGTH = {
    "AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64,
    "LT": 10240, "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UI": 64,
}  # fmt: skip
# VRs whose pydicom value is the str itself (no UID, PersonName or number object).
_PLAIN_VRS = frozenset({"AE", "AS", "CS", "LO", "LT", "SH", "ST", "UC", "UR", "UT"})
_DATE_VRS = frozenset({"DA", "DT", "TM"})  # str too, unless pydicom's datetime_conversion is on
_TEXT_VRS = frozenset({"LT", "ST", "UT"})  # may hold line breaks and backslashes (PS3.5 §6.2)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")


def element(tag: int, vr: str, value: str) -> DataElement:
    """A single-valued element; text VRs skip pydicom's conversion, which would keep the str.

    ``conform`` already validated the value as pydicom would (``validate_value``),
    and for these VRs pydicom's conversion returns the string unchanged; the
    others (PN, UI, numbers) are converted without validating a second time.
    """
    key = BaseTag(tag)
    if vr in _PLAIN_VRS or (vr in _DATE_VRS and not dicom_config.datetime_conversion):
        return DataElement(key, vr, value, already_converted=True)
    return DataElement(key, vr, value, validation_mode=dicom_config.IGNORE)


def put(dataset: Dataset, elem: DataElement) -> None:
    """``dataset[elem.tag] = elem`` for a public, non-sequence element made by :func:`element`.

    ``Dataset.__setitem__`` re-checks the key, private blocks and pixel data,
    none of which apply here, and was a tenth of the cost of mapping an order;
    anything else takes the ordinary path.
    """
    if elem.VR == "SQ" or elem.tag.is_private:
        dataset[elem.tag] = elem
    else:
        dataset._dict[elem.tag] = elem  # the element store Dataset.__setitem__ itself writes


def conform(text: str, rule: ValueRule, location: str | None) -> str:
    """Check one value against its VR (PS3.5 §6.2); never truncate, never guess.

    Control characters (line breaks from ``\\.br\\``) become spaces in VRs
    that cannot hold them; leading and trailing spaces, insignificant in
    DICOM string VRs, are removed.
    """
    vr = rule.vr
    if vr in _TEXT_VRS:
        text = text.rstrip()
    else:
        text = _CONTROL_RE.sub(" ", text).strip()
        if "\\" in text:
            raise MappingError(
                ErrorCode.DATA_TYPE_ERROR,
                location,
                f"{_where(rule, location)} contains '\\', the DICOM value delimiter, "
                f"which VR {vr} cannot hold",
            )
    limit = MAX_LENGTH.get(vr)
    lengths = [len(group) for group in text.split("=")] if vr == "PN" else [len(text)]
    if limit is not None and max(lengths) > limit:
        unit = "characters per name group" if vr == "PN" else "characters"
        raise MappingError(
            ErrorCode.VALUE_TOO_LONG,
            location,
            f"{_where(rule, location)} has {max(lengths)} characters; "
            f"VR {vr} allows at most {limit} {unit}",
        )
    if vr == "PN" and any(group.count("^") > 4 for group in text.split("=")):
        raise MappingError(
            ErrorCode.DATA_TYPE_ERROR,
            location,
            f"{_where(rule, location)} has more than 5 name parts",
        )
    if not _valid(vr, text):
        raise MappingError(
            ErrorCode.DATA_TYPE_ERROR,
            location,
            f"{_where(rule, location)} is not a valid DICOM {vr} value",
        )
    return text


def _where(rule: ValueRule, location: str | None) -> str:
    return f"{location or rule.name} ({rule.keyword})"


@functools.lru_cache(maxsize=4096)
def _valid(vr: str, text: str) -> bool:
    """pydicom's own check of a value for its VR; cached, as constants and table
    values (modality, codes, station names) repeat in every order."""
    try:
        validate_value(vr, text, dicom_config.RAISE)
    except ValueError:
        return False
    return True

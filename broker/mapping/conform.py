"""Values checked against their DICOM VR.

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
from pydicom.valuerep import validate_value

from broker.errors import MappingError
from broker.hl7.codes import ErrorCode
from broker.mapping.spec import ValueRule

__all__ = ["MAX_LENGTH", "conform"]

MAX_LENGTH = {
    "AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64,
    "LT": 10240, "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UI": 64,
}  # fmt: skip
_TEXT_VRS = frozenset({"LT", "ST", "UT"})  # may hold line breaks and backslashes (PS3.5 §6.2)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")


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
        if not text.isprintable():  # a control character (or another non-printing one)
            text = _CONTROL_RE.sub(" ", text)
        text = text.strip()
        if "\\" in text:
            raise MappingError(
                ErrorCode.DATA_TYPE_ERROR,
                location,
                f"{_where(rule, location)} contains '\\', the DICOM value delimiter, "
                f"which VR {vr} cannot hold",
            )
    limit = MAX_LENGTH.get(vr)
    if vr == "PN":
        _check_person_name(text, rule, location, limit)
    elif limit is not None and len(text) > limit:
        raise MappingError(
            ErrorCode.VALUE_TOO_LONG,
            location,
            f"{_where(rule, location)} has {len(text)} characters; "
            f"VR {vr} allows at most {limit} characters",
        )
    if not _valid(vr, text):
        raise MappingError(
            ErrorCode.DATA_TYPE_ERROR,
            location,
            f"{_where(rule, location)} is not a valid DICOM {vr} value",
        )
    return text


def _check_person_name(text: str, rule: ValueRule, location: str | None, limit: int | None) -> None:
    groups = text.split("=")
    longest = max(len(group) for group in groups)
    if limit is not None and longest > limit:
        raise MappingError(
            ErrorCode.VALUE_TOO_LONG,
            location,
            f"{_where(rule, location)} has {longest} characters; "
            f"VR PN allows at most {limit} characters per name group",
        )
    if any(group.count("^") > 4 for group in groups):
        raise MappingError(
            ErrorCode.DATA_TYPE_ERROR,
            location,
            f"{_where(rule, location)} has more than 5 name parts",
        )


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

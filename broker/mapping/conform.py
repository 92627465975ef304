"""Values checked against their DICOM VR.

PS3.5 §6.2 (Table 6.2-1): every value a mapping produces is checked for the
length and character repertoire of its VR. A value that is not valid is an HL7
error naming the field (AE 102); one that is too long is cut to fit when its
rule says ``on_overflow: truncate`` and the caller collects what was cut
(``broker.mapping.overflow``), else refused (AE 104). Used by the engine for
mapped values and by the parser for the constants a mapping file holds, which
are never cut.
"""

from __future__ import annotations

import functools
import re

from pydicom import config as dicom_config
from pydicom.valuerep import validate_value

from broker.errors import MappingError
from broker.hl7.codes import ErrorCode
from broker.mapping.overflow import OnOverflow, cut, cut_person_name
from broker.mapping.spec import ValueRule
from broker.worklist.model import Truncation

__all__ = ["MAX_LENGTH", "conform"]

MAX_LENGTH = {
    "AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64,
    "LT": 10240, "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UI": 64,
}  # fmt: skip
_TEXT_VRS = frozenset({"LT", "ST", "UT"})  # may hold line breaks and backslashes (PS3.5 §6.2)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")


def conform(
    text: str, rule: ValueRule, location: str | None, cuts: list[Truncation] | None = None
) -> str:
    """Check one value against its VR (PS3.5 §6.2); never guess.

    Control characters (line breaks from ``\\.br\\``) become spaces in VRs
    that cannot hold them; leading and trailing spaces, insignificant in
    DICOM string VRs, are removed. A value too long for the VR is cut when
    ``cuts`` is given and the rule's ``on_overflow`` is ``truncate`` (what was
    cut is appended to ``cuts``), else refused with AE 104.
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
    if limit is not None:
        text = _fit(text, rule, (location, limit), cuts)
    if vr == "PN":
        _check_name_parts(text, rule, location)
    if not _valid(vr, text):
        raise MappingError(
            ErrorCode.DATA_TYPE_ERROR,
            location,
            f"{_where(rule, location)} is not a valid DICOM {vr} value",
        )
    return text


def _fit(
    text: str, rule: ValueRule, place: tuple[str | None, int], cuts: list[Truncation] | None
) -> str:
    """``text`` if it fits its VR's ``limit`` (per component group for PN), else cut or refused."""
    location, limit = place
    person = rule.vr == "PN"
    length = max(len(group) for group in text.split("=")) if person else len(text)
    if length <= limit:
        return text
    if cuts is None or rule.on_overflow is not OnOverflow.TRUNCATE:
        per = " per name group" if person else ""
        raise MappingError(
            ErrorCode.VALUE_TOO_LONG,
            location,
            f"{_where(rule, location)} has {length} characters; "
            f"VR {rule.vr} allows at most {limit} characters{per}",
        )
    field = (location or "").replace("[*]", "")  # every repetition: the field itself
    cuts.append(Truncation(field, rule.keyword, rule.vr, length, limit))
    return cut_person_name(text, limit) if person else cut(text, limit)


def _check_name_parts(text: str, rule: ValueRule, location: str | None) -> None:
    if any(group.count("^") > 4 for group in text.split("=")):
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

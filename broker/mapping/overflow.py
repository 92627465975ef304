"""A mapped value longer than its VR allows (PS3.5 Table 6.2-1): refused, or cut to fit.

Which values may be cut:

- **Never**, whatever the mapping says: values of a VR that is a code, a
  format or a reference (AE, AS, CS, DA, DS, DT, IS, TM, UI, UR), since a cut
  one is another value rather than a shorter one; and the keys the worklist
  matches, indexes and links on (:data:`KEY_IDENTIFIERS`: Patient ID,
  Accession Number, Requested Procedure ID, Scheduled Procedure Step ID,
  Study Instance UID, station AE title, Code Value, which goes to Long Code
  Value instead, PS3.3 8.8). A cut key could name another patient or order.
- **Refused by default** (``on_overflow: truncate`` allowed): the other
  identifiers (:data:`IDENTIFIERS`: issuers, order numbers, admission and
  study IDs, coding scheme versions…).
- **Cut by default** (``on_overflow: refuse`` allowed): display text of VR LO,
  SH, PN, ST and LT: names, descriptions, code meanings, coding scheme
  designators, locations, comments.

Lengths are counted in characters, not bytes (PS3.5 §6.2: the limits of the
VRs whose repertoire can be extended are in characters). Values are kept as
Unicode text and encoded to a scanner's character set only when answered
(``broker.dicom.response``), so a cut between two code points can never
split a multi-byte UTF-8 sequence or an ISO 2022 escape sequence: the encoder
writes those afterwards, around whole characters. A cut never separates a
combining mark from its base character (the base goes too), and leaves no
trailing space; a person name (PN) is cut per component group (PS3.5 §6.2.1)
and loses no ``=`` or ``^`` that separates what it keeps.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum

__all__ = [
    "IDENTIFIERS",
    "KEY_IDENTIFIERS",
    "OnOverflow",
    "cut",
    "cut_person_name",
    "default_policy",
    "why_not_cut",
]


class OnOverflow(StrEnum):
    """A rule's ``on_overflow``: what happens to a value longer than its VR allows."""

    REFUSE = "refuse"  # AE 104 at the field, nothing stored
    TRUNCATE = "truncate"  # cut at the limit; AA with an ERR of severity W


# VRs with a length limit whose values are text a person reads.
_CUTTABLE_VRS = frozenset({"LO", "PN", "SH", "ST", "LT"})
# VRs whose values are codes, formats or references: a cut value is a different one.
_UNCUTTABLE_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
# What the worklist, its indexes and the scanners match and link on (PS3.4 K.6.1,
# IHE RAD-5 keys): never cut.
KEY_IDENTIFIERS = frozenset(
    {
        "PatientID",
        "AccessionNumber",
        "RequestedProcedureID",
        "ScheduledProcedureStepID",
        "StudyInstanceUID",
        "ScheduledStationAETitle",
        "CodeValue",
    }
)
# Other identifiers: refused unless the mapping says ``on_overflow: truncate``.
IDENTIFIERS = frozenset(
    {
        "IssuerOfPatientID",
        "OtherPatientIDs",
        "PlacerOrderNumberImagingServiceRequest",
        "FillerOrderNumberImagingServiceRequest",
        "PlacerOrderNumberProcedure",
        "FillerOrderNumberProcedure",
        "AdmissionID",
        "ServiceEpisodeID",
        "StudyID",
        "PerformedProcedureStepID",
        "MedicalRecordLocator",
        "LocalNamespaceEntityID",
        "UniversalEntityID",
        "CodingSchemeVersion",
        "ContextIdentifier",
        "MappingResource",
    }
)


def default_policy(keyword: str, vr: str) -> OnOverflow:
    """Cut display text (VR LO, SH, PN, ST, LT), refuse identifiers and everything else."""
    if vr in _CUTTABLE_VRS and keyword not in KEY_IDENTIFIERS and keyword not in IDENTIFIERS:
        return OnOverflow.TRUNCATE
    return OnOverflow.REFUSE


def why_not_cut(keyword: str, vr: str) -> str | None:
    """Why ``on_overflow: truncate`` cannot apply to ``keyword`` (VR ``vr``); None if it can."""
    if keyword in KEY_IDENTIFIERS:
        return (
            f"{keyword} is a key the worklist matches and links on: a cut value could name "
            "another patient or order, so it is always refused (AE 104)"
        )
    if vr in _UNCUTTABLE_VRS:
        return f"a cut value of VR {vr} (a code, a format or a reference) is a different value"
    if vr not in _CUTTABLE_VRS:
        return f"VR {vr} has no length limit to cut at"
    return None


def cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters (code points), on a character boundary.

    A combining mark (Unicode category M) at the cut takes its base character
    with it, rather than leaving the base without its accent; trailing spaces,
    insignificant in DICOM string VRs (PS3.5 §6.2), are removed.
    """
    if len(text) <= limit:
        return text
    end = limit
    if _is_mark(text[end]):
        while end > 0 and _is_mark(text[end - 1]):
            end -= 1  # the marks before the cut belong to the same base
        end = max(end - 1, 0)  # the base itself
    return text[:end].rstrip(" ")


def _is_mark(char: str) -> bool:
    return unicodedata.category(char).startswith("M")


def cut_person_name(text: str, limit: int) -> str:
    """A PN value with each component group cut to ``limit`` characters (PS3.5 §6.2.1).

    Component separators (``^``) and spaces left at the end of a cut group are
    removed; the group delimiters (``=``) stay, so every group keeps its place.
    """
    groups = text.split("=")
    return "=".join(
        group if len(group) <= limit else cut(group, limit).rstrip("^ ") for group in groups
    )

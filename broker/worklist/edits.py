"""A worklist entry changed by hand (the admin console): which attributes may be, which
status changes make sense, and the entry's revision that an edit must name.

Editable are the attributes a radiographer or a PACS administrator fixes by hand when
the RIS sent something a scanner cannot use: where and when the step is scheduled, on
which modality, by whom and how it is described (:data:`EDITABLE`). The patient's
identity and demographics come from the ADT feed, the keys of the entry (accession,
Study Instance UID, Requested Procedure ID, SPS ID) from the RIS; those are refused.

The RIS stays the source of truth: its next update of the order replaces the entry's
attributes, hand edits included (the audit trail keeps that the edit was made); a hand
status other than SCHEDULED is kept through such an update as a modality's progress is
(``broker/store/lua/apply.lua``), and a status message of the RIS sets its own.

A revision names an entry's stored state (its DICOM JSON and its status): an edit names
the revision it was made on, and is refused (409) when the entry changed in between.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from broker.errors import BrokerError

__all__ = [
    "CANCELED",
    "EDITABLE",
    "ENDED",
    "SPS",
    "STATUSES",
    "STATUS_TAG",
    "EditRefused",
    "Editable",
    "EntryChanged",
    "UnknownEntry",
    "check_transition",
    "check_value",
    "editable",
    "edited",
    "revision",
]

SPS = "00400100"  # Scheduled Procedure Step Sequence
STATUS_TAG = "00400020"  # Scheduled Procedure Step Status
CANCELED = "CANCELED"  # what a cancel of the RIS gives its steps (mappings/orders.yaml CA, OC)
# PS3.3 C.4.10 defined terms; the ended ones are never left (as apply.lua's terminal rule).
STATUSES = frozenset(
    {"SCHEDULED", "ARRIVED", "READY", "STARTED", "DEPARTED", "CANCELED", "DISCONTINUED",
     "COMPLETED"}
)  # fmt: skip
ENDED = frozenset({"COMPLETED", "CANCELED", "DISCONTINUED"})

# keyword -> whether it is in the Scheduled Procedure Step item
_EDITABLE_KEYWORDS = {
    "ScheduledStationAETitle": True,
    "ScheduledStationName": True,
    "ScheduledProcedureStepLocation": True,
    "ScheduledProcedureStepStartDate": True,
    "ScheduledProcedureStepStartTime": True,
    "Modality": True,
    "ScheduledPerformingPhysicianName": True,
    "ScheduledProcedureStepDescription": True,
    "RequestedProcedureDescription": False,
    "RequestedProcedurePriority": False,
    "ReferringPhysicianName": False,
}
_ASCII_VRS = frozenset({"AE", "CS", "DA", "TM"})
_LENGTHS = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "PN": 64}
_TAG_RE = re.compile(r"\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?")
_TM_RE = re.compile(r"\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?")
_CS_RE = re.compile(r"[A-Z0-9_ ]*")


class EditRefused(BrokerError):
    """An edit that cannot be made as asked (400): the message names the attribute."""


class UnknownEntry(LookupError):
    """No worklist entry has this id (404)."""


class EntryChanged(Exception):
    """The entry is not at the revision named, or the change makes no sense in its state
    (409)."""


@dataclass(frozen=True)
class Editable:
    """An attribute that may be edited: its tag (8 hex digits), keyword, VR, and whether
    it is in the Scheduled Procedure Step item."""

    tag: str
    keyword: str
    vr: str
    in_step: bool


def _tag_of(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return f"{tag:08X}"


EDITABLE: dict[str, Editable] = {
    _tag_of(k): Editable(_tag_of(k), k, dictionary_VR(_tag_of(k)), in_step)
    for k, in_step in _EDITABLE_KEYWORDS.items()
}


def editable(attribute: str) -> Editable:
    """The editable attribute named by keyword or tag (``00400001``, ``(0040,0001)``), or
    ``EditRefused`` naming it and why."""
    name = attribute.strip()[:64]
    found = _TAG_RE.fullmatch(name)
    tag: str | None = None
    if found:
        tag = (found.group(1) + found.group(2)).upper()
    elif (number := tag_for_keyword(name)) is not None:
        tag = f"{number:08X}"
    if tag is None:
        raise EditRefused(f"{name!a}: not a DICOM keyword or tag")
    if tag in EDITABLE:
        return EDITABLE[tag]
    keyword = keyword_for_tag(int(tag, 16)) or "an unknown attribute"
    refused = f"{tag} ({keyword})"
    if tag == STATUS_TAG:
        raise EditRefused(f"{refused}: set the status with POST .../status")
    allowed = ", ".join(e.keyword for e in EDITABLE.values())
    raise EditRefused(
        f"{refused} is not editable by hand (patient identity comes from ADT, the entry's "
        f"keys from the RIS); editable: {allowed}"
    )


def check_value(attribute: Editable, value: str) -> str:
    """``value`` as it will be stored (trimmed), or ``EditRefused`` saying what is wrong
    with it (never echoing it)."""
    text = value.strip()
    where = f"{attribute.tag} ({attribute.keyword})"
    if any(c in text for c in "\\\r\n\t\x00") or not text.isprintable():
        raise EditRefused(f"{where}: one value of printable characters, without backslash")
    if attribute.vr in _ASCII_VRS and not text.isascii():
        raise EditRefused(f"{where}: ASCII characters only (VR {attribute.vr})")
    if attribute.vr == "DA" and text:
        try:
            dt.datetime.strptime(text, "%Y%m%d")
        except ValueError:
            raise EditRefused(f"{where}: a date YYYYMMDD") from None
    if attribute.vr == "TM" and text and not _time(text):
        raise EditRefused(f"{where}: a time HHMM or HHMMSS")
    if attribute.vr == "CS" and not _CS_RE.fullmatch(text):
        raise EditRefused(f"{where}: upper-case letters, digits, space and _ only")
    if attribute.vr == "PN" and "=" in text:
        raise EditRefused(f"{where}: the alphabetic name only (family^given^middle^prefix^suffix)")
    limit = _LENGTHS.get(attribute.vr)
    if limit is not None and len(text) > limit:
        raise EditRefused(f"{where}: at most {limit} characters (VR {attribute.vr})")
    return text


def _time(text: str) -> bool:
    if not _TM_RE.fullmatch(text):
        return False
    parts = [int(text[i : i + 2]) for i in range(0, min(len(text), 6), 2)]
    return all(v < bound for v, bound in zip(parts, (24, 60, 60), strict=False))


def edited(document: dict[str, Any], attribute: Editable, value: str) -> dict[str, Any]:
    """A copy of the entry's DICOM JSON with ``attribute`` set to ``value`` (empty: the
    attribute kept, without a value)."""
    doc = copy.deepcopy(document)
    where = doc
    if attribute.in_step:
        items = doc.get(SPS, {}).get("Value") or []
        if len(items) != 1:
            raise EditRefused("the entry does not hold exactly one Scheduled Procedure Step item")
        where = items[0]
    element: dict[str, Any] = {"vr": attribute.vr}
    if value:
        element["Value"] = [{"Alphabetic": value}] if attribute.vr == "PN" else [value]
    where[attribute.tag] = element
    return doc


def check_transition(current: str, status: str) -> None:
    """``EditRefused`` for a status the model does not know, ``EntryChanged`` for a change
    that cannot be made from ``current``: an ended step stays ended (as for the RIS), and a
    step already at ``status`` does not change."""
    if status not in STATUSES:
        raise EditRefused(f"status: one of {', '.join(sorted(STATUSES))}")
    if current in ENDED:
        raise EntryChanged(f"the step is {current}: an ended step is not changed again")
    if current == status:
        raise EntryChanged(f"the step is {current} already")


def revision(ds: bytes, status: bytes | None) -> str:
    """The revision of an entry stored as ``ds`` with ``status`` (``entry_edit.lua`` makes
    the same)."""
    return hashlib.sha1(ds + b"\n" + (status or b""), usedforsecurity=False).hexdigest()

"""Modality Worklist matching and answers: pure functions over pydicom Datasets.

``matches`` decides whether a worklist entry answers a C-FIND identifier (PS3.4
C.2.2.2, K.6); ``build_response`` projects the entry onto the identifier's keys;
``criteria_from_query`` extracts the exact values the store's index narrows on.
Values are compared as Unicode (pydicom decodes the query with its (0008,0005)).

Decisions the standard leaves to the implementation (conformance statement):

- PN is matched case-insensitively by default, never accent-insensitively. A
  key without ``=`` is tried against each component group of the stored name;
  a key with ``=`` group by group (an empty key group matches anything).
  Padding and trailing empty components are ignored (``DOE^JOHN^^^`` equals
  ``DOE^JOHN``); ``*`` spans ``^``, so ``DOE*`` matches ``DOE^JOHN``.
- Wild cards only in AE, CS, LO, LT, PN, SH, ST, UC, UR, UT (PS3.4 C.2.2.2.4);
  elsewhere ``*`` and ``?`` are literal.
- A DA/TM/DT single value covers its precision (``0856`` is 08:56:00-08:56:59.999999);
  DT time-zone offsets are ignored.
- SPS Start Date and Start Time given as ranges of different forms (``20240105-``
  with ``-1800``) are matched each on its own, as C.2.2.2.5.4 has it (Table
  K.6-1 makes two ranges one period but says nothing of mixed forms).
- Multi-valued stored attributes match when any value matches; multi-valued
  keys too (List of UID Matching, PS3.4 C.2.2.2.2, for every VR).
- Private elements are matched by tag; private creators are not keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import suppress

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from broker.dicom.wildcard import glob_match
from broker.worklist.model import CandidateCriteria

__all__ = [
    "DEFAULT_CHARACTER_SET",
    "NON_MATCHING_TAGS",
    "SPECIFIC_CHARACTER_SET",
    "constraining",
    "criteria_from_query",
    "element_of",
    "matches",
]

DEFAULT_CHARACTER_SET = "ISO_IR 192"

SPECIFIC_CHARACTER_SET = Tag(0x0008, 0x0005)
SPS_SEQUENCE = Tag(0x0040, 0x0100)
SPS_START_DATE = Tag(0x0040, 0x0002)
SPS_START_TIME = Tag(0x0040, 0x0003)

# Identifier elements that are never matched (PS3.4 C.2.2.2: Specific Character
# Set "is never matched"); Timezone Offset From UTC and Query/Retrieve Level
# qualify the query rather than select entries.
NON_MATCHING_TAGS = frozenset({SPECIFIC_CHARACTER_SET, Tag(0x0008, 0x0201), Tag(0x0008, 0x0052)})

_WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_RANGE_VRS = frozenset({"DA", "TM", "DT"})
_NUMERIC_VRS = frozenset({"DS", "IS", "FL", "FD", "SL", "SS", "UL", "US", "SV", "UV"})
# PS3.5 6.2: leading spaces are significant in these text VRs, trailing are not.
_TEXT_VRS = frozenset({"LT", "ST", "UT", "UC", "UR"})

_DA_RE = re.compile(r"\d{4}(?:\d{2}){0,2}")
_TM_RE = re.compile(r"\d{2}(?:\d{2}){0,2}(?:\.\d{1,6})?")
_DT_RE = re.compile(r"\d{4}(?:\d{2}){0,5}(?:\.\d{1,6})?(?:[+-]\d{4})?")

Bound = tuple[str | None, str | None]  # normalized (low, high); None is open


def _skipped(tag: BaseTag) -> bool:
    """Group lengths, non-matching keys and private creators are not keys."""
    if tag.element == 0 or tag in NON_MATCHING_TAGS:
        return True
    return tag.is_private and 0x0010 <= tag.element <= 0x00FF


def _effective_vr(query: DataElement, stored: DataElement | None) -> str:
    if stored is not None and stored.VR != "UN":
        return str(stored.VR)
    return str(query.VR)


def _strings(elem: DataElement, vr: str) -> list[str]:
    """Non-empty values of a non-sequence element as normalized strings.

    Padding is dropped per PS3.5 6.2: trailing spaces everywhere, leading
    spaces too except in LT/ST/UT/UC/UR; NUL padding of UI.
    """
    value = elem.value
    if value is None:
        return []
    items: Iterable[object] = value if isinstance(value, MultiValue | list) else [value]
    out = []
    for item in items:
        text = item.decode("latin-1") if isinstance(item, bytes) else str(item)
        text = text.rstrip(" \x00") if vr in _TEXT_VRS else text.strip(" \x00")
        if text and not (vr == "PN" and not text.strip("^= ")):  # PN of delimiters only
            out.append(text)
    return out


def element_of(ds: Dataset, tag: BaseTag) -> DataElement | None:
    """The element with ``tag`` in ``ds``, or None."""
    return ds.get(tag, None)


def _is_universal_values(values: list[str], vr: str) -> bool:
    """PS3.4 C.2.2.2.3: zero length, or ``*`` alone where wild cards apply."""
    return not values or (values == ["*"] and vr in _WILDCARD_VRS)


def _is_universal(elem: DataElement) -> bool:
    if elem.VR == "SQ":
        return all(_is_universal_item(item) for item in elem.value or [])
    return _is_universal_values(_strings(elem, str(elem.VR)), str(elem.VR))


def _is_universal_item(item: Dataset) -> bool:
    return all(_skipped(e.tag) or _is_universal(e) for e in item)


def _match_text(query: str, stored: str, vr: str, fold: bool) -> bool:
    """Single value or wild card matching of text (PS3.4 C.2.2.2.1, C.2.2.2.4)."""
    wild = vr in _WILDCARD_VRS and ("*" in query or "?" in query)
    if not fold:
        return glob_match(query, stored) if wild else query == stored
    # Case-insensitive: full case folding equates "STRASSE" and "Straße"; a "?" stands for
    # one character, which folding may change ("ß" becomes "ss"), so a wild card also
    # matches when the one-to-one lower case forms do.
    if not wild:
        return query.casefold() == stored.casefold()
    return any(glob_match(f(query), f(stored)) for f in (str.casefold, str.lower))


def _pn_group(group: str) -> str:
    """A PN component group without padding or trailing empty components."""
    return "^".join(c.strip() for c in group.split("^")).rstrip("^")


def _match_pn(query: str, stored: str, fold: bool) -> bool:
    """PN matching per component group (PS3.4 C.2.2.2.1, C.2.2.2.4; PS3.5 6.2)."""
    stored_groups = [_pn_group(g) for g in stored.split("=")]
    query_groups = [_pn_group(g) for g in query.split("=")]
    if len(query_groups) == 1:
        return any(_match_text(query_groups[0], g, "PN", fold) for g in stored_groups if g)
    for i, group in enumerate(query_groups):
        if group in ("", "*"):
            continue
        if i >= len(stored_groups) or not stored_groups[i]:
            return False
        if not _match_text(group, stored_groups[i], "PN", fold):
            return False
    return True


def _point(vr: str, value: str, high: bool) -> str | None:
    """A DA/TM/DT value as a fixed-width sortable string, or None if malformed.

    A value of reduced precision stands for an interval: padded with ``0``
    for its start and with ``9`` for its end (PS3.5 6.2 DA/TM/DT).
    """
    fill = "9" if high else "0"
    if vr == "TM":
        value = value.replace(":", "")  # ACR-NEMA style HH:MM:SS
        if not _TM_RE.fullmatch(value):
            return None
        whole, _, frac = value.partition(".")
        return whole.ljust(6, fill) + "." + frac.ljust(6, fill)
    if vr == "DA":
        value = value.replace(".", "")  # ACR-NEMA style YYYY.MM.DD
        return value.ljust(8, fill) if _DA_RE.fullmatch(value) else None
    if not _DT_RE.fullmatch(value):
        return None
    value = re.sub(r"[+-]\d{4}$", "", value)
    whole, _, frac = value.partition(".")
    return whole.ljust(14, fill) + "." + frac.ljust(6, fill)


def _bounds(vr: str, query: str) -> Bound | None:
    """Single value or ``a-b``/``-b``/``a-`` range as bounds (PS3.4 C.2.2.2.5)."""
    if _point(vr, query, False) is not None:  # DT offsets contain "-": try single first
        return _point(vr, query, False), _point(vr, query, True)
    if query.count("-") != 1:
        return None
    low, high = query.split("-")
    lo = _point(vr, low, False) if low else None
    hi = _point(vr, high, True) if high else None
    if (low and lo is None) or (high and hi is None):
        return None
    return lo, hi


def _in_bounds(point: str | None, bounds: Bound) -> bool:
    low, high = bounds
    return point is not None and (low is None or point >= low) and (high is None or point <= high)


def _match_range_vr(vr: str, query: str, stored: str) -> bool:
    bounds = _bounds(vr, query)
    if bounds is None:  # not a valid date/time or range: literal comparison
        return query == stored
    return _in_bounds(_point(vr, stored, False), bounds)


def _match_value(vr: str, query: str, stored: str, fold: bool) -> bool:
    if vr == "PN":
        return _match_pn(query, stored, fold)
    if vr in _RANGE_VRS:
        return _match_range_vr(vr, query, stored)
    if vr in _NUMERIC_VRS:
        with suppress(ValueError):
            return float(query) == float(stored)
    return _match_text(query, stored, vr, fold=False)


def _match_element(query: DataElement, stored: DataElement | None, fold: bool) -> bool:
    """One key against one stored attribute (PS3.4 C.2.2.2.1-C.2.2.2.6).

    An absent or empty stored value matches only universal matching.
    """
    if query.VR == "SQ":
        return _match_sequence(query, stored, fold)
    vr = _effective_vr(query, stored)
    keys = _strings(query, vr)
    if _is_universal_values(keys, vr):
        return True
    if stored is None or stored.VR == "SQ":
        return False
    values = _strings(stored, vr)
    return any(_match_value(vr, k, v, fold) for k in keys for v in values)


def _match_sequence(query: DataElement, stored: DataElement | None, fold: bool) -> bool:
    """Sequence Matching (PS3.4 C.2.2.2.6): each non-universal query item must
    match at least one item of the stored sequence."""
    items = [item for item in query.value or [] if not _is_universal_item(item)]
    if not items:
        return True
    stored_items = list(stored.value or []) if stored is not None and stored.VR == "SQ" else []
    return all(any(_match_dataset(q, s, fold) for s in stored_items) for q in items)


def _range_form(vr: str, value: str) -> str | None:
    """Which form of range a key is (PS3.4 C.2.2.2.5.1-2): ``a-b``, ``a-``, ``-b``
    (or ``-``); None for a single value or what is not a range of ``vr``."""
    if _point(vr, value, False) is not None or _bounds(vr, value) is None:
        return None
    low, high = value.split("-")
    return ("a" if low else "") + "-" + ("b" if high else "")


def _combined_date_time(query: Dataset) -> tuple[Bound, Bound] | None:
    """SPS Start Date and Start Time as one date-time range, or None.

    PS3.4 Table K.6-1 (remark on (0040,0003)): when both keys are given for
    Range Matching, date ``20240105-20240107`` with time ``1000-1800`` is the
    period from 10:00 on the 5th to 18:00 on the 7th, not 10:00-18:00 on each
    day. The Modality Worklist model requires this of every SCP, with or without
    extended negotiation (K.5.1: the date-time byte of its sub-item is reserved).
    As C.2.2.2.5.4 puts it for DA/TM pairs, both keys must use the same form of
    range (``a-b``, ``a-`` or ``-b``). Otherwise, and when either key is a single
    value, None: each key is matched on its own, so a time range applies to the
    time of day on any matched date.
    """
    date_elem = element_of(query, SPS_START_DATE)
    time_elem = element_of(query, SPS_START_TIME)
    if date_elem is None or time_elem is None:
        return None
    dates, times = _strings(date_elem, "DA"), _strings(time_elem, "TM")
    if len(dates) != 1 or len(times) != 1:
        return None
    form = _range_form("DA", dates[0])
    if form is None or form != _range_form("TM", times[0]):
        return None
    date_bounds, time_bounds = _bounds("DA", dates[0]), _bounds("TM", times[0])
    if date_bounds is None or time_bounds is None:
        return None
    return date_bounds, time_bounds


def _match_date_time(bounds: tuple[Bound, Bound], entry: Dataset) -> bool:
    (date_lo, date_hi), (time_lo, time_hi) = bounds
    low = None if date_lo is None else date_lo + (time_lo or "000000.000000")
    high = None if date_hi is None else date_hi + (time_hi or "999999.999999")
    date_elem, time_elem = element_of(entry, SPS_START_DATE), element_of(entry, SPS_START_TIME)
    dates = _strings(date_elem, "DA") if date_elem is not None else []
    times = _strings(time_elem, "TM") if time_elem is not None else []
    for d in dates:
        for t in times:
            day, clock = _point("DA", d, False), _point("TM", t, False)
            if day is not None and clock is not None and _in_bounds(day + clock, (low, high)):
                return True
    return False


def _match_dataset(query: Dataset, entry: Dataset, fold: bool) -> bool:
    combined = _combined_date_time(query)
    if combined is not None and not _match_date_time(combined, entry):
        return False
    for elem in query:
        if _skipped(elem.tag):
            continue
        if combined is not None and elem.tag in (SPS_START_DATE, SPS_START_TIME):
            continue
        if not _match_element(elem, element_of(entry, elem.tag), fold):
            return False
    return True


def constraining(query: Dataset) -> Dataset:
    """``query`` without its universal keys (a sequence whose items are all universal
    too): they match every entry (PS3.4 C.2.2.2.3), so :func:`matches` answers the same
    for both, and a search need not look at them once per entry. What is not a key
    (Specific Character Set, group lengths) is kept; the elements are shared."""
    kept = Dataset()
    for elem in query:
        if _skipped(elem.tag) or not _is_universal(elem):
            kept.add(elem)
    return kept


def matches(query: Dataset, entry: Dataset, *, pn_case_insensitive: bool = True) -> bool:
    """Whether ``entry`` answers the C-FIND identifier ``query``.

    Implements PS3.4 C.2.2.2 attribute matching as used by the Modality
    Worklist Information Model (PS3.4 K.6): single value, list of UID, universal,
    wild card, range and sequence matching; SPS Start Date and Time given as
    ranges of the same form are one date-time range (Table K.6-1, C.2.2.2.5.4).
    The Scheduled Procedure Step keys are matched inside the entry's Scheduled
    Procedure Step Sequence item. A key the entry lacks matches only universal
    matching.
    """
    return _match_dataset(query, entry, pn_case_insensitive)


def _exact(ds: Dataset | None, tag: BaseTag) -> str | None:
    """A key's value if it is one exact value the index can use, else None."""
    elem = element_of(ds, tag) if ds is not None else None
    if elem is None or elem.VR == "SQ":
        return None
    values = _strings(elem, str(elem.VR))
    if len(values) != 1:
        return None
    value = values[0]
    if elem.VR in _WILDCARD_VRS and ("*" in value or "?" in value):
        return None
    return value


def _date_range(sps: Dataset | None) -> tuple[str | None, str | None]:
    """SPS Start Date single value or range as YYYYMMDD bounds (padded if partial)."""
    value = _exact(sps, SPS_START_DATE)
    bounds = _bounds("DA", value) if value is not None else None
    return bounds if bounds is not None else (None, None)


def criteria_from_query(query: Dataset) -> CandidateCriteria:
    """Index constraints implied by the identifier (exact values only).

    Station AE title and Modality come from the single Scheduled Procedure
    Step item; the SPS Start Date, single or range (PS3.4 C.2.2.2.5), gives
    ``date_from``/``date_to``. Wild cards, lists and anything unparsable leave
    a field unconstrained: the index may over-approximate, ``matches`` decides.
    """
    sps_elem = element_of(query, SPS_SEQUENCE)
    sps_items = list(sps_elem.value or []) if sps_elem is not None and sps_elem.VR == "SQ" else []
    sps = sps_items[0] if len(sps_items) == 1 else None
    date_from, date_to = _date_range(sps)
    return CandidateCriteria(
        station_aet=_exact(sps, Tag(0x0040, 0x0001)),
        modality=_exact(sps, Tag(0x0008, 0x0060)),
        date_from=date_from,
        date_to=date_to,
        patient_id=_exact(query, Tag(0x0010, 0x0020)),
        accession_number=_exact(query, Tag(0x0008, 0x0050)),
    )

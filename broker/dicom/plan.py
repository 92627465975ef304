"""What a scanner's profile adds to its query, and whether an entry is answered.

``make_plan`` turns a query and the caller's profile into index criteria and
the extra checks (station scope, default date window and modality, hidden
statuses, answer limit); ``excluded`` applies them to one entry and, for
``mwl-broker explain``, says which one excluded it. The C-FIND service and the
explain command use these same two functions, so an explanation cannot
differ from what a scanner gets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from broker.dicom.matching import constraining, criteria_from_query, matches
from broker.dicom.profiles import ScannerProfile
from broker.dicom.timezone import localize
from broker.worklist.model import CandidateCriteria

__all__ = [
    "QueryPlan",
    "asks_for_status",
    "entry_status",
    "excluded",
    "make_plan",
    "sort_key",
    "station_titles",
]


@dataclass(frozen=True)
class QueryPlan:
    """What a profile adds to one query (``make_plan``)."""

    # the query as matched: SPS start keys in the site's zone, no universal keys
    match_query: Dataset
    criteria: CandidateCriteria
    window: tuple[str, str] | None  # the profile's default SPS Start Date range
    modality: str | None  # the profile's default Modality
    profile: ScannerProfile
    hidden: frozenset[str]
    limit: int
    nothing: bool  # the query asks for a station outside the profile's scope


def _step(ds: Dataset) -> Dataset | None:
    seq = ds.get("ScheduledProcedureStepSequence")
    return seq[0] if seq else None


def _values(item: Dataset | None, keyword: str) -> list[str]:
    value = item.get(keyword) if item is not None else None
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, MultiValue | list) else [str(value)]


def _text(item: Dataset | None, keyword: str) -> str:
    values = _values(item, keyword)
    return values[0].strip() if values else ""


def _given(item: Dataset | None, keyword: str) -> bool:
    """Whether the query constrains ``keyword`` (a value other than empty or ``*``)."""
    value = _text(item, keyword)
    return bool(value) and value != "*"


def _in_window(step: Dataset | None, window: tuple[str, str]) -> bool:
    date = _text(step, "ScheduledProcedureStepStartDate")
    return bool(date) and window[0] <= date <= window[1]


def sort_key(entry: Dataset, *, keys: tuple[str, ...]) -> tuple[str, ...]:
    """The profile's answer order: SPS start, accession, patient name, modality."""
    step = _step(entry)
    parts = {
        "start": lambda: (
            _text(step, "ScheduledProcedureStepStartDate")
            + _text(step, "ScheduledProcedureStepStartTime")
        ),
        "accession": lambda: str(entry.get("AccessionNumber", "")),
        "patient": lambda: str(entry.get("PatientName", "")).upper(),
        "modality": lambda: _text(step, "Modality"),
    }
    return tuple(parts[k]() for k in keys)


def station_titles(entry: Dataset) -> list[str]:
    """The entry's Scheduled Station AE Titles (0040,0001), what a profile's scope is
    checked against (``ScannerProfile.sees_station``; C-FIND and MPPS alike)."""
    return _values(_step(entry), "ScheduledStationAETitle")


def entry_status(entry: Dataset) -> str:
    """The entry's Scheduled Procedure Step Status, or empty."""
    seq = entry.get("ScheduledProcedureStepSequence")
    item = seq[0] if seq else None
    return str(item.get("ScheduledProcedureStepStatus", "")) if item is not None else ""


def asks_for_status(query: Dataset) -> bool:
    """Whether the query matches on SPS Status (a non-empty, non-``*`` value)."""
    value = entry_status(query).strip()
    return bool(value) and value != "*"


def make_plan(
    query: Dataset,
    profile: ScannerProfile,
    today: dt.date,
    hidden_default: frozenset[str],
    max_answers: int,
    zone: dt.tzinfo | None = None,
) -> QueryPlan:
    """What the profile adds to the query: scope, defaults, hidden statuses, limit.

    ``zone`` is the site's (None: the machine's): a query's Timezone Offset From
    UTC moves its SPS start keys into it (``broker.dicom.timezone``).
    """
    match_query = localize(query, zone)
    criteria = criteria_from_query(match_query)
    step = _step(query)
    window = None
    if not _given(step, "ScheduledProcedureStepStartDate"):
        window = profile.window(today)
        if window is not None:
            criteria = dataclasses.replace(criteria, date_from=window[0], date_to=window[1])
    modality = None
    if profile.modality and not _given(step, "Modality"):
        modality = profile.modality
        criteria = dataclasses.replace(criteria, modality=modality)
    stations = profile.stations
    if stations is not None and len(stations) == 1 and not profile.unassigned:
        (only,) = stations
        if criteria.station_aet not in (None, only):
            stations = frozenset()  # it asks for another station: nothing is in scope
        criteria = dataclasses.replace(criteria, station_aet=only)
    hidden = profile.hidden_statuses
    if hidden is None:
        hidden = hidden_default
    return QueryPlan(
        match_query=constraining(match_query),
        criteria=criteria,
        window=window,
        modality=modality,
        profile=profile,
        hidden=frozenset() if asks_for_status(query) else hidden,
        limit=profile.max_answers or max_answers,
        nothing=stations == frozenset(),
    )


def excluded(
    query: Dataset,
    entry: Dataset,
    plan: QueryPlan,
    *,
    pn_case_insensitive: bool,
    why: bool = False,
) -> list[str] | None:
    """None when the caller sees ``entry`` for ``query``; else the reasons why not.

    Without ``why`` the first failed check ends it (an empty list is returned,
    the C-FIND hot path); with ``why`` every check runs and each failure is said
    for a person (``mwl-broker explain``).
    """
    reasons: list[str] = []
    query = plan.match_query
    if not matches(query, entry, pn_case_insensitive=pn_case_insensitive):
        if not why:
            return reasons
        reasons += _failing_keys(query, entry, pn_case_insensitive)
    step = _step(entry)
    profile = plan.profile
    stations = station_titles(entry)
    if not profile.sees_station(stations):
        if not why:
            return reasons
        scope = ", ".join(sorted(profile.stations or ())) or "(none)"
        unassigned = " (and entries naming no station)" if profile.unassigned else ""
        reasons.append(
            f"profile scope: {profile.ae_title} sees stations {scope}{unassigned}; "
            f"the entry is for {', '.join(stations) or 'no station'}"
        )
    if plan.window is not None and not _in_window(step, plan.window):
        if not why:
            return reasons
        date = _text(step, "ScheduledProcedureStepStartDate") or "no date"
        low, high = plan.window
        reasons.append(f"profile date window {low}-{high} (the query gave no date); entry: {date}")
    if plan.modality is not None and _text(step, "Modality") != plan.modality:
        if not why:
            return reasons
        modality = _text(step, "Modality") or "none"
        reasons.append(
            f"profile default modality {plan.modality} (the query gave none); entry: {modality}"
        )
    if plan.hidden and entry_status(entry) in plan.hidden:
        if not why:
            return reasons
        reasons.append(
            f"SPS status {entry_status(entry)} is hidden unless the query asks for it "
            "(ScheduledProcedureStepStatus)"
        )
    return reasons or None


def _failing_keys(query: Dataset, entry: Dataset, pn_case_insensitive: bool) -> list[str]:
    """Every query key that the entry does not match, said for a person."""
    failing = []
    for elem in query:
        if elem.VR == "SQ":
            for item in elem.value or []:
                for sub in item:
                    single = Dataset()
                    single.add_new(elem.tag, "SQ", [_only(sub)])
                    if not matches(single, entry, pn_case_insensitive=pn_case_insensitive):
                        failing.append(_mismatch(sub, _values(_step(entry), sub.keyword)))
            continue
        if not matches(_only(elem), entry, pn_case_insensitive=pn_case_insensitive):
            failing.append(_mismatch(elem, _values(entry, elem.keyword)))
    return failing or ["the query's keys together do not match"]


def _only(elem: Any) -> Dataset:
    ds = Dataset()
    ds.add(elem)
    return ds


def _mismatch(elem: Any, stored: list[str]) -> str:
    asked = str(elem.value) if elem.value not in (None, "") else "(empty)"
    if elem.VR == "PN":  # no patient name in the explanation
        return f"query key {elem.keyword} does not match the entry's"
    held = ", ".join(stored) if any(stored) else "nothing (an empty value matches only *)"
    return f"query key {elem.keyword} = {asked} does not match the entry's {held}"

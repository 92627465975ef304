"""SPS Start Date with SPS Start Time: one date-time range, or two keys matched apart.

PS3.4 Table K.6-1 (remark on (0040,0003)) makes a date range with a time range
one period of time for every Modality Worklist SCP; C.2.2.2.5.4 allows that
only when both keys use the same form of range (``a-b``, ``a-``, ``-b``).
Otherwise, and with a single value, each key is matched on its own: a time
range then applies to the time of day on every date the date key matches.

The week below, and the answers to the first seven queries, are those DCMTK
3.6.7 ``wlmscpfs`` gives (queried with ``findscu``, which negotiates nothing).
To ``a-b`` with ``a-`` or ``-b`` it answers otherwise: it combines them, taking
the missing time bound as 00:00.
"""

from __future__ import annotations

import pytest
from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from broker.dicom.matching import criteria_from_query, matches

# Entry name: (SPS Start Date, SPS Start Time).
WEEK = {
    "A": ("20240105", "090000"),
    "B": ("20240106", "080000"),
    "C": ("20240105", "190000"),
    "D": ("20240106", "120000"),
    "E": ("20240107", "190000"),
    "F": ("20240104", "170000"),
    "G": ("20240108", "090000"),
}


def element(keyword: str, value: str) -> DataElement:
    """An element set without pydicom's validation (``a-b`` is a key, not a value)."""
    tag = tag_for_keyword(keyword)
    assert tag is not None
    return DataElement(tag, dictionary_VR(tag), value, validation_mode=config.IGNORE)


def with_step(date: str | None, time: str | None) -> Dataset:
    """A dataset whose one SPS item has these start keys (None: absent)."""
    step = Dataset()
    if date is not None:
        step.add(element("ScheduledProcedureStepStartDate", date))
    if time is not None:
        step.add(element("ScheduledProcedureStepStartTime", time))
    ds = Dataset()
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def answered(date: str | None, time: str | None) -> str:
    """The names of the week's entries that the query matches, in order."""
    query = with_step(date, time)
    return "".join(name for name, (d, t) in sorted(WEEK.items()) if matches(query, with_step(d, t)))


CASES = [
    # (why, date key, time key, entries matched)
    ("same form a-b: one period", "20240105-20240107", "1000-1800", "BCD"),
    ("range and single time: apart", "20240105-20240107", "1000", ""),
    ("single date and time range: apart", "20240105", "1000-1800", ""),
    ("a- and -b: apart", "20240105-", "-1800", "ABDG"),
    ("same form a-: from 10:00 on the 5th", "20240105-", "1000-", "BCDEG"),
    ("same form -b: until 18:00 on the 7th", "-20240107", "-1800", "ABCDF"),
    ("-b and a-: apart", "-20240107", "1000-", "CDEF"),
    ("a-b and a-: apart", "20240105-20240107", "1000-", "CDE"),
    ("a-b and -b: apart", "20240105-20240107", "-1800", "ABD"),
    ("a-b over midnight: one period", "20240105-20240106", "1800-0900", "BC"),
    ("single date and single time", "20240105", "0900", "A"),
    ("universal time: the dates", "20240105-20240107", "", "ABCDE"),
    ("universal date: the times of day", "", "1000-1800", "DF"),
    ("absent date: the times of day", None, "1000-1800", "DF"),
    ("absent time: the dates", "-20240105", None, "ACF"),
]


@pytest.mark.parametrize(
    ("date", "time", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_date_and_time_keys(date: str | None, time: str | None, expected: str) -> None:
    assert answered(date, time) == expected


@pytest.mark.parametrize(
    ("date", "time", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_candidate_dates_never_exclude_a_match(
    date: str | None, time: str | None, expected: str
) -> None:
    """The store's date pre-filter is the date key alone: broader than any match."""
    criteria = criteria_from_query(with_step(date, time))
    low, high = criteria.date_from or "00000000", criteria.date_to or "99999999"
    for name in expected:
        assert low <= WEEK[name][0] <= high


def test_an_entry_without_a_start_time() -> None:
    entry = with_step("20240106", None)
    assert not matches(with_step("20240105-20240107", "1000-1800"), entry)  # one period
    assert not matches(with_step("20240105-20240107", "1000-"), entry)  # apart
    assert matches(with_step("20240105-20240107", ""), entry)

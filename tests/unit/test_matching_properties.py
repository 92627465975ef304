"""Properties of worklist matching: an entry matches queries built from its own values, and a
profile's scope never lets another station's entry through, whatever the query holds."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from broker.dicom.matching import constraining, matches
from broker.dicom.plan import excluded, make_plan
from broker.dicom.profiles import ProfileSet

STATIONS = ["CT1", "CT2", "MR1", "US1", ""]
LETTERS = st.sampled_from(list("ABCXYZabcxyzÄÖÜäöüßéèçøåŁłЖжΩω山田太郎カナ"))
NAME_PART = st.text(LETTERS, min_size=1, max_size=8)


def element(keyword: str, value: str) -> DataElement:
    tag = tag_for_keyword(keyword)
    assert tag is not None
    return DataElement(tag, dictionary_VR(tag), value, validation_mode=config.IGNORE)


@st.composite
def entries(draw: st.DrawFn) -> Dataset:
    ds = Dataset()
    family, given_name = draw(NAME_PART), draw(NAME_PART)
    groups = [f"{family}^{given_name}"]
    if draw(st.booleans()):
        groups.append(f"{draw(NAME_PART)}^{draw(NAME_PART)}")  # an ideographic group
    ds.add(element("PatientName", "=".join(groups)))
    ds.add(element("PatientID", draw(st.from_regex(r"[A-Z0-9]{1,10}", fullmatch=True))))
    ds.add(element("AccessionNumber", draw(st.from_regex(r"[A-Z0-9-]{1,16}", fullmatch=True))))
    day = draw(st.dates(dt.date(2000, 1, 1), dt.date(2040, 12, 31)))
    time = draw(st.times()).strftime("%H%M%S")
    step = Dataset()
    step.add(element("ScheduledStationAETitle", draw(st.sampled_from(STATIONS))))
    step.add(element("Modality", draw(st.sampled_from(["CT", "MR", "US", "CR", "XA"]))))
    step.add(element("ScheduledProcedureStepStartDate", day.strftime("%Y%m%d")))
    step.add(element("ScheduledProcedureStepStartTime", time))
    step.add(
        element("ScheduledProcedureStepID", draw(st.from_regex(r"[A-Z0-9]{1,16}", fullmatch=True)))
    )
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def text_of(ds: Dataset, keyword: str) -> str:
    """The value of ``keyword`` as text (the entries strategy always writes it)."""
    element = ds.data_element(keyword)
    assert element is not None
    return str(element.value)


def as_wildcard(value: str, how: int) -> str:
    if how == 0 or len(value) < 2:
        return value
    if how == 1:
        return value[: len(value) // 2] + "*"
    return "?" + value[1:]


@settings(max_examples=300, deadline=None)
@given(entries(), st.data())
def test_a_query_built_from_the_entrys_own_values_matches_it(
    entry: Dataset, data: st.DataObject
) -> None:
    query = Dataset()
    step = entry.ScheduledProcedureStepSequence[0]
    for keyword in ("PatientName", "PatientID", "AccessionNumber"):
        if data.draw(st.booleans()):
            value = text_of(entry, keyword)
            if keyword == "PatientName":
                value = value.split("=")[0]  # the alphabetic group alone matches any group
                if data.draw(st.booleans()):
                    value = value.upper()  # names match case-insensitively by default
            query.add(element(keyword, as_wildcard(value, data.draw(st.integers(0, 2)))))
    item = Dataset()
    for keyword in ("ScheduledStationAETitle", "Modality", "ScheduledProcedureStepID"):
        if data.draw(st.booleans()):
            value = text_of(step, keyword)
            item.add(element(keyword, as_wildcard(value, data.draw(st.integers(0, 2))) or "*"))
    date = str(step.ScheduledProcedureStepStartDate)
    shape = data.draw(st.integers(0, 3))
    if shape == 1:
        item.add(element("ScheduledProcedureStepStartDate", date))
    elif shape == 2:
        item.add(element("ScheduledProcedureStepStartDate", f"{date[:6]}01-{date}"))
    elif shape == 3:  # combined date-time range around the entry's start (PS3.4 C.2.2.2.5)
        item.add(element("ScheduledProcedureStepStartDate", f"{date}-{date}"))
        start = str(step.ScheduledProcedureStepStartTime)
        item.add(element("ScheduledProcedureStepStartTime", f"{start}-235959"))
    query.ScheduledProcedureStepSequence = [item]
    assert matches(query, entry)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(entries(), min_size=1, max_size=6),
    st.lists(st.sampled_from(STATIONS[:-1]), min_size=1, max_size=3, unique=True),
    st.booleans(),
    st.sampled_from(["", "*", "CT*", "CT1", "CT2", "MR1", "US1", "ZZ9", "?T1"]),
)
def test_scope_never_leaks_another_stations_entry(
    batch: list[Dataset], scope: list[str], unassigned: bool, asked: str
) -> None:
    profiles = ProfileSet.parse(
        {"ME": {"scope": scope, "unassigned": unassigned, "addresses": ["any"]}}
    )
    profile = profiles.own_profile("ME")
    assert profile is not None
    query = Dataset()
    item = Dataset()
    item.add(element("ScheduledStationAETitle", asked))
    query.ScheduledProcedureStepSequence = [item]
    plan = make_plan(query, profile, dt.date(2026, 1, 1), frozenset(), 100)
    for entry in batch:
        station = str(entry.ScheduledProcedureStepSequence[0].ScheduledStationAETitle)
        answered = (
            not plan.nothing and excluded(query, entry, plan, pn_case_insensitive=True) is None
        )
        if answered:
            assert station in scope or (station == "" and unassigned)


KEY_VALUES = st.sampled_from(["", "*", "own", "other", "own*", "?"])


def _key(entry: Dataset, keyword: str, how: str) -> str:
    """A query key's value: universal ("" or "*"), the entry's own, another, a wild card."""
    own = text_of(entry, keyword).split("=")[0]
    return {"own": own, "other": "ZZ9", "own*": own[:1] + "*", "?": "?" + own[1:]}.get(how, how)


@settings(max_examples=300, deadline=None)
@given(entries(), entries(), st.data())
def test_a_query_without_its_universal_keys_matches_the_same_entries(
    entry: Dataset, other: Dataset, data: st.DataObject
) -> None:
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 192"
    for keyword in ("PatientName", "PatientID", "AccessionNumber"):
        if data.draw(st.booleans()):
            query.add(element(keyword, _key(entry, keyword, data.draw(KEY_VALUES))))
    if data.draw(st.booleans()):
        step, item = entry.ScheduledProcedureStepSequence[0], Dataset()
        for keyword in ("ScheduledStationAETitle", "Modality", "ScheduledProcedureStepStartDate"):
            if data.draw(st.booleans()):
                item.add(element(keyword, _key(step, keyword, data.draw(KEY_VALUES))))
        query.ScheduledProcedureStepSequence = [item]
    if data.draw(st.booleans()):
        del other.ScheduledProcedureStepSequence  # an entry lacking what a key names
    kept = constraining(query)
    assert "SpecificCharacterSet" in kept
    for candidate in (entry, other):
        assert matches(kept, candidate) == matches(query, candidate)

"""Properties of matching on generated entries (hypothesis): a query made of an entry's own
values matches it, also as it arrives through pynetdicom's codec; a station poll matches only
the entries scheduled for that station."""

from __future__ import annotations

import copy
import string
from datetime import date

from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from broker.dicom.matching import matches
from tests.unit.matching_helpers import Spec, make, sps, wire

_LETTERS = "abcxyzABCXYZäöüÉçßøДΘ"
_text = st.text(alphabet=_LETTERS + string.digits + " -.", min_size=0, max_size=12)
_names = st.lists(st.text(alphabet=_LETTERS, min_size=0, max_size=8), min_size=1, max_size=5).map(
    "^".join
)
_ae = st.text(alphabet=string.ascii_uppercase + string.digits + "_", min_size=1, max_size=16)
_dates = st.dates(date(1900, 1, 1), date(2099, 12, 31)).map(lambda d: d.strftime("%Y%m%d"))
_times = st.times().map(lambda t: t.strftime("%H%M%S"))
_uids = st.lists(st.integers(0, 99999), min_size=2, max_size=6).map(
    lambda p: "1." + ".".join(map(str, p))
)


@st.composite
def entries(draw: st.DrawFn) -> Dataset:
    spec: Spec = {
        "PatientName": draw(_names),
        "PatientID": draw(_text),
        "AccessionNumber": draw(_text),
        "PatientBirthDate": draw(_dates),
        "StudyInstanceUID": draw(_uids),
        "RequestedProcedureDescription": draw(_text),
        "ScheduledProcedureStepSequence": [
            {
                "ScheduledStationAETitle": draw(st.lists(_ae, min_size=1, max_size=3)),
                "Modality": draw(st.sampled_from(["CT", "MR", "US", "CR"])),
                "ScheduledProcedureStepStartDate": draw(_dates),
                "ScheduledProcedureStepStartTime": draw(_times),
                "ScheduledPerformingPhysicianName": draw(_names),
            }
        ],
    }
    return make(spec)


def _subset(data: st.DataObject, source: Dataset) -> Dataset:
    """A query with some of ``source``'s keys and values (one value of a multi-valued one)."""
    query = Dataset()
    for elem in source:
        if not data.draw(st.booleans()):
            continue
        if elem.VR == "SQ":
            query.add(DataElement(elem.tag, "SQ", [_subset(data, elem.value[0])]))
        elif elem.VM > 1:
            query.add(DataElement(elem.tag, elem.VR, data.draw(st.sampled_from(list(elem.value)))))
        else:
            query.add(copy.deepcopy(elem))
    return query


@given(entry=entries(), data=st.data())
def test_a_query_made_of_the_entrys_own_values_matches_it(
    entry: Dataset, data: st.DataObject
) -> None:
    query = _subset(data, entry)
    assert matches(query, entry)
    query.SpecificCharacterSet = "ISO_IR 192"
    assert matches(wire(query), entry)


@given(
    station=_ae,
    entry=entries(),
)
def test_a_station_never_sees_another_stations_entries(station: str, entry: Dataset) -> None:
    value = entry.ScheduledProcedureStepSequence[0].ScheduledStationAETitle
    scheduled = [value] if isinstance(value, str) else list(value)
    query = make(
        sps(ScheduledStationAETitle=station, Modality="", ScheduledProcedureStepStartDate="")
    )
    assert matches(query, entry) is (station in scheduled)

"""Candidate selection in Redis (one Lua script) gives exactly the ids the earlier
selection in Python gave (SINTER, then ZMSCORE of every id, filtered here)."""

from __future__ import annotations

import random

import pytest
import redis
from pydicom.dataset import Dataset

from broker.store.candidates import CandidateSelector
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria, OrderAction, OrderChange
from tests.conftest import KEYS
from tests.redis_replies import as_text

STATIONS = ["CT1", "CT2", "MR1", "US1"]
DAYS = [f"202612{d:02d}" for d in range(1, 11)]


def entry(n: int, rng: random.Random) -> Dataset:
    ds = Dataset()
    ds.PatientID = f"P{n % 40}"
    ds.AccessionNumber = f"A{n}"
    sps = Dataset()
    # CT1 is the busiest room; a few steps are for two rooms
    stations = rng.sample(STATIONS, 2) if n % 17 == 0 else rng.choices(STATIONS, [5, 1, 1, 1])
    sps.ScheduledStationAETitle = stations if len(stations) > 1 else stations[0]
    sps.Modality = stations[0][:2]
    if n % 23:  # every 23rd has no date, so no date score
        sps.ScheduledProcedureStepStartDate = rng.choice(DAYS)
    sps.ScheduledProcedureStepID = f"S{n}"
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def fill(store: WorklistStore, count: int) -> None:
    rng = random.Random(7)
    changes = [OrderChange(f"O{n}", OrderAction.SCHEDULE, (entry(n, rng),)) for n in range(count)]
    for i in range(0, count, 500):
        store.apply(changes[i : i + 500], None)


def earlier_selection(client: redis.Redis, criteria: CandidateCriteria) -> list[str]:
    """The selection as it was done before the Lua script, for comparison."""
    k = KEYS
    set_keys = CandidateSelector(client, k).set_keys(criteria)  # the same index sets
    has_dates = criteria.date_from is not None or criteria.date_to is not None
    low = float(criteria.date_from) if criteria.date_from else float("-inf")
    high = float(criteria.date_to) if criteria.date_to else float("inf")
    if set_keys:
        ids = sorted(as_text(i) for i in client.sinter(set_keys))
        if has_dates and ids:
            scores = client.zmscore(k.by_date(), ids)
            ids = [
                i for i, s in zip(ids, scores, strict=True) if s is not None and low <= s <= high
            ]
        return ids
    if has_dates:
        return [as_text(i) for i in client.zrangebyscore(k.by_date(), low, high)]
    return sorted(as_text(i) for i in client.smembers(k.all_entries()))


CRITERIA = [
    CandidateCriteria(),
    CandidateCriteria(station_aet="CT1"),
    CandidateCriteria(station_aet="CT1", date_from="20261203", date_to="20261203"),
    CandidateCriteria(station_aet="CT2", modality="CT", date_from="20261202", date_to="20261206"),
    CandidateCriteria(station_aet="CT2", modality="MR", date_from="20261202", date_to="20261206"),
    CandidateCriteria(patient_id="P7"),
    CandidateCriteria(patient_id="P7", date_from="20261101", date_to="20261231"),
    CandidateCriteria(patient_id="P7", station_aet="MR1", date_from="20261204"),
    CandidateCriteria(accession_number="A46"),  # no date score
    CandidateCriteria(accession_number="A46", date_from="20261201", date_to="20261210"),
    CandidateCriteria(station_aet="US1", date_to="20261202"),
    CandidateCriteria(station_aet="US1", date_from="20261209"),
    CandidateCriteria(modality="US", date_from="20261101", date_to="20261130"),
    CandidateCriteria(date_from="20261205", date_to="20261205"),
    CandidateCriteria(station_aet="CT1", date_from="20261201", date_to="20261206"),
    CandidateCriteria(modality="CT", date_from="20261201", date_to="20261210"),
    CandidateCriteria(station_aet="NONE", date_from="20261205", date_to="20261205"),
    CandidateCriteria(patient_id="P7", modality="XX"),
]


@pytest.mark.parametrize("count", [300, 2600])  # 2600: both sides past 1000 ids
def test_the_same_ids_as_the_earlier_selection(
    store: WorklistStore, redis_client: redis.Redis, count: int
) -> None:
    fill(store, count)
    for criteria in CRITERIA:
        ids = store.candidate_ids(criteria)
        assert ids == earlier_selection(redis_client, criteria), criteria
        if criteria.station_aet or criteria.modality or criteria.patient_id:
            assert ids == sorted(ids)


def test_entries_without_a_date_only_without_a_date_range(store: WorklistStore) -> None:
    rng = random.Random(1)
    dated, undated = entry(1, rng), entry(23, rng)  # the 23rd has no date
    for ds in (dated, undated):
        ds.ScheduledProcedureStepSequence[0].ScheduledStationAETitle = "CT9"
    store.apply([OrderChange("D", OrderAction.SCHEDULE, (dated, undated))], None)
    both = store.candidates(CandidateCriteria(station_aet="CT9"))
    assert sorted(ds.AccessionNumber for ds in both) == ["A1", "A23"]
    ranged = store.candidates(
        CandidateCriteria(station_aet="CT9", date_from="20000101", date_to="29991231")
    )
    assert [ds.AccessionNumber for ds in ranged] == ["A1"]


def test_the_date_bounds_are_inclusive(store: WorklistStore) -> None:
    fill(store, 300)
    k = KEYS
    for day in DAYS[:3]:
        criteria = CandidateCriteria(station_aet="CT1", date_from=day, date_to=day)
        ids = store.candidate_ids(criteria)
        assert ids, day
        scores = store.client.zmscore(k.by_date(), ids)
        assert None not in scores and {int(s) for s in scores if s is not None} == {int(day)}

"""Worklist entries and queries for the C-FIND benchmark, the same in every process.

Everything is derived from ``(count, seed)`` with a seeded random generator, so
the benchmark driver (which loads the broker and writes wlmscpfs's files) and
the ceiling SCP (which precomputes its answers) see the very same entries and
queries without passing them around.

Spread: 20 stations over 9 modalities (more CT, CR and US rooms than PET or
NM), one Scheduled Procedure Step per entry, SPS start dates over 30 days
around a fixed base date (weekends quieter), times 07:00-19:55 in 5-minute
slots, about 1.5 entries per patient, some names with accents.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.dataset import Dataset

__all__ = [
    "BASE_DATE",
    "DAYS",
    "STATIONS",
    "Entry",
    "Query",
    "all_queries",
    "entry_dataset",
    "expected_matches",
    "generate",
    "make_queries",
    "query_dataset",
    "query_key",
]

BASE_DATE = dt.date(2026, 12, 1)
DAYS = 30  # BASE_DATE - 10 days .. BASE_DATE + 19 days
FIRST_DAY = BASE_DATE - dt.timedelta(days=10)

# (station AE title, modality, relative load): 20 stations, 9 modalities.
STATIONS: tuple[tuple[str, str, float], ...] = (
    *((f"CT{i:02d}", "CT", 1.2) for i in range(1, 5)),
    *((f"MR{i:02d}", "MR", 0.8) for i in range(1, 4)),
    *((f"CR{i:02d}", "CR", 1.5) for i in range(1, 4)),
    *((f"DX{i:02d}", "DX", 1.2) for i in range(1, 3)),
    *((f"US{i:02d}", "US", 1.0) for i in range(1, 4)),
    ("MG01", "MG", 0.8),
    ("NM01", "NM", 0.5),
    ("PT01", "PT", 0.5),
    *((f"XA{i:02d}", "XA", 0.6) for i in range(1, 3)),
)

PROCEDURES = {
    "CT": ("CT HEAD W/O CONTRAST", "CT CHEST", "CT ABDOMEN PELVIS W CONTRAST", "CT ANGIO"),
    "MR": ("MR BRAIN", "MR KNEE LEFT", "MR LUMBAR SPINE", "MR PROSTATE"),
    "CR": ("XR CHEST PA LAT", "XR HAND RIGHT", "XR PELVIS", "XR ANKLE LEFT"),
    "DX": ("DX CHEST", "DX SPINE WHOLE", "DX SHOULDER RIGHT"),
    "US": ("US ABDOMEN", "US THYROID", "US DOPPLER LEG VEINS", "US OBSTETRIC"),
    "MG": ("MAMMO SCREENING BILATERAL", "MAMMO DIAGNOSTIC LEFT"),
    "NM": ("NM BONE SCAN", "NM THYROID SCAN"),
    "PT": ("PET-CT WHOLE BODY FDG",),
    "XA": ("CORONARY ANGIOGRAPHY", "PERIPHERAL ANGIOGRAPHY"),
}

FAMILY = (
    "Müller", "Schäfer", "Dubois", "Lefèvre", "García", "Núñez", "Ødegård", "Kowalski",
    "Wiśniewski", "Dvořák", "Öztürk", "Björk", "Smith", "Jones", "Nguyen", "Rossi", "Bianchi",
    "Novak", "Johansson", "Papadopoulos", "Schmidt", "Meyer", "Weber", "Fischer", "Wagner",
    "Becker", "Hoffmann", "Martin", "Bernard", "Moreau", "Lopez", "Brown", "Taylor", "Wilson",
    "Jansen", "De Vries", "Peeters", "Horvat", "Kovács", "Nowak",
)  # fmt: skip
GIVEN_F = (
    "Zoë", "Élodie", "Maria", "Anna", "Sophie", "Laura", "Léa", "Ingrid", "Małgorzata", "Jana",
    "Emma", "Olivia", "Julia", "Sara", "Eva", "Chloé",
)  # fmt: skip
GIVEN_M = (
    "Jürgen", "José", "François", "Søren", "Łukasz", "Jan", "Peter", "Thomas", "Luca", "Paul",
    "Marc", "David", "Ahmet", "Erik", "Tomáš", "Noah",
)  # fmt: skip
PHYSICIANS = ("Smith^Anna", "Lambert^Hélène", "Weiß^Karl", "Okafor^Chidi", "Berg^Lars")
PRIORITIES = ("ROUTINE",) * 8 + ("HIGH", "STAT")

UID_ROOT = "1.2.826.0.1.3680043.8.498.777."  # pydicom's root, a benchmark branch


@dataclass(frozen=True, slots=True)
class Entry:
    """One worklist entry (one Scheduled Procedure Step), as plain values."""

    n: int
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    accession: str
    referring: str
    procedure: str
    priority: str
    station: str
    modality: str
    date: str  # YYYYMMDD
    time: str  # HHMMSS
    performing: str


def _day_weight(day: dt.date) -> float:
    return {5: 0.3, 6: 0.2}.get(day.weekday(), 1.0)


def generate(count: int, seed: int = 1) -> list[Entry]:
    """``count`` entries, the same for the same ``(count, seed)``."""
    rng = random.Random(f"cfind-bench/{seed}/{count}")
    days = [FIRST_DAY + dt.timedelta(days=i) for i in range(DAYS)]
    day_weights = [_day_weight(d) for d in days]
    station_weights = [w for _, _, w in STATIONS]
    patients = max(1, count * 2 // 3)
    people = []
    for p in range(patients):
        sex = rng.choice("FM")
        given = rng.choice(GIVEN_F if sex == "F" else GIVEN_M)
        birth = dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(90 * 365))
        people.append((f"P{p + 1:07d}", f"{rng.choice(FAMILY)}^{given}", birth, sex))
    entries = []
    for n in range(count):
        pid, name, birth, sex = people[rng.randrange(patients)]
        aet, modality, _ = rng.choices(STATIONS, station_weights)[0]
        day = rng.choices(days, day_weights)[0]
        slot = rng.randrange(12 * 13)  # 07:00 .. 19:55
        entries.append(
            Entry(
                n=n,
                patient_id=pid,
                patient_name=name,
                birth_date=birth.strftime("%Y%m%d"),
                sex=sex,
                accession=f"A{n + 1:09d}",
                referring=rng.choice(PHYSICIANS),
                procedure=rng.choice(PROCEDURES[modality]),
                priority=rng.choice(PRIORITIES),
                station=aet,
                modality=modality,
                date=day.strftime("%Y%m%d"),
                time=f"{7 + slot // 12:02d}{slot % 12 * 5:02d}00",
                performing=rng.choice(PHYSICIANS),
            )
        )
    return entries


def entry_dataset(e: Entry) -> Dataset:
    """The entry as a worklist item (PS3.4 K.6.1): patient, visit, requested procedure, SPS."""
    ds = Dataset()
    ds.AccessionNumber = e.accession
    ds.ReferringPhysicianName = e.referring
    ds.PatientName = e.patient_name
    ds.PatientID = e.patient_id
    ds.PatientBirthDate = e.birth_date
    ds.PatientSex = e.sex
    ds.StudyInstanceUID = f"{UID_ROOT}{e.n + 1}"
    ds.RequestedProcedureDescription = e.procedure
    ds.RequestedProcedureID = f"RP{e.n + 1:09d}"
    ds.RequestedProcedurePriority = e.priority
    sps = Dataset()
    sps.Modality = e.modality
    sps.ScheduledStationAETitle = e.station
    sps.ScheduledProcedureStepStartDate = e.date
    sps.ScheduledProcedureStepStartTime = e.time
    sps.ScheduledPerformingPhysicianName = e.performing
    sps.ScheduledProcedureStepDescription = e.procedure
    sps.ScheduledProcedureStepID = f"SPS{e.n + 1:09d}"
    sps.ScheduledStationName = e.station
    sps.ScheduledProcedureStepLocation = f"ROOM {e.station}"
    sps.ScheduledProcedureStepStatus = "SCHEDULED"
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


# A query key: ("station", AE, date), ("patient", ID) or ("broad", modality, from, to).
Query = tuple[str, ...]


def query_dataset(q: Query) -> Dataset:
    """The C-FIND identifier a scanner would send for ``q``, with the usual return keys."""
    ds = Dataset()
    for keyword in (
        "AccessionNumber", "ReferringPhysicianName", "PatientName", "PatientID",
        "PatientBirthDate", "PatientSex", "StudyInstanceUID", "RequestedProcedureDescription",
        "RequestedProcedureID", "RequestedProcedurePriority",
    ):  # fmt: skip
        setattr(ds, keyword, "")
    sps = Dataset()
    for keyword in (
        "Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime", "ScheduledPerformingPhysicianName",
        "ScheduledProcedureStepDescription", "ScheduledProcedureStepID",
        "ScheduledProcedureStepStatus",
    ):  # fmt: skip
        setattr(sps, keyword, "")
    kind = q[0]
    if kind == "station":
        sps.ScheduledStationAETitle, sps.ScheduledProcedureStepStartDate = q[1], q[2]
    elif kind == "patient":
        ds.PatientID = q[1]
    elif kind == "broad":
        sps.Modality = q[1]
        sps.ScheduledProcedureStepStartDate = f"{q[2]}-{q[3]}"
    else:
        raise ValueError(f"unknown query kind {kind!r}")
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def query_key(identifier: Dataset) -> Query:
    """The key of a received identifier (the ceiling SCP's lookup)."""
    sps = identifier.ScheduledProcedureStepSequence[0]
    station = str(sps.get("ScheduledStationAETitle", "") or "")
    date = str(sps.get("ScheduledProcedureStepStartDate", "") or "")
    if station:
        return ("station", station, date)
    patient = str(identifier.get("PatientID", "") or "")
    if patient:
        return ("patient", patient)
    low, _, high = date.partition("-")
    return ("broad", str(sps.get("Modality", "")), low, high)


def make_queries(entries: list[Entry], seed: int = 1) -> dict[str, list[Query]]:
    """Distinct queries of each kind: 40 station polls (a station, a weekday), 100
    patient IDs that have entries, 12 broad queries (MR, US or DX over 7 days)."""
    rng = random.Random(f"cfind-queries/{seed}/{len(entries)}")
    weekdays = [
        d for d in (FIRST_DAY + dt.timedelta(days=i) for i in range(DAYS)) if d.weekday() < 5
    ]
    station: list[Query] = [
        ("station", STATIONS[i % len(STATIONS)][0], rng.choice(weekdays).strftime("%Y%m%d"))
        for i in range(40)
    ]
    patient: list[Query] = [
        ("patient", e.patient_id) for e in rng.sample(entries, min(100, len(entries)))
    ]
    broad: list[Query] = []
    for week in range(4):
        low = FIRST_DAY + dt.timedelta(days=3 + 7 * week)
        high = low + dt.timedelta(days=6)
        for modality in ("MR", "US", "DX"):
            broad.append(("broad", modality, low.strftime("%Y%m%d"), high.strftime("%Y%m%d")))
    return {"station": station, "patient": patient, "broad": broad}


def expected_matches(entries: list[Entry], queries: list[Query]) -> dict[Query, list[Entry]]:
    """The entries each query matches, by plain comparison of the generated values."""
    by_station: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    by_patient: dict[str, list[Entry]] = defaultdict(list)
    by_modality: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_station[e.station, e.date].append(e)
        by_patient[e.patient_id].append(e)
        by_modality[e.modality].append(e)
    out: dict[Query, list[Entry]] = {}
    for q in queries:
        if q[0] == "station":
            out[q] = by_station[q[1], q[2]]
        elif q[0] == "patient":
            out[q] = by_patient[q[1]]
        else:
            out[q] = [e for e in by_modality[q[1]] if q[2] <= e.date <= q[3]]
    return out


def all_queries(queries: dict[str, list[Query]]) -> Iterator[Query]:
    for qs in queries.values():
        yield from qs

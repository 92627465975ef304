"""Station routing rules: priority, conditions on HL7 fields and entry attributes, override."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import pytest
from pydicom.dataset import Dataset

from broker.hl7.paths import HL7Path
from broker.mapping.stations import StationRule, parse_stations, route


class Refused(Exception):
    pass


def fail(rule: str, message: str) -> NoReturn:
    raise Refused(f"{rule}: {message}")


def check(rule: str, keyword: str, values: list[str]) -> list[str]:
    if keyword == "ScheduledStationAETitle" and any(len(v) > 16 for v in values):
        fail(rule, "longer than 16")
    return values


RULES = [
    {"name": "any CT", "priority": 10, "when": {"Modality": "CT"},
     "set": {"ScheduledStationAETitle": ["CT_1", "CT_2"]}},
    {"name": "ER CT", "priority": 20, "when": {"Modality": "CT", "PV1-3.1": "ER"},
     "set": {"ScheduledStationAETitle": "CT_ER", "ScheduledStationName": "CT Emergency"}},
    {"name": "from the north RIS", "priority": 20, "when": {"sending_host": "10.9.0.1"},
     "set": {"ScheduledStationAETitle": "NORTH"}, "override": True},
]  # fmt: skip


def entry(modality: str, station: str = "") -> Dataset:
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station
    ds = Dataset()
    ds.PatientID = "P1"
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def reader(values: dict[str, str]) -> Callable[[HL7Path | str], str]:
    def read(subject: HL7Path | str) -> str:
        return values.get(str(subject), "")

    return read


def rules() -> tuple[StationRule, ...]:
    return parse_stations(RULES, fail, check)


def test_rules_are_ordered_by_priority_then_file_order() -> None:
    assert [r.name for r in rules()] == ["ER CT", "from the north RIS", "any CT"]
    assert parse_stations(None, fail, check) == ()


def test_the_highest_priority_matching_rule_sets_the_station() -> None:
    ds = entry("CT")
    chosen = route(rules(), ds, reader({"PV1-3.1": "ER"}))
    assert chosen is not None and chosen.name == "ER CT"
    step = ds.ScheduledProcedureStepSequence[0]
    assert step.ScheduledStationAETitle == "CT_ER"
    assert step.ScheduledStationName == "CT Emergency"
    ward = entry("CT")
    chosen = route(rules(), ward, reader({"PV1-3.1": "WARD"}))
    assert chosen is not None and chosen.name == "any CT"
    assert list(ward.ScheduledProcedureStepSequence[0].ScheduledStationAETitle) == ["CT_1", "CT_2"]
    mr = entry("MR")
    assert route(rules(), mr, reader({})) is None
    assert mr.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == ""


def test_a_station_from_the_message_wins_unless_the_rule_overrides() -> None:
    named = entry("CT", station="CT_7")
    route(rules(), named, reader({}))
    assert named.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT_7"
    north = entry("CT", station="CT_7")
    route(rules(), north, reader({"sending_host": "10.9.0.1"}))
    assert north.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "NORTH"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"when": {"Modality": "CT"}}, "must be a list of rules"),
        ([{"when": {"Modality": "CT"}}], "needs when: (what it applies to) and set:"),
        ([{"when": {"Modality": "CT"}, "set": {}}], "must map DICOM keywords"),
        ([{"when": {"Modality": "CT"}, "set": {"ScheduledStationAETitle": ""}}], "needs a value"),
        ([{"when": {"Modalty": "CT"}, "set": {"X": "Y"}}], "or a DICOM keyword"),
        ([{"when": {"Modality": "CT"}, "set": {"ScheduledStationAETitle": "A" * 17}}], "longer"),
        ([{"when": {"Modality": "CT"}, "set": {"X": "Y"}, "priority": "high"}], "whole number"),
        ([{"when": {"Modality": "CT"}, "set": {"X": "Y"}, "override": "yes"}], "true or false"),
        ([{"when": {"Modality": "CT"}, "set": {"X": "Y"}, "sort": 1}], "unknown key(s) sort"),
        (["CT_1"], "a rule is a mapping"),
    ],
)
def test_refused_rules_name_where(raw: object, expected: str) -> None:
    with pytest.raises(Refused) as refused:
        parse_stations(raw, fail, check)
    assert str(refused.value).startswith("stations")
    assert expected in str(refused.value)

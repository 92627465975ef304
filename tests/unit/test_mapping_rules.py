"""Rules chosen per message: ``when:`` conditions, alternatives, ``extract:``, station routing."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset

from broker.errors import ConfigError, MappingError
from broker.hl7.message import MessageDecoder
from broker.mapping.engine import map_message
from broker.mapping.parser import parse_mapping
from broker.mapping.registry import MappingRegistry
from broker.mapping.spec import MappingSpec
from broker.services.preview import preview, render
from broker.worklist.model import entry_dataset
from tests.unit.mapping_helpers import ORM_PV1, REPO, orm, parse, sps


def mapping(attributes: dict[str, Any] | None = None, **top: Any) -> MappingSpec:
    step: dict[str, Any] = {"Modality": "OBR-24", "ScheduledStationAETitle": "IPC-9[*]"}
    data: dict[str, Any] = {
        "message_types": {"ORM^O01": "OBR", "OMI^O23": "OBR"},
        "order_control": {"NW": "schedule"},
        "order_key": [{"FILLER": "ORC-3.1"}],
        "tables": {"rooms": {"rows": {"ER": "EMERGENCY"}, "default": "WARD"}},
        "attributes": {"PatientID": "PID-3", **(attributes or {})},
    }
    data["attributes"]["ScheduledProcedureStepSequence"] = step | top.pop("step", {})
    data.update(top)
    return parse_mapping(data, source="rules.yaml", version="t", default_name="rules")


def entry(spec: MappingSpec, *segments: str, peer: str = "") -> Dataset:
    (change,) = map_message(parse(*segments), spec, message_type="ORM^O01", peer=peer).changes
    (first,) = change.entries
    return entry_dataset(first)


def with_location(location: str) -> list[str]:
    segments = orm()
    segments[2] = ORM_PV1.replace("RAD^ROOM1^1", f"{location}^ROOM1^1")
    return segments


LOCATION_RULES = [
    {"when": {"sending_host": "10.9.0.1"}, "value": "NORTH WING"},
    {"when": {"PV1-3.1": ["ER", "ICU"]}, "path": "PV1-3.1", "table": "rooms"},
    {"path": "PV1-3.1", "transform": "upper"},
]


def test_alternatives_pick_the_first_rule_whose_conditions_hold() -> None:
    spec = mapping(step={"ScheduledProcedureStepLocation": LOCATION_RULES})
    north = entry(spec, *orm(), peer="10.9.0.1:40000")
    assert sps(north).ScheduledProcedureStepLocation == "NORTH WING"
    er = entry(spec, *with_location("ER"), peer="10.2.0.1:40000")
    assert sps(er).ScheduledProcedureStepLocation == "EMERGENCY"
    ward = entry(spec, *with_location("rad"), peer="[::1]:40000")
    assert sps(ward).ScheduledProcedureStepLocation == "RAD"  # the last rule, unconditional


def test_a_rule_whose_conditions_fail_gives_nothing_not_even_its_default() -> None:
    spec = mapping(
        {"AdmissionID": {"path": "PV1-19", "when": {"MSH-3": "OTHER_RIS"}, "default": "X"}}
    )
    assert entry(spec, *orm()).AdmissionID == ""
    spec = mapping({"AdmissionID": {"path": "PV1-19", "when": {"MSH-3": {"match": "RIS.*"}}}})
    assert entry(spec, *orm()).AdmissionID == "V-5001"


def test_required_on_an_alternative_makes_the_attribute_required() -> None:
    rules = [{"when": {"MSH-3": "NOBODY"}, "value": "X"}, {"path": "PV1-50", "required": True}]
    spec = mapping({"AdmissionID": rules})
    with pytest.raises(MappingError, match="is empty"):
        entry(spec, *orm())


def test_extract_keeps_the_group_or_the_match() -> None:
    spec = mapping(
        {
            "AdmissionID": {"path": "PV1-19", "extract": "V-([0-9]+)"},
            "RequestedProcedureID": {"path": "OBR-19", "extract": "[0-9]+"},
            "AccessionNumber": {"path": "OBR-18", "extract": "^NOPE"},
        }
    )
    ds = entry(spec, *orm())
    assert ds.AdmissionID == "5001" and ds.RequestedProcedureID == "1001"
    assert ds.AccessionNumber == ""  # not found: dropped
    spec = mapping({"AdmissionID": {"path": "PV1-19", "extract": "(X)|V"}})
    assert entry(spec, *orm()).AdmissionID == ""  # its group took no part: dropped


def test_hostile_text_from_the_sender_meets_backtracking_patterns_in_linear_time() -> None:
    rules = {
        "AdmissionID": {"path": "PV1-19", "extract": "(?:(a)+)+!"},
        "RequestedProcedureID": {"path": "OBR-19", "when": {"MSH-3": {"match": "((a)+)+"}}},
    }
    spec = mapping(rules)
    segments = orm()
    segments[0] = segments[0].replace("|RIS|", "|" + "a" * 200 + "!|")
    segments[2] = segments[2].replace("V-5001", "a" * 200 + "?")
    hostile = entry(spec, *segments)
    assert hostile.AdmissionID == "" and hostile.RequestedProcedureID == ""
    segments[0] = segments[0].replace("!|", "|")
    segments[2] = segments[2].replace("?", "!")
    matching = entry(spec, *segments)
    assert matching.AdmissionID == "a" and matching.RequestedProcedureID == "RP-1001"


STATIONS = [
    {"name": "any CT", "priority": 10, "when": {"Modality": "CT"},
     "set": {"ScheduledStationAETitle": ["CT_1", "CT_2"]}},
    {"name": "ER CT", "priority": 20, "when": {"Modality": "CT", "PV1-3.1": "ER"},
     "set": {"ScheduledStationAETitle": "CT_ER", "ScheduledStationName": "CT Emergency"}},
]  # fmt: skip


def test_station_rules_route_entries_the_message_leaves_unassigned() -> None:
    spec = mapping(stations=STATIONS)
    assert [r.name for r in spec.stations] == ["ER CT", "any CT"]
    er = sps(entry(spec, *with_location("ER")))
    assert (er.ScheduledStationAETitle, er.ScheduledStationName) == ("CT_ER", "CT Emergency")
    ward = sps(entry(spec, *with_location("WARD")))
    assert list(ward.ScheduledStationAETitle) == ["CT_1", "CT_2"]
    mr = orm()
    mr[4] = mr[4].replace("|CT|", "|MR|")
    assert sps(entry(spec, *mr)).ScheduledStationAETitle == ""  # no rule for MR


def test_the_preview_names_the_station_rule() -> None:
    registry = MappingRegistry([mapping(stations=STATIONS)])
    shown = preview("\r".join(with_location("ER")).encode(), registry, MessageDecoder())
    (change,) = shown.changes
    (routed,) = change.entries
    assert routed.stations.routed_by == "ER CT"
    assert "station CT_ER with its own (station rule: ER CT)" in render(shown)
    mr = orm()
    mr[4] = mr[4].replace("|CT|", "|MR|")
    (unrouted,) = preview("\r".join(mr).encode(), registry, MessageDecoder()).changes[0].entries
    assert unrouted.stations.routed_by == ""


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        ({"attributes": {"AdmissionID": {"path": "PV1-19", "when": {"PXX-1": "A"}}}}, "PXX"),
        ({"attributes": {"AdmissionID": {"path": "PV1-19", "when": "yes"}}}, "must be a mapping"),
        (
            {"attributes": {"AdmissionID": {"path": "PV1-19", "extract": r"(V)-\1"}}},
            "back-references",
        ),
        ({"attributes": {"AccessionNumber": {"value": "A" * 17}}}, "VR SH allows at most 16"),
        ({"step": {"Modality": {"path": "OBR-24", "default": "ct"}}}, "not a valid DICOM CS"),
        ({"stations": [{"when": {"OBR-99": "CT"}, "set": {"StationName": "X"}}]}, "OBR-99"),
        (
            {"stations": [{"when": {"Modality": "CT"}, "set": {"PatientBirthDate": "1.1.1"}}]},
            "not a valid PatientBirthDate",
        ),
        (
            {
                "stations": [
                    {"when": {"Modality": "CT"}, "set": {"ScheduledProcedureStepStatus": "X"}}
                ]
            },
            "cannot be set by a station rule",
        ),
    ],
)
def test_invalid_conditions_and_station_rules_are_refused_at_load(
    top: dict[str, Any], expected: str
) -> None:
    attributes = top.pop("attributes", None)
    with pytest.raises(ConfigError) as refused:
        mapping(attributes, **top)
    assert expected in f"{refused.value.setting}: {refused.value.message}"
    assert refused.value.setting.startswith("rules.yaml")


def test_a_japanese_name_becomes_ideographic_and_phonetic_groups() -> None:
    registry = MappingRegistry.load(REPO / "mappings")
    text = "\r".join(
        [
            "MSH|^~\\&|HIS|SEND|GW|RCV|20261125083000||OMG^O19^OMG_O19|J-1|P|2.5||||||~ISO IR87",
            "PID|0001||12345678^^^^PI||患者^太郎^^^^^L^I~カンジャ^タロウ^^^^^L^P||19501214|M",
            "ORC|NW|PLC-9^HIS|||SC",
            "OBR|1|PLC-9^HIS||XR01^胸部単純^JJ1017||||||||||||||ACC-9|RP-9|SPS-9||||CR",
        ]
    )
    raw = text.encode("iso2022_jp")
    decoded = MessageDecoder("UNICODE UTF-8").decode(raw)
    spec = registry.for_message("OMG^O19")
    assert spec is not None
    (change,) = map_message(decoded.segments, spec, message_type="OMG^O19").changes
    (jp,) = (entry_dataset(e) for e in change.entries)
    assert jp.PatientName == "=患者^太郎=カンジャ^タロウ"
    assert (
        jp.PatientName.ideographic == "患者^太郎" and jp.PatientName.phonetic == "カンジャ^タロウ"
    )


def test_a_star_path_on_a_single_valued_attribute_needs_a_name_transform() -> None:
    with pytest.raises(ConfigError, match="a person name takes \\[\\*\\] with transform pn"):
        mapping({"PatientName": {"path": "PID-5[*]", "transform": "upper"}})
    with pytest.raises(ConfigError, match="takes one value"):
        mapping({"AdmissionID": "PV1-19[*]"})
    spec = mapping({"ReferringPhysicianName": {"path": "PV1-8[*]", "transform": "xcn_pn"}})
    assert entry(spec, *orm()).ReferringPhysicianName == "Schmidt^Anna^^Dr."


def test_a_code_longer_than_code_value_goes_to_long_code_value() -> None:
    registry = MappingRegistry.load(REPO / "mappings")
    spec = registry.for_message("ORM^O01")
    assert spec is not None
    segments = orm()
    long_code = "CT-HEAD-NATIVE-CONTRAST-01"  # 26 characters; Code Value (SH) holds 16
    segments[4] = segments[4].replace("CTHEAD^CT head^LOCAL", f"{long_code}^CT head^LOCAL")
    (change,) = map_message(parse(*segments), spec, message_type="ORM^O01").changes
    (item,) = entry_dataset(change.entries[0]).RequestedProcedureCodeSequence
    assert item.LongCodeValue == long_code and "CodeValue" not in item
    assert item.CodingSchemeDesignator == "LOCAL"
    (short,) = entry(spec, *orm()).RequestedProcedureCodeSequence
    assert short.CodeValue == "CTHEAD" and "LongCodeValue" not in short

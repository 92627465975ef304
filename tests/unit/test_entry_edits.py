"""The pure rules of a hand edit (``broker.worklist.edits``) and the entry's text dump
(``broker.worklist.dump``)."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset

from broker.worklist import edits
from broker.worklist.dump import dump
from broker.worklist.edits import EditRefused, EntryChanged


@pytest.mark.parametrize("name", ["Modality", "00080060", "(0008,0060)", "0008,0060", " Modality "])
def test_an_attribute_is_named_by_keyword_or_tag(name: str) -> None:
    found = edits.editable(name)
    assert (found.tag, found.keyword, found.vr, found.in_step) == (
        "00080060",
        "Modality",
        "CS",
        True,
    )


def test_a_value_is_checked_against_its_vr_without_echoing_it() -> None:
    name = edits.editable("ScheduledPerformingPhysicianName")
    assert edits.check_value(name, " Roe^Rita ") == "Roe^Rita"
    for bad in ("Roe^Rita=ロー", "a\\b", "x" * 65):
        with pytest.raises(EditRefused) as refused:
            edits.check_value(name, bad)
        assert bad not in str(refused.value)
    assert edits.check_value(edits.editable("ScheduledProcedureStepStartTime"), "0930") == "0930"
    assert edits.check_value(edits.editable("ScheduledProcedureStepStartDate"), "") == ""


def test_an_edit_sets_the_value_in_its_item_and_empty_keeps_the_attribute() -> None:
    doc: dict[str, Any] = {
        "00400100": {"vr": "SQ", "Value": [{"00080060": {"vr": "CS", "Value": ["CT"]}}]}
    }
    changed = edits.edited(doc, edits.editable("Modality"), "MR")
    assert changed["00400100"]["Value"][0]["00080060"] == {"vr": "CS", "Value": ["MR"]}
    assert doc["00400100"]["Value"][0]["00080060"]["Value"] == ["CT"]  # a copy
    named = edits.edited(doc, edits.editable("ReferringPhysicianName"), "Doe^J")
    assert named["00080090"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^J"}]}
    assert edits.edited(doc, edits.editable("Modality"), "")["00400100"]["Value"][0][
        "00080060"
    ] == {"vr": "CS"}


def test_status_transitions() -> None:
    edits.check_transition("SCHEDULED", "ARRIVED")
    edits.check_transition("STARTED", "SCHEDULED")
    with pytest.raises(EditRefused):
        edits.check_transition("SCHEDULED", "DONE")
    for ended in ("COMPLETED", "CANCELED", "DISCONTINUED"):
        with pytest.raises(EntryChanged):
            edits.check_transition(ended, "SCHEDULED")
    with pytest.raises(EntryChanged):
        edits.check_transition("ARRIVED", "ARRIVED")


def test_the_revision_changes_with_the_dataset_and_the_status() -> None:
    one = edits.revision(b"{}", b"SCHEDULED")
    assert one != edits.revision(b"{}", b"ARRIVED") != edits.revision(b"{ }", b"ARRIVED")
    assert edits.revision(b"{}", None) == edits.revision(b"{}", b"")


def test_the_dump_is_one_line_per_attribute_with_items_indented() -> None:
    ds = Dataset()
    ds.PatientName = "Doe^John"
    ds.OtherPatientIDs = ["A", "B"]
    step = Dataset()
    step.Modality = "CT"
    ds.ScheduledProcedureStepSequence = [step]
    assert dump(ds) == (
        "(0010,0010) PatientName PN: Doe^John\n"
        "(0010,1000) OtherPatientIDs LO: A\\B\n"
        "(0040,0100) ScheduledProcedureStepSequence SQ: 1 item(s)\n"
        "  item 1\n"
        "    (0008,0060) Modality CS: CT\n"
    )

"""Identifier policies of the mapping engine (IHE RAD TF-2 RAD-4/13; RAD-5: Requested Procedure
ID and Scheduled Procedure Step ID are type 1): taken when sent, generated deterministically when
absent, and an Accession Number required or generated when the mapping says so."""

from __future__ import annotations

import re

import pytest

from broker.errors import ConfigError
from broker.hl7.codes import ErrorCode
from broker.mapping.spec import MappingSpec
from tests.unit.mapping_helpers import (
    OMI,
    DatasetResult,
    custom,
    mapping_error,
    orm,
    run,
    sps,
)

GENERATED_ID = re.compile(r"G[A-Z2-7]{15}")


def without_ids(segments: list[str]) -> list[str]:
    """The ORM with OBR-19 (RP ID) and OBR-20 (SPS ID) empty."""
    return [s.replace("|RP-1001|SPS-1001|", "||") for s in segments]


def ids(result: DatasetResult) -> tuple[str, str]:
    entry = result.changes[0].entries[0]
    return entry.RequestedProcedureID, sps(entry).ScheduledProcedureStepID


def test_identifiers_sent_by_the_ris_are_taken(spec: MappingSpec) -> None:
    assert ids(run(spec, *orm())) == ("RP-1001", "SPS-1001")


def test_missing_rp_and_sps_ids_are_generated_deterministically(spec: MappingSpec) -> None:
    rp, step = ids(run(spec, *without_ids(orm())))
    assert GENERATED_ID.fullmatch(rp) and GENERATED_ID.fullmatch(step) and rp != step
    assert ids(run(spec, *without_ids(orm()))) == (rp, step)  # a resend
    assert ids(run(spec, *without_ids(orm("XO", accession="ACC-1001-B")))) == (rp, step)
    other = [s.replace("PLC-1001", "PLC-9999") for s in without_ids(orm())]
    other_rp, other_step = ids(run(spec, *other))
    assert other_rp != rp and other_step != step


def test_generated_sps_ids_differ_between_steps_of_one_order(spec: MappingSpec) -> None:
    omi = [s.replace("|SPS-2001A|", "||").replace("|SPS-2001B|", "||") for s in OMI]
    (change,) = run(spec, *omi).changes
    steps = [sps(e).ScheduledProcedureStepID for e in change.entries]
    assert all(GENERATED_ID.fullmatch(s) for s in steps) and len(set(steps)) == 2
    assert {e.RequestedProcedureID for e in change.entries} == {"RP-2001"}  # taken


def test_empty_accession_number_is_allowed_by_default(spec: MappingSpec) -> None:
    entry = run(spec, *orm(accession="")).changes[0].entries[0]
    assert entry.get("AccessionNumber", "") == ""


def accession_policy(policy: dict[str, object]) -> MappingSpec:
    rules = {"path": ["IPC-1", "OBR-18"], **policy}
    attributes = {
        "PatientID": "PID-3",
        "AccessionNumber": rules,
        "ScheduledProcedureStepSequence": {"Modality": "OBR-24"},
    }
    return custom(attributes=attributes)


def test_required_accession_number_is_refused_with_101() -> None:
    error = mapping_error(accession_policy({"required": True}), *orm(accession=""))
    assert (error.err_code, error.location) == (ErrorCode.REQUIRED_FIELD_MISSING, "IPC-1")
    assert "AccessionNumber" in error.text


def test_generated_accession_number_only_when_absent() -> None:
    spec = accession_policy({"fallback": {"generate": "id"}})
    generated = run(spec, *orm(accession="")).changes[0].entries[0].AccessionNumber
    assert GENERATED_ID.fullmatch(generated)
    assert run(spec, *orm()).changes[0].entries[0].AccessionNumber == "ACC-1001"


def test_generate_id_needs_room_for_16_characters() -> None:
    attributes = {
        "PatientID": "PID-3",
        "StudyInstanceUID": {"generate": "id"},
        "ScheduledProcedureStepSequence": {"Modality": "OBR-24"},
    }
    with pytest.raises(ConfigError, match="generate id"):
        custom(attributes=attributes)

"""Modality Performed Procedure Steps, the domain side: statuses, step references, outcomes.

PS3.3 A.17 / PS3.4 F.7 and IHE RAD TF-2 RAD-6/RAD-7: what an MPPS instance is, which
Scheduled Procedure Step Status each performed status gives its steps, and which worklist
entry a Scheduled Step Attributes item names. ``broker.store.mpps`` keeps the instances
in Redis; every MPPS face (DIMSE, DICOMweb) speaks these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydicom.dataset import Dataset

__all__ = [
    "STEP_STATUS",
    "CreateOutcome",
    "MppsRecord",
    "PerformedStatus",
    "SetOutcome",
    "SetResult",
    "StepRef",
]


class PerformedStatus(StrEnum):
    """Performed Procedure Step Status (0040,0252) defined terms (PS3.3 C.4.14)."""

    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"


# The Scheduled Procedure Step Status an MPPS state gives its steps (IHE RAD TF-2 RAD-6/7).
STEP_STATUS = {
    PerformedStatus.IN_PROGRESS: "STARTED",
    PerformedStatus.COMPLETED: "COMPLETED",
    PerformedStatus.DISCONTINUED: "DISCONTINUED",
}


@dataclass(frozen=True)
class StepRef:
    """One item of Scheduled Step Attributes Sequence (0040,0270): which step was performed.

    An item with an empty Scheduled Procedure Step ID is IHE's "unscheduled"
    case (RAD TF-2 4.6.4.1.2.4.2): it names no worklist entry.
    """

    study_uid: str
    accession: str = ""
    requested_procedure_id: str = ""
    sps_id: str = ""

    @property
    def scheduled(self) -> bool:
        return bool(self.sps_id)

    def matches(self, entry: Dataset) -> bool:
        """The entry is this step: same SPS ID, and the same study, requested
        procedure and accession wherever the item gives them."""
        seq = entry.get("ScheduledProcedureStepSequence") or [Dataset()]
        if _text(seq[0].get("ScheduledProcedureStepID")) != self.sps_id:
            return False
        return all(
            not wanted or _text(entry.get(keyword)) == wanted
            for keyword, wanted in (
                ("StudyInstanceUID", self.study_uid),
                ("RequestedProcedureID", self.requested_procedure_id),
                ("AccessionNumber", self.accession),
            )
        )


class CreateOutcome(StrEnum):
    CREATED = "created"
    DUPLICATE = "duplicate"  # an instance with this SOP Instance UID exists
    OUT_OF_SCOPE = "out of scope"  # a linked entry the caller may not see: nothing stored


class SetOutcome(StrEnum):
    UPDATED = "updated"
    NO_SUCH_INSTANCE = "missing"
    FINISHED = "finished"  # COMPLETED or DISCONTINUED already: no further N-SET


@dataclass(frozen=True)
class SetResult:
    outcome: SetOutcome
    status: str = ""  # the instance's status after the N-SET (or as found, when FINISHED)
    entries: tuple[str, ...] = ()
    changed: int = 0  # entries whose SPS status changed


@dataclass(frozen=True)
class MppsRecord:
    """An MPPS instance as stored."""

    uid: str
    status: str
    ds: Dataset
    entries: tuple[str, ...]
    aet: str
    created: float
    updated: float


def _text(value: Any) -> str:
    """A DICOM value as a stripped string ('' for None)."""
    return "" if value is None else str(value).strip()

"""pynetdicom as the tests' SCU, typed: its SOP classes by name, the identifier of an answer.

pynetdicom makes its ``pynetdicom.sop_class`` names at import time, which a type checker
cannot see; these are the same objects. The tests take them from the peer library, not
from ``broker.dicom.server``, so that a wrong UID in the broker fails them.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import sop_class
from pynetdicom.sop_class import SOPClass

__all__ = [
    "ModalityPerformedProcedureStep",
    "ModalityWorklistInformationFind",
    "Verification",
    "create_then_complete",
    "identifier_of",
]


def _named(name: str) -> SOPClass:
    found = getattr(sop_class, name)
    assert isinstance(found, SOPClass), name
    return found


Verification = _named("Verification")
ModalityWorklistInformationFind = _named("ModalityWorklistInformationFind")
ModalityPerformedProcedureStep = _named("ModalityPerformedProcedureStep")


def identifier_of(identifier: Dataset | None) -> Dataset:
    """The identifier of a pending C-FIND response, which always has one (PS3.7 Table 9.1-2)."""
    assert identifier is not None, "a pending C-FIND response without an identifier"
    return identifier


def create_then_complete(assoc: Any, mpps: Dataset) -> str:
    """N-CREATE ``mpps`` (IN PROGRESS) on an established association, then N-SET it
    COMPLETED; both must succeed. The instance's UID."""
    uid = str(generate_uid())
    status, _ = assoc.send_n_create(mpps, ModalityPerformedProcedureStep, uid)
    assert status.Status == 0
    end = Dataset()
    end.PerformedProcedureStepStatus = "COMPLETED"
    status, _ = assoc.send_n_set(end, ModalityPerformedProcedureStep, uid)
    assert status.Status == 0
    return uid

"""pynetdicom as the tests' SCU, typed: its SOP classes by name, the identifier of an answer.

pynetdicom makes its ``pynetdicom.sop_class`` names at import time, which a type checker
cannot see; these are the same objects. The tests take them from the peer library, not
from ``broker.dicom.server``, so that a wrong UID in the broker fails them.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pynetdicom import sop_class
from pynetdicom.sop_class import SOPClass

__all__ = [
    "ModalityPerformedProcedureStep",
    "ModalityWorklistInformationFind",
    "Verification",
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

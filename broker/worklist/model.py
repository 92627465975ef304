"""The worklist's own data types: what a mapped message asks the store to do.

A worklist entry is one Scheduled Procedure Step (PS3.4 K.6.1): a pydicom
``Dataset`` with the patient, visit and requested-procedure attributes at top
level and exactly one item in Scheduled Procedure Step Sequence (0040,0100).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

from pydicom.dataset import Dataset

__all__ = [
    "ApplyOutcome",
    "CandidateCriteria",
    "DedupKey",
    "DedupRecord",
    "MappingResult",
    "OrderAction",
    "OrderChange",
    "entry_id_for",
]


class OrderAction(StrEnum):
    """What an order group does to the worklist."""

    SCHEDULE = "schedule"  # create, or replace the order's entries in place
    CANCEL = "cancel"  # take the order's entries off the worklist


@dataclass(frozen=True)
class OrderChange:
    """One order's effect: its key, the action and (for SCHEDULE) its entries."""

    order_key: str
    action: OrderAction
    entries: tuple[Dataset, ...] = ()


@dataclass(frozen=True)
class MappingResult:
    """Everything one HL7 message asks of the worklist, and which mapping said so."""

    changes: tuple[OrderChange, ...]
    mapping_name: str
    mapping_version: str


@dataclass(frozen=True)
class DedupKey:
    """Identity of a message for retransmission detection: MSH-3, MSH-4, MSH-10."""

    sending_application: str
    sending_facility: str
    control_id: str


@dataclass(frozen=True)
class DedupRecord:
    """What was answered to a message: the digest of its bytes and the ACK sent."""

    digest: str
    ack: bytes


@dataclass(frozen=True)
class ApplyOutcome:
    """Result of an atomic store update."""

    created: int = 0
    removed: int = 0
    duplicate: DedupRecord | None = None  # set when the message had been applied before


@dataclass(frozen=True)
class CandidateCriteria:
    """Index constraints for candidate selection; ``None`` means unconstrained.

    Only exact values go here (no wildcards): the index narrows, and
    ``broker.dicom.matching`` decides.
    """

    station_aet: str | None = None
    modality: str | None = None
    date_from: str | None = None  # YYYYMMDD inclusive
    date_to: str | None = None  # YYYYMMDD inclusive
    patient_id: str | None = None
    accession_number: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def entry_id_for(order_key: str, ordinal: int) -> str:
    """A stable entry id for the ``ordinal``-th scheduled step of an order."""
    digest = hashlib.sha256(f"{order_key}\x1f{ordinal}".encode()).hexdigest()
    return digest[:32]

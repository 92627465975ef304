"""The worklist's own data types: what a mapped message asks the store to do.

A worklist entry is one Scheduled Procedure Step (PS3.4 K.6.1): the patient,
visit and requested-procedure attributes at top level and exactly one item in
Scheduled Procedure Step Sequence (0040,0100). The mapping engine writes it as
DICOM JSON (:class:`MappedEntry`, PS3.18 F.2), which is what the store keeps;
an entry from elsewhere (an imported file, a test) may be a pydicom ``Dataset``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydicom.dataset import Dataset

__all__ = [
    "TERMINAL_STATUSES",
    "ApplyOutcome",
    "CandidateCriteria",
    "DedupKey",
    "DedupRecord",
    "Entry",
    "MappedEntry",
    "MappingResult",
    "OrderAction",
    "OrderChange",
    "PatientAction",
    "PatientChange",
    "PatientResult",
    "Truncation",
    "entry_dataset",
]


class OrderAction(StrEnum):
    """What an order group does to the worklist."""

    SCHEDULE = "schedule"  # create, or replace the order's entries in place
    CANCEL = "cancel"  # take the order's entries off the worklist
    SET_STATUS = "status"  # only change the SPS status of the order's entries


# SPS statuses after which an order is over (PS3.3 C.4.10): a later message that
# would schedule it again is too late and changes nothing.
TERMINAL_STATUSES = frozenset({"COMPLETED", "CANCELED", "DISCONTINUED"})


@dataclass(frozen=True)
class MappedEntry:
    """An entry as the mapping engine writes it: the DICOM JSON model (PS3.18 F.2), never
    modified once made. ``dataset`` is the same entry as a pydicom ``Dataset`` (a new one
    on first use, for previews and tools; writing to it does not change ``json``)."""

    json: dict[str, Any]

    @functools.cached_property
    def dataset(self) -> Dataset:
        return Dataset.from_json(self.json)


Entry = Dataset | MappedEntry


def entry_dataset(entry: Entry) -> Dataset:
    """The entry as a pydicom ``Dataset``."""
    return entry.dataset if isinstance(entry, MappedEntry) else entry


@dataclass(frozen=True)
class OrderChange:
    """One order's effect: its key, the action and (for SCHEDULE) its entries."""

    order_key: str
    action: OrderAction
    entries: tuple[Entry, ...] = ()
    status: str = "SCHEDULED"  # Scheduled Procedure Step Status (0040,0020) of its entries
    origin: str = ""  # the [hl7_senders.<name>] it came from (its status goes back there)
    mapping_version: int | None = None  # the published mapping version that mapped it


@dataclass(frozen=True)
class Truncation:
    """A value cut to fit its DICOM VR (PS3.5 Table 6.2-1), by where and how much: never
    the value itself, so that it can go to logs and ACKs."""

    location: str  # the HL7 field it was read from ("PV1-8"), "" for a table's constant
    keyword: str  # the DICOM attribute ("ReferringPhysicianName")
    vr: str
    length: int  # characters received (for PN: of the longest component group)
    limit: int  # characters the VR allows (for PN: per component group)

    @property
    def text(self) -> str:
        """For a person (ERR-8): what was cut and why, without the value."""
        per = " per name group" if self.vr == "PN" else ""
        return (
            f"{self.location or 'a constant'} ({self.keyword}) had {self.length} characters; "
            f"VR {self.vr} allows at most {self.limit}{per}: cut to {self.limit}"
        )


@dataclass(frozen=True)
class MappingResult:
    """Everything one HL7 message asks of the worklist, and which mapping said so;
    ``truncations`` are the values cut to fit, one per field and attribute."""

    changes: tuple[OrderChange, ...]
    mapping_name: str
    mapping_version: str
    truncations: tuple[Truncation, ...] = ()


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
    skipped: int = 0  # order changes refused: the order was already over, or ``stale``
    stale: int = 0  # of ``skipped``: older (MSH-7) than the order's newest applied message
    duplicate: DedupRecord | None = None  # set when the message had been applied before
    conflict: bool = False  # a guard failed: another message changed what was read; nothing done
    logged: str | None = None  # the id its LogRecord got in the message log, if it was written


@dataclass(frozen=True)
class LogRecord:
    """A message-log record to write in the same atomic call as a message's changes.

    ``body`` is the record as ``broker/store/lua/lib/record_message.lua`` reads it, its
    keys listed under ``keys``, without its outcome: the script sets that from what it
    applied. Written only if the changes were applied (not for a duplicate or a guard
    conflict).
    """

    body: dict[str, Any]
    raw: bytes
    ack: bytes
    application_ack: bytes


class PatientAction(StrEnum):
    """What an ADT event does to the worklist (the ``events`` table of a patient mapping)."""

    UPDATE = "update"  # demographics: the patient record and every entry of the patient
    MERGE = "merge"  # A40: the prior ID's entries join the surviving patient (MRG-1 → PID-3)
    CHANGE_ID = "change_id"  # A47: the prior ID is renamed; its record carries over
    ARRIVED = "arrived"  # A10: the patient's SCHEDULED steps become ARRIVED
    IGNORE = "ignore"  # accepted and recorded, no effect


@dataclass(frozen=True)
class PatientChange:
    """One patient (one PID, with its MRG for a merge) as mapped from an ADT message.

    ``attributes`` holds only the non-empty patient-level attributes the
    message carries, ``PatientID`` included; ``prior_id`` is MRG-1 for a merge
    or change of identifier, else empty.
    """

    patient_id: str
    attributes: Dataset
    prior_id: str = ""


@dataclass(frozen=True)
class PatientResult:
    """Everything one ADT message asks of the worklist, and which mapping said so."""

    action: PatientAction
    changes: tuple[PatientChange, ...]
    mapping_name: str
    mapping_version: str
    truncations: tuple[Truncation, ...] = ()  # values cut to fit, as for orders


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

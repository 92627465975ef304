"""What a mapping is: the frozen dataclasses a mapping file is validated into.

Reading and validating the YAML is ``broker.mapping.parser``; the schema is
documented field by field in ``mappings/README.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from broker.hl7.paths import HL7Path
from broker.mapping.conditions import When
from broker.mapping.overflow import OnOverflow
from broker.mapping.patterns import Pattern
from broker.mapping.stations import StationRule

__all__ = [
    "SPS_SEQUENCE",
    "SPS_STATUSES",
    "TEXT_VRS",
    "ControlAction",
    "ControlRow",
    "LookupTable",
    "MappingSpec",
    "OrderKeyPart",
    "Rule",
    "SequenceRule",
    "ValueRule",
]

SPS_SEQUENCE = "ScheduledProcedureStepSequence"  # (0040,0100), one item per entry (PS3.4 K.6.1)
# String VRs a rule can fill (PS3.5 Table 6.2-1); binary and numeric VRs are not mapped from HL7.
TEXT_VRS = frozenset(
    {
        "AE",
        "AS",
        "CS",
        "DA",
        "DS",
        "DT",
        "IS",
        "LO",
        "LT",
        "PN",
        "SH",
        "ST",
        "TM",
        "UC",
        "UI",
        "UR",
        "UT",
    }
)


class ControlAction(StrEnum):
    """What an ORC-1 order control code (HL7 table 0119) does to the worklist."""

    SCHEDULE = "schedule"  # map the group's entries, replacing the order's, with the row's status
    CANCEL = "cancel"  # take the order's entries off the worklist
    STATUS = "status"  # only set the status of the order's entries (no patient data needed)
    IGNORE = "ignore"  # the order group is acknowledged and changes nothing


# Scheduled Procedure Step Status (0040,0020) defined terms, PS3.3 C.4.10.
SPS_STATUSES = frozenset(
    {
        "SCHEDULED",
        "ARRIVED",
        "READY",
        "STARTED",
        "DEPARTED",
        "CANCELED",
        "DISCONTINUED",
        "COMPLETED",
    }
)


@dataclass(frozen=True)
class ControlRow:
    """One row of the order-control table: ORC-1[/ORC-5] → action and SPS status."""

    action: ControlAction
    status: str = "SCHEDULED"


@dataclass(frozen=True)
class ValueRule:
    """How one DICOM element gets its value; exactly one of paths, value, generate is set."""

    name: str  # where the rule is in the file, e.g. "attributes.PatientName"
    keyword: str
    tag: int
    vr: str
    multi: bool  # the element's VM allows several values
    paths: tuple[HL7Path, ...] = ()
    value: str | None = None
    generate: str | None = None
    seed: tuple[HL7Path, ...] = ()
    transforms: tuple[str, ...] = ()
    table: str | None = None
    default: str | None = None
    required: bool = False
    fallback: ValueRule | None = None
    when: When | None = None  # the rule gives nothing unless these conditions hold
    extract: Pattern | None = None  # keep what this finds (its group 1, if any)
    # a value too long for the VR: refused (AE 104) or cut (``broker.mapping.overflow``);
    # the parser sets the keyword's default when the file says nothing
    on_overflow: OnOverflow = OnOverflow.REFUSE


@dataclass(frozen=True)
class SequenceRule:
    """A sequence element (VR SQ) with one item built from its own rules."""

    name: str
    keyword: str
    tag: int
    rules: tuple[Rule, ...]


Rule = ValueRule | SequenceRule


@dataclass(frozen=True)
class LookupTable:
    """A code table; ``default`` is used for a missing row, ``None`` makes it an error."""

    name: str
    rows: Mapping[str, str]
    default: str | None


@dataclass(frozen=True)
class OrderKeyPart:
    """One candidate for the order key: ``PREFIX:<id>^<namespace>`` read from ``path``."""

    prefix: str
    path: HL7Path


@dataclass(frozen=True)
class MappingSpec:
    """A validated mapping; ``version`` is a short sha256 of the file's bytes."""

    name: str
    version: str
    source: str
    entry_per: Mapping[str, tuple[str, ...]]  # message type → entry segment ids, first present wins
    order_control: Mapping[str, ControlRow]  # "NW/SC" exact, "NW/" empty ORC-5, "NW" any ORC-5
    order_key: tuple[OrderKeyPart, ...]
    tables: Mapping[str, LookupTable]
    rules: tuple[Rule, ...]
    stations: tuple[StationRule, ...] = ()  # station routing, highest priority first

    @property
    def message_types(self) -> frozenset[str]:
        """The message types (``"ORM^O01"``) this mapping handles."""
        return frozenset(self.entry_per)

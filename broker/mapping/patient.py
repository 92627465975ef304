"""The patient mapping: one parsed ADT message → patient changes. Pure, no I/O.

Message layout (HL7 v2.5.1 ch. 3): ADT^A01/A04/A05/A08 (structure ADT_A01,
A05 for A05/A31) carry one PID; ADT^A40 (structure ADT_A39, §3.3.40) carries
one or more ``PID [PD1] MRG [PV1]`` groups, each merging MRG-1 (prior patient
identifier list) into PID-3; ADT^A47 (ADT_A30, §3.3.47) one ``PID [PD1] MRG``
changing MRG-1 into PID-3. IHE RAD TF-2 RAD-1/RAD-12 send these to the order
filler, whose worklist must follow.

Each PID starts a group that runs to the next PID; a rule's path reads the
first segment of its type in the group, else in the message. Only the
non-empty values are kept: an ADT wins for the attributes it carries and never
erases what it does not carry. An empty field means "no change" (HL7 v2.5.1
§2.5.3); the explicit null ``""`` ("delete the value") reads as empty too and
is not applied either, so a partial A08 can never blank a name or birth date.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset

from broker.errors import HL7Error, MappingError
from broker.hl7.codes import AckCode, ErrorCode
from broker.hl7.paths import read, scalar
from broker.mapping.engine import Trace, evaluate_rules, segment_id
from broker.mapping.evaluation import distinct_cuts
from broker.mapping.patient_spec import PatientSpec
from broker.worklist.model import PatientAction, PatientChange, PatientResult, Truncation

__all__ = ["map_patient_message"]

_PATIENT_ID_MAX = 64  # PatientID is LO (PS3.5 Table 6.2-1)
_SINGLE_PATIENT = (PatientAction.UPDATE, PatientAction.ARRIVED)


def map_patient_message(
    message: Sequence[Any], spec: PatientSpec, *, message_type: str, trace: Trace | None = None
) -> PatientResult:
    """Map an ADT message to one :class:`PatientChange` per PID group.

    ``update`` and ``arrived`` read the first PID only; ``merge`` and
    ``change_id`` read every ``PID … MRG`` group and require the prior
    identifier (MRG-1): missing, it is AE 101 at ``MRG-1``; a group without
    its MRG segment is AE 100 at ``MRG``. ``ignore`` reads nothing. ``trace``
    observes the rules evaluated, one dataset per group (see ``engine.Trace``).
    Values cut to fit their VR are listed in the result, as for orders.
    """
    action = spec.events.get(message_type)
    if action is None:
        raise HL7Error(
            AckCode.REJECT,
            ErrorCode.UNSUPPORTED_EVENT_CODE,
            "MSH-9.2",
            f"mapping {spec.name!r} does not handle {message_type}",
        )
    if action is PatientAction.IGNORE:
        return PatientResult(action, (), spec.name, spec.version)
    segments = list(message)
    groups = _pid_groups(segments)
    if not groups:
        raise MappingError(
            ErrorCode.SEGMENT_SEQUENCE_ERROR, "PID", f"{message_type} has no PID segment"
        )
    if action in _SINGLE_PATIENT:
        groups = groups[:1]
    cuts: list[Truncation] = []
    changes = tuple(_change(spec, action, segments, group, (trace, cuts)) for group in groups)
    return PatientResult(action, changes, spec.name, spec.version, distinct_cuts(cuts))


def _pid_groups(segments: Sequence[Any]) -> list[list[Any]]:
    groups: list[list[Any]] = []
    for segment in segments:
        name = segment_id(segment)
        if name == "PID":
            groups.append([])
        if groups:
            groups[-1].append(segment)
    return groups


def _change(
    spec: PatientSpec,
    action: PatientAction,
    message: Sequence[Any],
    group: list[Any],
    observers: tuple[Trace | None, list[Truncation]],
) -> PatientChange:
    trace, cuts = observers
    attributes = _carried(evaluate_rules(spec, spec.rules, message, group, trace, cuts))
    patient_id = str(attributes.PatientID)  # a required rule: never empty here
    prior = ""
    if action in (PatientAction.MERGE, PatientAction.CHANGE_ID):
        prior = _prior_id(spec, group)
    return PatientChange(patient_id, attributes, prior)


def _carried(dataset: Dataset) -> Dataset:
    """The dataset without its empty elements: what the message does not carry is not changed."""
    for element in list(dataset):
        if element.is_empty:
            del dataset[element.tag]
    return dataset


def _prior_id(spec: PatientSpec, group: list[Any]) -> str:
    """MRG-1.1, the identifier a merge or change of identifier retires (HL7 v2.5.1 §3.4.3.1)."""
    first = spec.prior_patient_id[0]
    for path in spec.prior_patient_id:
        segment = next((s for s in group if segment_id(s) == path.segment), None)
        if segment is None:
            continue
        for value in read(segment, path):
            text = scalar(value).strip()
            if text:
                return _check_id(text, str(path))
    if not any(segment_id(s) == first.segment for s in group):
        raise MappingError(
            ErrorCode.SEGMENT_SEQUENCE_ERROR,
            first.segment,
            f"a PID has no {first.segment} segment naming the prior patient identifier",
        )
    raise MappingError(
        ErrorCode.REQUIRED_FIELD_MISSING, str(first), f"{first} (prior patient ID) is empty"
    )


def _check_id(text: str, location: str) -> str:
    """A prior ID becomes a PatientID (LO): at most 64 characters, no ``\\`` (PS3.5 §6.2)."""
    if len(text) > _PATIENT_ID_MAX:
        raise MappingError(
            ErrorCode.VALUE_TOO_LONG,
            location,
            f"{location} (prior patient ID) has {len(text)} characters; "
            f"VR LO allows at most {_PATIENT_ID_MAX}",
        )
    if "\\" in text or any(ord(c) < 0x20 for c in text):
        raise MappingError(
            ErrorCode.DATA_TYPE_ERROR,
            location,
            f"{location} (prior patient ID) holds a character VR LO cannot hold",
        )
    return text

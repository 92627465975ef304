"""The Modality Performed Procedure Step SCP: N-CREATE and N-SET (PS3.4 F.7, IHE RAD-6/RAD-7).

``MppsService.handle_create`` and ``handle_set`` are bound to pynetdicom's
``evt.EVT_N_CREATE`` and ``evt.EVT_N_SET``; each returns ``(status, dataset)``
and pynetdicom owns the protocol. The store (``broker.store.mpps``)
keeps the instance and changes the linked worklist steps in one atomic call.
Refusals become DICOM statuses here, in one place:

    N-CREATE
    a linked worklist entry outside the    0x0124 Refused: not authorized (PS3.7 10.1.5.1.6);
      caller's profile scope               nothing stored, no step changes
    Affected SOP Instance UID absent       the SCP assigns one and returns it (PS3.7 10.1.5.1.4)
    Affected SOP Instance UID not a UID    0x0106 Invalid attribute value
    instance UID already known             0x0111 Duplicate SOP Instance (PS3.7 10.1.5, C.5)
    Performed Procedure Step Status absent 0x0120 Missing attribute (Type 1, Table F.7.2-1)
    ... empty                              0x0121 Missing attribute value
    ... not IN PROGRESS                    0x0106 Invalid attribute value (PS3.4 F.7.2.1.3)
    N-SET
    unknown instance                       0x0112 No such SOP Instance (PS3.7 10.1.3, C.5)
    instance another AE title created      0x0124 Refused: not authorized (PS3.7 10.1.1.1.8),
                                           unless the caller's profile has
                                           mpps_update_others and every linked entry
                                           is within its scope
    instance COMPLETED or DISCONTINUED     0x0110 Processing failure, Error Comment "Performed
                                           Procedure Step Object may no longer be updated",
                                           Error ID A710 (PS3.4 F.7.2.2.3, Table F.7.2-2)
    status not a defined term              0x0106 Invalid attribute value
    both
    caller the acceptance policy refuses   0x0124 (the association is rejected before
                                           any request: ``broker.dicom.server``)
    unknown Specific Character Set,
    undecodable attribute list             0x0106 Invalid attribute value (PS3.4 F.7.2.2.3)
    store unavailable, any other failure   0x0110 Processing failure

The scope is the C-FIND one (``ScannerProfile.sees_station`` on the entry's
Scheduled Station AE Titles): a scanner can start, complete or discontinue
only steps it could find. Every Error Comment names the attribute concerned
or the rule applied. A Scheduled Step
Attributes Sequence item with an empty Scheduled Procedure Step ID is IHE's
unscheduled case (RAD TF-2 4.6.4.1.2.4): the instance is accepted and stored,
and no worklist entry changes; so is an N-CREATE without the sequence (Type 1,
but refusing it would lose the exam's record), with a warning. One INFO line
per request, without patient data (the instance UID and accession numbers are
logged at DEBUG only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid

from broker.audit.events import Outcome
from broker.audit.record import mpps_event
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.dicom.mpps_rules import (
    NO_LONGER_UPDATABLE,
    NO_LONGER_UPDATABLE_ERROR_ID,
    NOT_SETTABLE,
    MppsRefusal,
    MppsResult,
    MppsStatus,
    decoded,
    failure,
    performed_status,
    step_refs,
    text,
)
from broker.dicom.peers import caller_of, calling_ae
from broker.dicom.plan import station_titles
from broker.dicom.profiles import ProfileSet, ScannerProfile
from broker.errors import StoreError
from broker.store.mpps import (
    CreateOutcome,
    MppsStore,
    PerformedStatus,
    SetOutcome,
    StepRef,
)

__all__ = [
    "NO_LONGER_UPDATABLE",
    "NO_LONGER_UPDATABLE_ERROR_ID",
    "MppsResult",
    "MppsService",
    "MppsStatus",
]

log = logging.getLogger(__name__)


class MppsService:
    """Answers MPPS N-CREATE and N-SET requests from a :class:`MppsStore` (PS3.4 F.7)."""

    def __init__(
        self, store: MppsStore, *, profiles: ProfileSet | None = None, audit: AuditSink = NO_AUDIT
    ) -> None:
        self._store = store
        self._profiles = profiles or ProfileSet({})
        self._audit = audit  # one record per request: caller, instance, status

    def __repr__(self) -> str:
        return f"MppsService(store={self._store!r})"

    def handle_create(self, event: Any) -> MppsResult:
        """The EVT_N_CREATE handler (PS3.4 F.7.2.1.3): a new IN PROGRESS instance."""
        return self._answer("N-CREATE", self._create, event)

    def handle_set(self, event: Any) -> MppsResult:
        """The EVT_N_SET handler (PS3.4 F.7.2.2.3): update, complete or discontinue."""
        return self._answer("N-SET", self._set, event)

    def _answer(
        self, operation: str, handler: Callable[[Any], MppsResult], event: Any
    ) -> MppsResult:
        """``handler``'s result; every failure becomes a status with an Error Comment, and
        every failure is on the audit trail."""
        try:
            return handler(event)
        except MppsRefusal as e:
            log.warning("MPPS %s from %s refused: %s", operation, calling_ae(event), e)
            refusal, outcome = e, Outcome.REFUSED
        except StoreError as e:
            log.error("MPPS %s from %s failed: %s", operation, calling_ae(event), e)
            refusal = MppsRefusal(MppsStatus.PROCESSING_FAILURE, "worklist store unavailable")
            outcome = Outcome.FAILED
        except Exception:
            log.exception("MPPS %s from %s failed", operation, calling_ae(event))
            refusal = MppsRefusal(MppsStatus.PROCESSING_FAILURE, "internal error")
            outcome = Outcome.FAILED
        status, why = refusal.status, refusal.comment
        self._audit.record(mpps_event(operation, event, status=status, outcome=outcome, reason=why))
        return failure(refusal)

    def _profile(self, event: Any) -> ScannerProfile:
        """The caller's profile (``ProfileSet.decide``), or 0x0124."""
        profile = self._profiles.for_caller(*caller_of(event))
        if profile is None:
            raise MppsRefusal(
                MppsStatus.NOT_AUTHORIZED, "this calling AE title or address may not use MPPS"
            )
        return profile

    def _create(self, event: Any) -> MppsResult:
        aet = calling_ae(event)
        profile = self._profile(event)
        requested = event.request.AffectedSOPInstanceUID
        uid, ds = _creation(requested, event.attribute_list)
        steps = step_refs(ds)
        if not steps:
            log.warning(
                "MPPS N-CREATE from %s msg %s has no Scheduled Step Attributes Sequence "
                "(0040,0270); stored as unscheduled",
                aet,
                event.request.MessageID,
            )
        outcome, entries, changed = self._store.create(
            uid,
            ds,
            steps,
            patient_id=text(ds, "PatientID"),
            aet=aet,
            visible=lambda entry: profile.sees_station(station_titles(entry)),
        )
        if outcome is CreateOutcome.OUT_OF_SCOPE:
            log.debug("MPPS %s: entries outside the scope of %s: %s", uid, aet, list(entries))
            raise MppsRefusal(
                MppsStatus.NOT_AUTHORIZED,
                "a Scheduled Step is for a station outside this AE's scope",
            )
        if outcome is CreateOutcome.DUPLICATE:
            raise MppsRefusal(
                MppsStatus.DUPLICATE_SOP_INSTANCE,
                "an MPPS with this Affected SOP Instance UID exists",
            )
        _log_created(aet, event.request.MessageID, steps, list(entries), changed)
        self._audit.record(
            mpps_event("N-CREATE", event, uid=uid, performed="IN PROGRESS", linked=len(entries))
        )
        if requested is None:
            reply = Dataset()
            reply.AffectedSOPInstanceUID = uid
            return int(MppsStatus.SUCCESS), reply
        return int(MppsStatus.SUCCESS), None

    def _set(self, event: Any) -> MppsResult:
        aet = calling_ae(event)
        uid = str(event.request.RequestedSOPInstanceUID or "").strip()
        self._check_updater(self._profile(event), aet, uid)
        changes = decoded(event.modification_list, "Modification List")
        performed_status(changes, required=False)
        ignored = sorted(e.keyword for e in changes if e.keyword in NOT_SETTABLE)
        for keyword in ignored:
            del changes[keyword]
        if [k for k in ignored if k != "SpecificCharacterSet"]:
            log.warning(
                "MPPS N-SET from %s msg %s: attributes N-SET may not change ignored: %s",
                aet,
                event.request.MessageID,
                ", ".join(k for k in ignored if k != "SpecificCharacterSet"),
            )
        result = self._store.update(uid, changes, aet=aet)
        if result.outcome is SetOutcome.NO_SUCH_INSTANCE:
            raise MppsRefusal(
                MppsStatus.NO_SUCH_SOP_INSTANCE,
                "no MPPS with this Requested SOP Instance UID",
            )
        if result.outcome is SetOutcome.FINISHED:
            # PS3.4 F.7.2.2.3: N-SET only while IN PROGRESS; otherwise 0110H with the
            # Specific Error Comment and Error ID of Table F.7.2-2.
            log.warning(
                "MPPS N-SET from %s msg %s refused: the step is already %s",
                aet,
                event.request.MessageID,
                result.status,
            )
            raise MppsRefusal(
                MppsStatus.PROCESSING_FAILURE, NO_LONGER_UPDATABLE, NO_LONGER_UPDATABLE_ERROR_ID
            )
        log.info(
            "MPPS N-SET from %s msg %s: %s; %d entries linked, %d changed %s",
            aet,
            event.request.MessageID,
            result.status,
            len(result.entries),
            result.changed,
            list(result.entries),
        )
        linked = len(result.entries)
        self._audit.record(mpps_event("N-SET", event, performed=result.status, linked=linked))
        return int(MppsStatus.SUCCESS), None

    def _check_updater(self, profile: ScannerProfile, aet: str, uid: str) -> None:
        """N-SET only by the AE title that created the instance, or by a profile with
        ``mpps_update_others`` whose scope holds every linked entry; else 0x0124."""
        found = self._store.creator(uid)
        if found is None:
            return  # the update answers 0x0112 No such SOP Instance
        creator, entries = found
        if creator == aet:
            return
        if profile.mpps_update_others and all(
            profile.sees_station(station_titles(entry)) for _, entry in self._store.entries(entries)
        ):
            return
        raise MppsRefusal(
            MppsStatus.NOT_AUTHORIZED, "this MPPS instance was created by another AE title"
        )


def _creation(requested: Any, attribute_list: Dataset | None) -> tuple[str, Dataset]:
    """The instance UID (the caller's, or one assigned) and the decoded attributes of an
    N-CREATE, whose status must be IN PROGRESS (PS3.4 F.7.2.1.1); else MppsRefusal."""
    uid = str(requested).strip() if requested else ""
    if requested is not None and not UID(uid).is_valid:
        raise MppsRefusal(
            MppsStatus.INVALID_ATTRIBUTE_VALUE, "Affected SOP Instance UID is not a valid UID"
        )
    ds = decoded(attribute_list, "Attribute List")
    status = performed_status(ds, required=True)
    if status is not PerformedStatus.IN_PROGRESS:
        raise MppsRefusal(
            MppsStatus.INVALID_ATTRIBUTE_VALUE,
            "Performed Procedure Step Status (0040,0252) must be IN PROGRESS",
        )
    if not uid:  # PS3.7 10.1.5.1.4: the performing SCP assigns it and returns it
        uid = str(generate_uid())
    return uid, ds


def _log_created(
    aet: str, message_id: int, steps: list[StepRef], entries: list[str], changed: int
) -> None:
    """One INFO line per N-CREATE (entry ids only); a warning when no step is on the list."""
    scheduled = sum(1 for s in steps if s.scheduled)
    log.info(
        "MPPS N-CREATE from %s msg %s: IN PROGRESS, %s; %d entries linked, %d STARTED %s",
        aet,
        message_id,
        f"{scheduled} scheduled step items" if scheduled else "unscheduled",
        len(entries),
        changed,
        entries,
    )
    if scheduled and not entries:
        log.warning(
            "MPPS N-CREATE from %s msg %s names %d scheduled steps, none on the worklist",
            aet,
            message_id,
            scheduled,
        )

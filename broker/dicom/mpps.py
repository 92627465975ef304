"""The Modality Performed Procedure Step SCP: N-CREATE and N-SET (PS3.4 F.7, IHE RAD-6/RAD-7).

``MppsService.handle_create`` and ``handle_set`` are bound to pynetdicom's
``evt.EVT_N_CREATE`` and ``evt.EVT_N_SET``; each returns ``(status, dataset)``
and pynetdicom owns the protocol. This is an adapter: event -> the MPPS use case
(``broker.services.mpps.MppsService``, handed in by ``broker.app``; or, given a bare
store, the same state machine, ``broker.worklist.mpps_steps``) -> DIMSE status. The
store (``broker.store.mpps``) keeps the instance and changes the linked worklist steps
in one atomic call. Refusals (``MppsRefusal``) become DICOM statuses here, in one place:

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
from typing import Any, Protocol

from pydicom.dataset import Dataset

from broker.audit.events import Outcome
from broker.audit.record import mpps_event
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.common import correlation
from broker.dicom.mpps_rules import (
    NO_LONGER_UPDATABLE,
    NO_LONGER_UPDATABLE_ERROR_ID,
    MppsRefusal,
    MppsResult,
    MppsStatus,
    failure,
)
from broker.dicom.peers import caller_of, calling_ae
from broker.dicom.plan import station_titles
from broker.dicom.profiles import ProfileSet, ScannerProfile
from broker.errors import StoreError
from broker.store.mpps import MppsStore
from broker.worklist.mpps_steps import Created, MppsProfile, MppsSteps, Updated

__all__ = [
    "NO_LONGER_UPDATABLE",
    "NO_LONGER_UPDATABLE_ERROR_ID",
    "MppsResult",
    "MppsService",
    "MppsStatus",
    "PerformedSteps",
]

log = logging.getLogger(__name__)


class PerformedSteps(Protocol):
    """The MPPS use cases the adapter calls (``broker.services.mpps.MppsService``)."""

    def create(
        self, attributes: Dataset | None, *, uid: str | None, aet: str, profile: MppsProfile
    ) -> Created: ...

    def update(
        self, uid: str, changes: Dataset | None, *, aet: str, profile: MppsProfile
    ) -> Updated: ...


class MppsService:
    """Answers MPPS N-CREATE and N-SET requests through the MPPS use cases (PS3.4 F.7)."""

    def __init__(
        self,
        steps: PerformedSteps | MppsStore,
        *,
        profiles: ProfileSet | None = None,
        audit: AuditSink = NO_AUDIT,
    ) -> None:
        if isinstance(steps, MppsStore):
            steps = MppsSteps(steps, station_titles)
        self._steps = steps
        self._profiles = profiles or ProfileSet({})
        self._audit = audit  # one record per request: caller, instance, status

    def __repr__(self) -> str:
        return f"MppsService(steps={self._steps!r})"

    def handle_create(self, event: Any) -> MppsResult:
        """The EVT_N_CREATE handler (PS3.4 F.7.2.1.3): a new IN PROGRESS instance."""
        return self._answer("N-CREATE", self._create, event)

    def handle_set(self, event: Any) -> MppsResult:
        """The EVT_N_SET handler (PS3.4 F.7.2.2.3): update, complete or discontinue."""
        return self._answer("N-SET", self._set, event)

    def _answer(
        self, operation: str, handler: Callable[[Any], MppsResult], event: Any
    ) -> MppsResult:
        """``handler``'s result, its log lines with the instance's correlation ID
        (``broker.common.correlation``: a pseudonym of its SOP Instance UID)."""
        request = event.request  # N-CREATE names the instance Affected, N-SET Requested
        uid = getattr(request, "AffectedSOPInstanceUID", None) or getattr(
            request, "RequestedSOPInstanceUID", None
        )
        instance = str(uid) if uid else f"{calling_ae(event)}/{getattr(request, 'MessageID', '')}"
        return correlation.using(
            correlation.digest("p", instance), lambda: self._answered(operation, handler, event)
        )

    def _answered(
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
        aet, message_id = calling_ae(event), event.request.MessageID
        requested = event.request.AffectedSOPInstanceUID
        uid = None if requested is None else str(requested)
        created = self._steps.create(
            event.attribute_list, uid=uid, aet=aet, profile=self._profile(event)
        )
        _log_created(aet, message_id, created)
        self._audit.record(
            mpps_event(
                "N-CREATE",
                event,
                uid=created.uid,
                performed="IN PROGRESS",
                linked=len(created.entries),
            )
        )
        if created.assigned:  # PS3.7 10.1.5.1.4: the SCP returns the UID it assigned
            reply = Dataset()
            reply.AffectedSOPInstanceUID = created.uid
            return int(MppsStatus.SUCCESS), reply
        return int(MppsStatus.SUCCESS), None

    def _set(self, event: Any) -> MppsResult:
        aet, message_id = calling_ae(event), event.request.MessageID
        uid = str(event.request.RequestedSOPInstanceUID or "").strip()
        try:
            updated = self._steps.update(
                uid, event.modification_list, aet=aet, profile=self._profile(event)
            )
        except MppsRefusal as e:
            if e.error_id == NO_LONGER_UPDATABLE_ERROR_ID:
                log.warning(
                    "MPPS N-SET from %s msg %s refused: the step is no longer IN PROGRESS",
                    aet,
                    message_id,
                )
            raise
        if updated.ignored:
            log.warning(
                "MPPS N-SET from %s msg %s: attributes N-SET may not change ignored: %s",
                aet,
                message_id,
                ", ".join(updated.ignored),
            )
        result = updated.result
        log.info(
            "MPPS N-SET from %s msg %s: %s; %d entries linked, %d changed %s",
            aet,
            message_id,
            result.status,
            len(result.entries),
            result.changed,
            list(result.entries),
            extra=correlation.fields(entries=list(result.entries)),
        )
        linked = len(result.entries)
        self._audit.record(mpps_event("N-SET", event, performed=result.status, linked=linked))
        return int(MppsStatus.SUCCESS), None


def _log_created(aet: str, message_id: int, created: Created) -> None:
    """One INFO line per N-CREATE (entry ids only); a warning when no step is on the list."""
    entries, scheduled = list(created.entries), created.scheduled
    if not created.steps:
        log.warning(
            "MPPS N-CREATE from %s msg %s has no Scheduled Step Attributes Sequence "
            "(0040,0270); stored as unscheduled",
            aet,
            message_id,
        )
    log.info(
        "MPPS N-CREATE from %s msg %s: IN PROGRESS, %s; %d entries linked, %d STARTED %s",
        aet,
        message_id,
        f"{scheduled} scheduled step items" if scheduled else "unscheduled",
        len(entries),
        created.changed,
        entries,
        extra=correlation.fields(entries=entries),
    )
    if scheduled and not entries:
        log.warning(
            "MPPS N-CREATE from %s msg %s names %d scheduled steps, none on the worklist",
            aet,
            message_id,
            scheduled,
        )

"""The MPPS state machine, one for every face: create, update, retrieve.

PS3.4 F.7 (N-CREATE, N-SET), F.8 (N-GET) and PS3.18 chapter 15 (their DICOMweb
transactions), IHE RAD-6/RAD-7: an instance is created IN PROGRESS and starts the
worklist steps it names; it is updated while IN PROGRESS, and COMPLETED or DISCONTINUED
ends it and its steps; after that it may no longer be updated (PS3.4 Table F.7.2-2).
A caller may link only steps its scanner profile could find (the C-FIND scope), and
update or retrieve only the instances it created, unless its profile has
``mpps_update_others`` and sees every linked step.

Sans-I/O: the instances are kept by an :class:`MppsRepository` (the broker's is
``broker.store.mpps.MppsStore``), the caller's scope is an :class:`MppsProfile` (a
``broker.dicom.profiles.ScannerProfile``). A refusal is an
:class:`~broker.worklist.mpps_rules.MppsRefusal`, which each face turns into its answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydicom.dataset import Dataset

from broker.worklist.mpps import (
    CreateOutcome,
    MppsRecord,
    SetOutcome,
    SetResult,
    StepRef,
)
from broker.worklist.mpps_rules import (
    NO_LONGER_UPDATABLE,
    NO_LONGER_UPDATABLE_ERROR_ID,
    MppsRefusal,
    MppsStatus,
    creation,
    settable,
    step_refs,
    text,
)

__all__ = ["Created", "MppsProfile", "MppsRepository", "MppsSteps", "Updated"]


class MppsRepository(Protocol):
    """Where the instances are kept, and the worklist entries they change."""

    def create(
        self,
        uid: str,
        ds: Dataset,
        steps: Sequence[StepRef],
        *,
        patient_id: str,
        aet: str,
        visible: Callable[[Dataset], bool] | None = None,
    ) -> tuple[CreateOutcome, tuple[str, ...], int]: ...

    def update(self, uid: str, changes: Dataset, *, aet: str) -> SetResult: ...

    def creator(self, uid: str) -> tuple[str, tuple[str, ...]] | None: ...

    def entries(self, ids: Sequence[str]) -> Iterator[tuple[str, Dataset]]: ...

    def get(self, uid: str) -> MppsRecord | None: ...


class MppsProfile(Protocol):
    """The caller's scope: which stations it sees, whether it may update others' steps."""

    @property
    def mpps_update_others(self) -> bool: ...

    def sees_station(self, stations: list[str]) -> bool: ...


@dataclass(frozen=True)
class Created:
    """A new IN PROGRESS instance: its UID (``assigned``: chosen by the SCP), the
    Scheduled Step items it names, the worklist entries linked and how many STARTED."""

    uid: str
    assigned: bool
    steps: tuple[StepRef, ...]
    entries: tuple[str, ...]
    changed: int

    @property
    def scheduled(self) -> int:
        return sum(1 for s in self.steps if s.scheduled)


@dataclass(frozen=True)
class Updated:
    """An update done: the store's result, and the attributes ignored (not settable)."""

    result: SetResult
    ignored: tuple[str, ...]


class MppsSteps:
    """Create, update and retrieve MPPS instances in ``store`` (see the module docstring);
    ``stations`` reads an entry's Scheduled Station AE Titles, which a profile's scope is
    checked against (``broker.dicom.plan.station_titles``)."""

    def __init__(self, store: MppsRepository, stations: Callable[[Dataset], list[str]]) -> None:
        self._store = store
        self._stations = stations

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self._store!r})"

    def create(
        self, attributes: Dataset | None, *, uid: str | None, aet: str, profile: MppsProfile
    ) -> Created:
        """A new IN PROGRESS instance from a create's attributes (PS3.4 F.7.2.1.3, PS3.18
        15.4): ``uid`` the requested one (None: assigned); its scheduled steps STARTED."""
        instance, ds = creation(uid, attributes)
        steps = step_refs(ds)
        outcome, entries, changed = self._store.create(
            instance,
            ds,
            steps,
            patient_id=text(ds, "PatientID"),
            aet=aet,
            visible=lambda entry: profile.sees_station(self._stations(entry)),
        )
        if outcome is CreateOutcome.OUT_OF_SCOPE:
            raise MppsRefusal(
                MppsStatus.NOT_AUTHORIZED,
                "a Scheduled Step is for a station outside this AE's scope",
            )
        if outcome is CreateOutcome.DUPLICATE:
            raise MppsRefusal(
                MppsStatus.DUPLICATE_SOP_INSTANCE,
                "an MPPS with this Affected SOP Instance UID exists",
            )
        return Created(instance, uid is None, tuple(steps), entries, changed)

    def update(
        self, uid: str, changes: Dataset | None, *, aet: str, profile: MppsProfile
    ) -> Updated:
        """Apply an update's modifications (PS3.4 F.7.2.2.3, PS3.18 15.5): attributes it
        may not change are ignored (``Updated.ignored``); COMPLETED or DISCONTINUED ends
        the instance and its steps; an ended instance refuses with Table F.7.2-2's comment."""
        self._check_caller(profile, aet, uid)
        modifications, ignored = settable(changes)
        result = self._store.update(uid, modifications, aet=aet)
        if result.outcome is SetOutcome.NO_SUCH_INSTANCE:
            raise MppsRefusal(
                MppsStatus.NO_SUCH_SOP_INSTANCE,
                "no MPPS with this Requested SOP Instance UID",
            )
        if result.outcome is SetOutcome.FINISHED:
            # PS3.4 F.7.2.2.3: only while IN PROGRESS; otherwise 0110H with the
            # Specific Error Comment and Error ID of Table F.7.2-2.
            raise MppsRefusal(
                MppsStatus.PROCESSING_FAILURE, NO_LONGER_UPDATABLE, NO_LONGER_UPDATABLE_ERROR_ID
            )
        return Updated(result, tuple(ignored))

    def retrieve(self, uid: str, *, aet: str, profile: MppsProfile) -> MppsRecord:
        """The stored instance (PS3.4 F.8.2.1 N-GET, PS3.18 15.6), for whoever may update
        it; an unknown UID is 0x0112."""
        self._check_caller(profile, aet, uid)
        record = self._store.get(uid)
        if record is None:
            raise MppsRefusal(MppsStatus.NO_SUCH_SOP_INSTANCE, "no MPPS with this SOP Instance UID")
        return record

    def _check_caller(self, profile: MppsProfile, aet: str, uid: str) -> None:
        """Only the AE title that created the instance, or a profile with
        ``mpps_update_others`` whose scope holds every linked entry; else 0x0124."""
        found = self._store.creator(uid)
        if found is None:
            return  # the operation answers 0x0112 No such SOP Instance
        creator, entries = found
        if creator == aet:
            return
        if profile.mpps_update_others and all(
            profile.sees_station(self._stations(entry)) for _, entry in self._store.entries(entries)
        ):
            return
        raise MppsRefusal(
            MppsStatus.NOT_AUTHORIZED, "this MPPS instance was created by another AE title"
        )

"""Modality Performed Procedure Steps in Redis, and what they do to the worklist.

An MPPS instance (PS3.3 A.17, PS3.4 F.7) is kept as DICOM JSON in one hash
with its Performed Procedure Step Status and the worklist entries it is linked
to (``broker.store.keys``). The link is made once, at N-CREATE, from its
Scheduled Step Attributes Sequence (0040,0270): N-SET may not change that
sequence (PS3.4 Table F.7.2-1, "Not allowed").

What an MPPS does to the linked Scheduled Procedure Steps (IHE RAD TF-2
RAD-6/RAD-7, the Order Filler's side):

    N-CREATE IN PROGRESS            SPS Status STARTED
    N-SET COMPLETED                 SPS Status COMPLETED
    N-SET DISCONTINUED              SPS Status DISCONTINUED

A step the RIS canceled stays CANCELED, and a COMPLETED step stays COMPLETED
(a second MPPS for a finished step does not reopen it). Every change — the
instance, its indexes, the entries' status fields, the ``ended`` time and the
event record for the RIS — is one Lua script call, so it is atomic; only the
entry hash's ``status`` field is written, the rest of the entry is untouched.

Events go to a capped Redis stream (``{p}:mpps-events``, ``XADD MAXLEN ~``):
one record per N-CREATE and N-SET with the event (``created``, ``updated``,
``completed``, ``discontinued``), the instance UID, its status, the calling
AE, the linked entry ids and their order keys, and the instance's DICOM JSON,
so a later outbound HL7 sender can read them with ``XREAD`` / ``XREADGROUP``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis
from pydicom.dataset import Dataset

from broker.common import jsontext
from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.errors import StoreError, store_error
from broker.store.guards import value_digest
from broker.store.mpps_lua import CREATE_SCRIPT, SET_SCRIPT
from broker.store.worklist import WorklistStore
from broker.worklist import dicom_json

__all__ = [
    "CreateOutcome",
    "MppsRecord",
    "MppsStore",
    "PerformedStatus",
    "SetOutcome",
    "SetResult",
    "StepRef",
]

log = logging.getLogger(__name__)

_ATTEMPTS = 8  # re-reads after another N-SET changed the instance in between
_SCAN_BATCH = 500


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


class MppsStore:
    """MPPS instances in the worklist's Redis; see the module docstring."""

    def __init__(
        self,
        store: WorklistStore,
        *,
        events_max: int = 10_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if events_max < 1:
            raise ValueError("events_max must be at least 1")
        self._store = store
        self._redis = store.client
        self._keys = store.keys
        self._events_max = events_max
        self._clock = clock
        self._create = self._redis.register_script(CREATE_SCRIPT)
        self._set = self._redis.register_script(SET_SCRIPT)

    def __repr__(self) -> str:
        return f"MppsStore(prefix={self._keys.prefix!r})"

    # -- writes -------------------------------------------------------------

    def create(
        self,
        uid: str,
        ds: Dataset,
        steps: Sequence[StepRef],
        *,
        patient_id: str,
        aet: str,
        visible: Callable[[Dataset], bool] | None = None,
    ) -> tuple[CreateOutcome, tuple[str, ...], int]:
        """Store a new IN PROGRESS instance and start its scheduled steps (PS3.4 F.7.2.1).

        Returns the outcome, the linked entry ids and how many entries changed.
        With ``visible`` (the caller's profile scope), an instance linked to an
        entry it does not accept is not stored: OUT_OF_SCOPE, with those entries.
        """
        linked = self._linked(steps, patient_id)
        if visible is not None:
            hidden = tuple(entry_id for entry_id, entry in linked if not visible(entry))
            if hidden:
                return CreateOutcome.OUT_OF_SCOPE, hidden, 0
        entries = tuple(entry_id for entry_id, _ in linked)
        refs = self._index_refs(steps)
        payload = self._payload(uid, ds, PerformedStatus.IN_PROGRESS, aet)
        payload.update(
            entries=list(entries),
            entries_json=jsontext.dumps(list(entries)),
            refs=refs,
            refs_json=jsontext.dumps(refs),
        )
        reply = self._store.run_script(self._create, jsontext.dumps(payload))
        if _text(reply[0]) == "dup":
            return CreateOutcome.DUPLICATE, (), 0
        return CreateOutcome.CREATED, entries, int(reply[1])

    def update(self, uid: str, changes: Dataset, *, aet: str) -> SetResult:
        """Apply an N-SET's modifications to an IN PROGRESS instance (PS3.4 F.7.2.2).

        Each attribute of ``changes`` replaces the stored one. When the new
        Performed Procedure Step Status is COMPLETED or DISCONTINUED the linked
        steps get that SPS status, in the same atomic call.
        """
        key = self._keys.mpps(uid)
        for _ in range(_ATTEMPTS):
            try:
                status, raw = self._redis.hmget(key, "status", "ds")
            except redis.RedisError as e:
                raise store_error(e) from e
            if status is None or raw is None:
                return SetResult(SetOutcome.NO_SUCH_INSTANCE)
            if _text(status) != PerformedStatus.IN_PROGRESS:
                return SetResult(SetOutcome.FINISHED, _text(status))
            merged = Dataset.from_json(jsontext.loads(raw))
            for element in changes:
                merged[element.tag] = element
            new_status = PerformedStatus(_text(merged.get("PerformedProcedureStepStatus")))
            payload = self._payload(uid, merged, new_status, aet)
            payload["digest"] = value_digest(raw if isinstance(raw, bytes) else raw.encode())
            reply = self._store.run_script(self._set, jsontext.dumps(payload))
            tag = _text(reply[0])
            if tag == "retry":
                continue
            if tag == "missing":
                return SetResult(SetOutcome.NO_SUCH_INSTANCE)
            if tag == "finished":
                return SetResult(SetOutcome.FINISHED, _text(reply[1]))
            entries = tuple(jsontext.loads(reply[2]))
            return SetResult(SetOutcome.UPDATED, new_status.value, entries, int(reply[1]))
        raise StoreError(f"MPPS instance kept changing during {_ATTEMPTS} attempts to update it")

    def _payload(self, uid: str, ds: Dataset, status: PerformedStatus, aet: str) -> dict[str, Any]:
        return {
            "uid": uid,
            "key": self._keys.mpps(uid),
            "ds": dicom_json.dumps(ds),
            "status": status.value,
            "step_status": STEP_STATUS[status],
            "aet": aet,
            "now": round(self._clock.now(), 3),
            "by_time": self._keys.mpps_by_time(),
            "ended": self._keys.entries_ended(),
            "entry_prefix": self._keys.entry_prefix(),
            "events": self._keys.mpps_events(),
            "events_max": self._events_max,
        }

    def _index_refs(self, steps: Iterable[StepRef]) -> list[list[str]]:
        refs: dict[str, None] = {}
        for step in steps:
            if step.study_uid:
                refs[self._keys.mpps_by_study(step.study_uid)] = None
            if step.accession:
                refs[self._keys.mpps_by_accession(step.accession)] = None
        return [["s", key] for key in refs]

    # -- reads --------------------------------------------------------------

    def linked_entries(self, steps: Iterable[StepRef], patient_id: str) -> list[str]:
        """Ids of the worklist entries the scheduled items name, in item order."""
        return [entry_id for entry_id, _ in self._linked(steps, patient_id)]

    def _linked(self, steps: Iterable[StepRef], patient_id: str) -> list[tuple[str, Dataset]]:
        """The worklist entries the scheduled items name, in item order, with their ids.

        Candidates come from the accession index, else the patient index; an
        item with neither (both are Type 2 in the N-CREATE) makes a pass over
        every entry, logged as a warning.
        """
        found: dict[str, Dataset] = {}
        for step in steps:
            if not step.scheduled:
                continue
            if step.accession:
                ids = self._members(self._keys.by_accession(step.accession))
            elif patient_id:
                ids = self._members(self._keys.by_patient(patient_id))
            else:
                log.warning(
                    "MPPS step item with neither Accession Number nor Patient ID: "
                    "looking through every worklist entry"
                )
                ids = self._members(self._keys.all_entries())
            for entry_id, entry in self._entries(ids):
                if step.matches(entry):
                    found.setdefault(entry_id, entry)
        return list(found.items())

    def creator(self, uid: str) -> tuple[str, tuple[str, ...]] | None:
        """The calling AE title that created the instance and its linked entry ids (neither
        changes after N-CREATE), or None when there is no such instance."""
        try:
            aet, entries = self._redis.hmget(self._keys.mpps(uid), "aet", "entries")
        except redis.RedisError as e:
            raise StoreError(f"worklist store unavailable: {e}") from e
        if entries is None:
            return None
        return _text(aet), tuple(jsontext.loads(entries))

    def entries(self, ids: Sequence[str]) -> Iterator[tuple[str, Dataset]]:
        """The worklist entries with these ids that still exist, with their ids."""
        yield from self._entries(list(ids))

    def get(self, uid: str) -> MppsRecord | None:
        """The stored instance, or None."""
        try:
            row = self._redis.hmget(
                self._keys.mpps(uid), "ds", "status", "entries", "aet", "created", "updated"
            )
        except redis.RedisError as e:
            raise store_error(e) from e
        raw, status, entries, aet, created, updated = row
        if raw is None:
            return None
        return MppsRecord(
            uid=uid,
            status=_text(status),
            ds=Dataset.from_json(jsontext.loads(raw)),
            entries=tuple(jsontext.loads(entries or b"[]")),
            aet=_text(aet),
            created=float(created or 0),
            updated=float(updated or 0),
        )

    def _members(self, key: str) -> list[str]:
        try:
            return sorted(_text(m) for m in self._redis.sscan_iter(key, count=_SCAN_BATCH))
        except redis.RedisError as e:
            raise store_error(e) from e

    def _entries(self, ids: list[str]) -> Iterator[tuple[str, Dataset]]:
        for start in range(0, len(ids), _SCAN_BATCH):
            batch = ids[start : start + _SCAN_BATCH]
            try:
                pipe = self._redis.pipeline(transaction=False)
                for entry_id in batch:
                    pipe.hget(self._keys.entry(entry_id), "ds")
                rows = pipe.execute()
            except redis.RedisError as e:
                raise store_error(e) from e
            for entry_id, raw in zip(batch, rows, strict=True):
                if raw is not None:
                    yield entry_id, Dataset.from_json(jsontext.loads(raw))


def _text(value: Any) -> str:
    """A Redis reply or DICOM value as a stripped string ('' for None)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode()
    return str(value).strip()

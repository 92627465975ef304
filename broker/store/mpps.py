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
for whoever reads them with ``XREAD``. Each step it changes also queues its status
event for the RIS, in the same call (``broker.store.outbound``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import redis
from pydicom.dataset import Dataset

from broker.common import jsontext
from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.errors import StoreError, store_error
from broker.store import scripts
from broker.store.guards import value_digest
from broker.store.outbound import NO_ROUTES, OutboundRoutes, parked_at_bound
from broker.store.scripts import KeyList
from broker.store.worklist import WorklistStore
from broker.worklist import dicom_json
from broker.worklist.mpps import (
    STEP_STATUS,
    CreateOutcome,
    MppsRecord,
    PerformedStatus,
    SetOutcome,
    SetResult,
    StepRef,
)

__all__ = ["MppsStore"]

log = logging.getLogger(__name__)

_ATTEMPTS = 8  # re-reads after another N-SET changed the instance in between
_SCAN_BATCH = 500
_CREATE = scripts.load("mpps_create")
_SET = scripts.load("mpps_set")


class MppsStore:
    """MPPS instances in the worklist's Redis; see the module docstring."""

    def __init__(
        self,
        store: WorklistStore,
        *,
        events_max: int = 10_000,
        clock: Clock = SYSTEM_CLOCK,
        outbound: OutboundRoutes = NO_ROUTES,
    ) -> None:
        if events_max < 1:
            raise ValueError("events_max must be at least 1")
        self._store = store
        self._redis = store.client
        self._keys = store.keys
        self._events_max = events_max
        self._clock = clock
        self._outbound = outbound

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
        call = self._call_keys(uid)
        payload = self._payload(uid, ds, PerformedStatus.IN_PROGRESS, aet)
        payload.update(
            steps=[[entry_id, call.add(self._keys.entry(entry_id))] for entry_id in entries],
            entries_json=jsontext.dumps(list(entries)),
            refs=[call.add(key) for _, key in refs],
            refs_json=jsontext.dumps(refs),
        )
        self._route(payload, call)
        args = [jsontext.dumps(payload)]
        reply = self._store.scripts.run(_CREATE, call.names, args)
        if _text(reply[0]) == "dup":
            return CreateOutcome.DUPLICATE, (), 0
        parked_at_bound(reply[2])
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
            call = self._call_keys(uid)
            call.add(self._keys.entry_prefix())
            self._route(payload, call)
            args = [jsontext.dumps(payload)]
            reply = self._store.scripts.run(_SET, call.names, args)
            tag = _text(reply[0])
            if tag == "retry":
                continue
            if tag == "missing":
                return SetResult(SetOutcome.NO_SUCH_INSTANCE)
            if tag == "finished":
                return SetResult(SetOutcome.FINISHED, _text(reply[1]))
            entries = tuple(jsontext.loads(reply[2]))
            parked_at_bound(reply[3])
            return SetResult(SetOutcome.UPDATED, new_status.value, entries, int(reply[1]))
        raise StoreError(f"MPPS instance kept changing during {_ATTEMPTS} attempts to update it")

    def _call_keys(self, uid: str) -> KeyList:
        """The KEYS both MPPS scripts start with (``lua/lib/mpps.lua``)."""
        k = self._keys
        return KeyList(k.mpps(uid), k.mpps_by_time(), k.entries_ended(), k.mpps_events())

    def _route(self, payload: dict[str, Any], call: KeyList) -> None:
        """The outbound events' settings (``broker.store.outbound``), when any is routed."""
        if out := self._outbound.payload(self._keys, call, "mpps", payload["now"]):
            payload["out"] = out

    def _payload(self, uid: str, ds: Dataset, status: PerformedStatus, aet: str) -> dict[str, Any]:
        return {
            "uid": uid,
            "ds": dicom_json.dumps(ds),
            "status": status.value,
            "step_status": STEP_STATUS[status],
            "aet": aet,
            "now": round(self._clock.now(), 3),
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

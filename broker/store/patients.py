"""Patients on the worklist: ADT updates, merges, arrivals, and orders that come later.

Rules (IHE RAD TF-2 RAD-1/RAD-12; HL7 v2.5.1 ch. 3):

- **update** (A01/A04/A05/A08/A31…): the attributes the ADT carries are merged
  into the patient record (``{p}:patient:{id}``), and the record is overlaid on
  every entry of the patient (``{p}:idx:pid:{id}``). The record wins for the
  attributes it holds; entry attributes it does not hold stay as the order set
  them. An order arriving later gets the same overlay, so ADT-then-order and
  order-then-ADT end in the same state.
- **merge** (A40, §3.3.40): every entry of the prior ID (MRG-1) moves to the
  surviving ID (PID-3): PatientID, the ``idx:pid`` sets and the entry's index
  list. The surviving record is its own record plus what the A40 carries; the
  prior record is deleted; ``{p}:alias={prior}`` → surviving ID, for
  ``patient_alias_days``. An unknown prior ID moves nothing and still records the
  alias. IDs merged into the prior ID before now name the surviving ID too (each
  keeps the life its alias has left), so an alias is always one hop; a patient
  carries at most ``MAX_MERGED_IDS`` of them (an A40 past that is refused AE).
- **change_id** (A47, §3.3.47): as merge, but the prior record carries over
  (it is the same patient under a new identifier).
- **arrived** (A10): the patient's SCHEDULED steps become ARRIVED (PS3.3 C.4.10).
- A Patient ID that is an alias (after a merge) means the surviving patient,
  for orders and for ADT updates alike; the surviving ID of a merge is live
  again, so its own alias, if any, is removed. Once its alias has expired, an
  old ID is an ID like any other: a new order for it makes a new patient.

Everything is computed in Python from what was read, then applied by one
script call (``lua/patient.lua``) together with the dedup record; guards
(``broker.store.guards``) make the script refuse, and the caller re-read, when
another message changed anything that was read in between. ADT messages and
orders alike are operations in steps (``broker.store.steps``): every read and
the script share their round trips with the other messages handled together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from broker.common import jsontext
from broker.errors import MappingError, StoreError
from broker.hl7.codes import ErrorCode
from broker.store import scripts, steps
from broker.store.guards import guard_payload
from broker.store.keys import MAX_MERGED_IDS
from broker.store.patient_state import PatientState, overlay
from broker.store.scripts import KeyList
from broker.store.steps import Steps
from broker.store.worklist import WorklistStore, decode_dedup
from broker.worklist.dicom_json import dataset_json, entry_json
from broker.worklist.model import (
    ApplyOutcome,
    DedupKey,
    DedupRecord,
    Entry,
    LogRecord,
    MappedEntry,
    OrderChange,
    PatientAction,
    PatientChange,
    PatientResult,
)
from broker.worklist.ordering import MessageTime

__all__ = ["OrderRead", "PatientOutcome", "PatientStore"]

_ATTEMPTS = 8  # re-reads after a guard failed; only concurrent writes to one patient cause them
_SCHEDULED = "SCHEDULED"
_PATIENT_ID = "00100020"  # DICOM JSON key of Patient ID (0010,0020)
_ARRIVED = "ARRIVED"
_PATIENT = scripts.load("patient")


@dataclass(frozen=True)
class PatientOutcome:
    """Result of an ADT's atomic update."""

    updated: int = 0  # entries whose attributes or status changed
    moved: int = 0  # entries that changed Patient ID (merge, change of identifier)
    stale: int = 0  # patient changes skipped as older (MSH-7) than the patient's newest ADT
    duplicate: DedupRecord | None = None  # set when the message had been applied before
    logged: str | None = None  # the message-log id of the record written with the changes


@dataclass(frozen=True)
class OrderRead:
    """An order message's first read: its earlier dedup record, if any, and its patients."""

    previous: DedupRecord | None  # the message was applied before: answer with this record
    state: PatientState


class PatientStore:
    """ADT effects and the patient overlay of orders, on the same Redis as the worklist."""

    def __init__(self, store: WorklistStore) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"PatientStore(prefix={self._store.keys.prefix!r})"

    def _state(self) -> PatientState:
        return PatientState(self._store.keys, self._store.alias_ttl)

    def apply(
        self,
        result: PatientResult,
        dedup: tuple[DedupKey, DedupRecord] | None,
        sent: MessageTime | None = None,
    ) -> PatientOutcome:
        """Apply an ADT message's changes and record its dedup entry, atomically.

        ``sent`` (MSH-7): a change for a patient who already took a newer ADT is
        skipped (``PatientOutcome.stale``); None applies without that check.
        """
        return steps.run(self._store.client, self.apply_steps(result, dedup, sent))

    def apply_steps(
        self,
        result: PatientResult,
        dedup: tuple[DedupKey, DedupRecord] | None,
        sent: MessageTime | None = None,
        log: LogRecord | None = None,
    ) -> Steps[PatientOutcome]:
        """:meth:`apply` as steps (``broker.store.steps``); ``log`` is written with the
        changes, as an order's is (``WorklistStore.apply``)."""
        for _ in range(_ATTEMPTS):
            state = self._state()
            moved, stale = yield from _plan(state, result, sent)
            call = KeyList()
            body: dict[str, Any] = {
                "guards": guard_payload(state.guards, call),
                "commands": state.commands(call),
                "stale": stale,
            }
            if dedup is not None:
                body["dedup"] = self._store.dedup_body(dedup, call)
            args: list[str | bytes] = [""]
            if log is not None:
                record = dict(log.body)
                record["keys_at"] = call.extend(record.pop("keys"))
                body["record"] = record
                args += (log.raw, log.ack, log.application_ack)
            args[0] = jsontext.dumps(body)
            reply = yield from self._store.scripts.steps(_PATIENT, call.names, args)
            tag = _text(reply[0])
            if tag == "dup":
                return PatientOutcome(duplicate=decode_dedup(reply[1]))
            if tag == "ok":
                logged = reply[1] if len(reply) > 1 and reply[1] is not None else None
                return PatientOutcome(updated=state.changed_entries, moved=moved, stale=stale,
                                      logged=None if logged is None else _text(logged))  # fmt: skip
        raise StoreError(f"patient records kept changing during {_ATTEMPTS} attempts; retry later")

    def read_order(self, changes: Sequence[OrderChange], key: DedupKey | None) -> OrderRead:
        """Read an order message's dedup record and its patients' aliases and records.

        One round trip: the dedup lookup rides in the pipeline that reads the
        patients. Pass the result to :meth:`apply_order`; the atomic script still
        re-checks the dedup record.
        """
        return steps.run(self._store.client, self.read_order_steps(changes, key))

    def read_order_steps(
        self, changes: Sequence[OrderChange], key: DedupKey | None
    ) -> Steps[OrderRead]:
        """:meth:`read_order` as steps (``broker.store.steps``)."""
        state = self._state()
        dedup_key = None if key is None else self._store.keys.dedup(key)
        raw = yield from state.prefetch_steps(_patient_ids(changes), also_get=dedup_key)
        return OrderRead(None if raw is None else decode_dedup(raw), state)

    def apply_order(
        self,
        changes: Sequence[OrderChange],
        dedup: tuple[DedupKey, DedupRecord] | None,
        sent: MessageTime | None = None,
        read: OrderRead | None = None,
    ) -> ApplyOutcome:
        """Apply order changes with their patients' records and aliases, atomically.

        Each entry's Patient ID is replaced by the surviving ID when it is an
        alias, and the patient record, when there is one, is overlaid on it.
        ``sent`` (MSH-7) makes changes older than an order's state skip
        (``broker.worklist.ordering``). ``read`` (from :meth:`read_order`) is
        used for the first attempt instead of reading again.
        """
        return steps.run(self._store.client, self.apply_order_steps(changes, dedup, sent, read))

    def apply_order_steps(
        self,
        changes: Sequence[OrderChange],
        dedup: tuple[DedupKey, DedupRecord] | None,
        sent: MessageTime | None = None,
        read: OrderRead | None = None,
        log: LogRecord | None = None,
    ) -> Steps[ApplyOutcome]:
        """:meth:`apply_order` as steps (``broker.store.steps``); ``log`` is written with
        the changes (``WorklistStore.apply``)."""
        for _ in range(_ATTEMPTS):
            if read is not None:
                state, read = read.state, None
            else:
                state = self._state()
                yield from state.prefetch_steps(_patient_ids(changes))
            prepared = []
            for change in changes:
                prepared.append((yield from _with_patient(state, change)))
            outcome = yield from self._store.apply_steps(prepared, dedup, state.guards, sent, log)
            if not outcome.conflict:
                return outcome
        raise StoreError(f"patient records kept changing during {_ATTEMPTS} attempts; retry later")


def _patient_ids(changes: Sequence[OrderChange]) -> set[str]:
    return {_patient_id(ds) for c in changes for ds in c.entries} - {""}


def _plan(
    state: PatientState, result: PatientResult, sent: MessageTime | None
) -> Steps[tuple[int, int]]:
    """Apply ``result`` to the in-memory state; returns how many entries moved and how many
    changes were skipped as older (MSH-7) than the patient's newest ADT."""
    moved = stale = 0
    for change in result.changes:
        patient_id = yield from state.resolve(change.patient_id)
        newest = (yield from state.newest(patient_id)) if sent is not None else None
        if sent is not None and newest is not None and sent.is_older_than(newest):
            stale += 1
            continue
        if result.action is PatientAction.UPDATE:
            yield from _update(state, change)
        elif result.action is PatientAction.ARRIVED:
            yield from _arrived(state, change)
        elif result.action in (PatientAction.MERGE, PatientAction.CHANGE_ID):
            keep = result.action is PatientAction.CHANGE_ID
            moved += yield from _merge(state, change, keep_prior_record=keep)
        if sent is not None:
            surviving = yield from state.resolve(change.patient_id)
            yield from state.set_newest(surviving, sent.earliest)
    return moved, stale


def _update(state: PatientState, change: PatientChange) -> Steps[None]:
    """RAD-12 Patient Update: the record takes the carried attributes, overlaid on every entry."""
    patient_id = yield from state.resolve(change.patient_id)
    record = (yield from state.record(patient_id)) or Dataset()
    overlay(record, change.attributes)
    record.PatientID = patient_id
    state.set_record(patient_id, record)
    for entry_id in sorted((yield from state.members(patient_id))):
        state.overlay_entry(entry_id, record)


def _arrived(state: PatientState, change: PatientChange) -> Steps[None]:
    """A10 patient arriving: SCHEDULED steps of the patient become ARRIVED."""
    patient_id = yield from state.resolve(change.patient_id)
    for entry_id in sorted((yield from state.members(patient_id))):
        if state.status(entry_id) == _SCHEDULED:
            state.set_status(entry_id, _ARRIVED)


def _merge(state: PatientState, change: PatientChange, *, keep_prior_record: bool) -> Steps[int]:
    """A40 merge / A47 change of identifier: MRG-1's entries move to PID-3 (§3.3.40, §3.3.47)."""
    surviving, prior = change.patient_id, change.prior_id
    if prior == surviving:
        yield from _update(state, change)
        return 0
    record = Dataset()
    if keep_prior_record:
        overlay(record, (yield from state.record(prior)) or Dataset())
    overlay(record, (yield from state.record(surviving)) or Dataset())
    overlay(record, change.attributes)
    record.PatientID = surviving
    state.set_record(surviving, record)
    state.set_record(prior, None)
    moving = sorted((yield from state.members(prior)))
    for entry_id in moving:
        yield from state.move_entry(entry_id, prior, surviving)
    for entry_id in sorted((yield from state.members(surviving))):
        state.overlay_entry(entry_id, record)
    state.set_alias(prior, surviving)
    state.set_alias(surviving, None)
    yield from _carry_aliases(state, prior, surviving)
    return len(moving)


def _carry_aliases(state: PatientState, prior: str, surviving: str) -> Steps[None]:
    """The old IDs merged into ``prior`` before are now aliases of ``surviving`` (each keeps
    the life it has left), so that every alias is one hop; at most ``MAX_MERGED_IDS``."""
    aliases = yield from state.aliases((yield from state.merged(prior)))
    followers = {old for old, to in aliases.items() if to == prior}
    for old in sorted(followers - {surviving}):
        state.move_alias(old, surviving)
    aliases = yield from state.aliases((yield from state.merged(surviving)))
    kept = {old for old, to in aliases.items() if to == surviving}
    carried = (kept | followers | {prior}) - {surviving}
    if len(carried) > MAX_MERGED_IDS:
        raise MappingError(
            ErrorCode.APPLICATION_INTERNAL_ERROR,
            "MRG-1",
            f"the surviving patient would carry {len(carried)} merged identifiers, more than "
            f"the {MAX_MERGED_IDS} the broker keeps; nothing changed",
        )
    state.set_merged(surviving, carried)
    state.set_merged(prior, set())


def _with_patient(state: PatientState, change: OrderChange) -> Steps[OrderChange]:
    if not change.entries:
        return change
    entries = []
    for ds in change.entries:
        entries.append((yield from _entry(state, ds)))
    return dataclasses.replace(change, entries=tuple(entries))


def _entry(state: PatientState, entry: Entry) -> Steps[Entry]:
    """An order's entry with the surviving Patient ID and the patient record overlaid
    (every element of the record but Patient ID replaces the entry's, PS3.4 K.6.1.2.2)."""
    given = _patient_id(entry)
    if not given:
        return entry
    patient_id = yield from state.resolve(given)
    record = yield from state.record(patient_id)
    if record is None and patient_id == given:
        return entry
    result = dict(entry_json(entry))  # a new top level; nested values are never modified
    result[_PATIENT_ID] = {"vr": "LO", "Value": [patient_id]}
    if record is not None:
        result.update((k, v) for k, v in dataset_json(record).items() if k != _PATIENT_ID)
    return MappedEntry(result)


def _patient_id(entry: Entry) -> str:
    values = entry_json(entry).get(_PATIENT_ID, {}).get("Value") or [""]
    return str(values[0]).strip()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

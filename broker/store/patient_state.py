"""The Redis state one ADT or order message reads about patients, kept in memory.

Reads go through :class:`PatientState`, which remembers a guard (sha1 of the
value) for everything it read. Each read is an operation in steps
(``broker.store.steps``: ``value = yield from state.record(pid)``), so that the
messages handled together share its round trip; a value read before is answered
without one. Changes are made to the in-memory copies and turned into Redis
commands by :meth:`PatientState.commands`, for one guarded script call
(``broker.store.patients``). Keys come from the one key schema.

An alias written by a merge lives ``alias_ttl`` seconds; one moved to a new target
(a later merge of its target) keeps the life it has left (``SET … KEEPTTL``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from broker.common import jsontext
from broker.store.guards import Guard, GuardKind, members_digest, value_digest
from broker.store.keys import KeySchema
from broker.store.scripts import KeyList
from broker.store.steps import Command, Steps
from broker.worklist import dicom_json

__all__ = ["PatientState", "overlay"]

_PATIENT_ID_TAG = 0x00100020
_MAX_ALIAS_HOPS = 16  # A→B→C… chains from successive merges; a longer one is cut, never looped


def overlay(target: Dataset, record: Dataset) -> None:
    """Copy every element of ``record`` except PatientID onto ``target`` (record wins)."""
    for element in record:
        if element.tag != _PATIENT_ID_TAG:
            target[element.tag] = copy.deepcopy(element)


@dataclass
class _Entry:
    ds: Dataset
    refs: list[list[Any]]
    status: str | None  # the entry hash's status field (overlaid on ds when read)
    ds_changed: bool = False
    status_changed: bool = False
    moves: list[list[str]] = field(default_factory=list)


class PatientState:
    """Aliases, patient records, ``idx:pid`` sets and entries as read, with their guards."""

    def __init__(self, keys: KeySchema, alias_ttl: int) -> None:
        self._keys = keys
        self._alias_ttl = alias_ttl
        self._guards: dict[tuple[str, str], Guard] = {}
        self._aliases: dict[str, str | None] = {}
        self._alias_kept: set[str] = set()  # aliases moved to a new target: their TTL stays
        self._merged: dict[str, set[str]] = {}  # pid -> old IDs whose alias names it
        self._merged_writes: set[str] = set()
        self._records: dict[str, Dataset | None] = {}
        self._members: dict[str, set[str]] = {}
        self._entries: dict[str, _Entry | None] = {}
        self._alias_writes: dict[str, str | None] = {}
        self._record_writes: set[str] = set()
        self._times: dict[str, str | None] = {}  # pid -> newest ADT MSH-7 applied (guarded read)
        self._time_writes: dict[str, str] = {}

    @property
    def guards(self) -> list[Guard]:
        """One guard per value read."""
        return list(self._guards.values())

    @property
    def changed_entries(self) -> int:
        """How many entries the planned commands change."""
        return sum(1 for e in self._entries.values() if e and (e.ds_changed or e.status_changed))

    # -- reads ------------------------------------------------------------

    def _guard(self, kind: GuardKind, key: str, digest: str, hash_field: str = "") -> None:
        self._guards.setdefault((key, hash_field), Guard(kind, key, digest, hash_field))

    def prefetch_steps(
        self, patient_ids: Iterable[str], also_get: str | None = None
    ) -> Steps[bytes | None]:
        """Read the alias and record of several patients in one step.

        ``also_get`` is one more string key read in the same step (an order's dedup
        record), unguarded; its value is returned.
        """
        wanted = sorted(p for p in patient_ids if p not in self._aliases)
        commands = []
        for pid in wanted:
            commands.append(Command(("GET", self._keys.patient_alias(pid))))
            commands.append(Command(("HGET", self._keys.patient(pid), "ds")))
        if also_get is not None:
            commands.append(Command(("GET", also_get)))
        replies = yield commands
        pairs = replies[: 2 * len(wanted)]
        for pid, alias, record in zip(wanted, pairs[::2], pairs[1::2], strict=True):
            self._remember_alias(pid, alias)
            self._remember_record(pid, record)
        extra: bytes | None = replies[-1] if also_get is not None else None
        return extra

    def _remember_alias(self, pid: str, raw: bytes | None) -> None:
        self._guard(GuardKind.GET, self._keys.patient_alias(pid), value_digest(raw))
        self._aliases[pid] = raw.decode() if raw else None

    def _remember_record(self, pid: str, raw: bytes | None) -> None:
        self._guard(GuardKind.HGET, self._keys.patient(pid), value_digest(raw), "ds")
        self._records.setdefault(pid, Dataset.from_json(jsontext.loads(raw)) if raw else None)

    def newest(self, pid: str) -> Steps[str | None]:
        """The MSH-7 (UTC, ``broker.worklist.ordering``) of the newest ADT applied to ``pid``."""
        if pid not in self._times:
            key, hash_field = self._keys.patient_time(), self._keys.patient_field(pid)
            (raw,) = yield [Command(("HGET", key, hash_field))]
            self._guard(GuardKind.HGET, key, value_digest(raw), hash_field)
            self._times[pid] = raw.decode() if raw else None
        return self._times[pid]

    def set_newest(self, pid: str, earliest: str) -> Steps[None]:
        """Remember that an ADT sent at ``earliest`` (UTC) was applied to ``pid``."""
        current = yield from self.newest(pid)
        if current is None or earliest > current:
            self._times[pid] = earliest
            self._time_writes[pid] = earliest

    def alias(self, pid: str) -> Steps[str | None]:
        """The surviving ID recorded for ``pid`` by a merge, if any."""
        if pid not in self._aliases:
            (raw,) = yield [Command(("GET", self._keys.patient_alias(pid)))]
            self._remember_alias(pid, raw)
        return self._aliases[pid]

    def resolve(self, pid: str) -> Steps[str]:
        """Follow aliases to the live identifier (``pid`` itself when it has none)."""
        seen = {pid}
        current = pid
        for _ in range(_MAX_ALIAS_HOPS):
            target = yield from self.alias(current)
            if target is None or target in seen:
                return current
            seen.add(target)
            current = target
        return current

    def aliases(self, pids: Iterable[str]) -> Steps[dict[str, str | None]]:
        """The aliases of several IDs (:meth:`alias`), those not read yet in one step."""
        pids = list(pids)
        wanted = sorted(p for p in set(pids) if p not in self._aliases)
        if wanted:
            replies = yield [Command(("GET", self._keys.patient_alias(pid))) for pid in wanted]
            for pid, raw in zip(wanted, replies, strict=True):
                self._remember_alias(pid, raw)
        return {pid: self._aliases[pid] for pid in pids}

    def merged(self, pid: str) -> Steps[set[str]]:
        """The old IDs recorded as merged into ``pid`` (their aliases may have moved since)."""
        if pid not in self._merged:
            self._merged[pid] = yield from self._guarded_set(self._keys.merged_into(pid))
        return set(self._merged[pid])

    def _guarded_set(self, key: str) -> Steps[set[str]]:
        (raw,) = yield [Command(("SMEMBERS", key))]
        self._guard(GuardKind.MEMBERS, key, members_digest(raw))
        return {m.decode() for m in raw}

    def record(self, pid: str) -> Steps[Dataset | None]:
        """The patient record (attributes ADTs carried), or None."""
        if pid not in self._records:
            (raw,) = yield [Command(("HGET", self._keys.patient(pid), "ds"))]
            self._remember_record(pid, raw)
        return self._records[pid]

    def members(self, pid: str) -> Steps[set[str]]:
        """Entry ids of the patient (``idx:pid``), their entries read too."""
        if pid not in self._members:
            self._members[pid] = yield from self._guarded_set(self._keys.by_patient(pid))
            yield from self._load_entries(sorted(self._members[pid]))
        return self._members[pid]

    def _load_entries(self, ids: list[str]) -> Steps[None]:
        ids = [i for i in ids if i not in self._entries]
        if not ids:
            return
        rows = yield [Command(("HMGET", self._keys.entry(i), "ds", "idx", "status")) for i in ids]
        for entry_id, (ds, idx, status) in zip(ids, rows, strict=True):
            key = self._keys.entry(entry_id)
            self._guard(GuardKind.HGET, key, value_digest(ds), "ds")
            self._guard(GuardKind.HGET, key, value_digest(status), "status")
            if ds is None:  # removed by an order in between: the guard will notice
                self._entries[entry_id] = None
                continue
            self._entries[entry_id] = _Entry(
                Dataset.from_json(jsontext.loads(ds)),
                jsontext.loads(idx) if idx else [],
                status.decode() if status else None,
            )

    # -- changes ----------------------------------------------------------

    def set_record(self, pid: str, record: Dataset | None) -> None:
        self._records[pid] = record
        self._record_writes.add(pid)

    def set_alias(self, pid: str, target: str | None) -> None:
        """A new alias (with the full alias life), or none (``target`` None)."""
        self._aliases[pid] = target
        self._alias_writes[pid] = target
        self._alias_kept.discard(pid)

    def move_alias(self, pid: str, target: str) -> None:
        """Point an existing alias at another ID; it keeps the life it has left."""
        self.set_alias(pid, target)
        self._alias_kept.add(pid)

    def set_merged(self, pid: str, old_ids: set[str]) -> None:
        self._merged[pid] = set(old_ids)
        self._merged_writes.add(pid)

    def overlay_entry(self, entry_id: str, record: Dataset) -> None:
        entry = self._entries.get(entry_id)
        if entry is not None:
            overlay(entry.ds, record)
            entry.ds_changed = True

    def status(self, entry_id: str) -> str:
        """The entry's current SPS status (its status field, else the one in its dataset)."""
        entry = self._entries.get(entry_id)
        if entry is None:
            return ""
        if entry.status:
            return entry.status
        steps = entry.ds.get("ScheduledProcedureStepSequence") or [Dataset()]
        return str(steps[0].get("ScheduledProcedureStepStatus", ""))

    def set_status(self, entry_id: str, status: str) -> None:
        entry = self._entries.get(entry_id)
        if entry is not None:
            entry.status = status
            entry.status_changed = True

    def move_entry(self, entry_id: str, prior: str, surviving: str) -> Steps[None]:
        """Give an entry of ``prior`` the Patient ID ``surviving``, indexes included."""
        entry = self._entries.get(entry_id)
        self._members[prior].discard(entry_id)
        (yield from self.members(surviving)).add(entry_id)
        if entry is None:
            return
        entry.ds.PatientID = surviving
        old, new = self._keys.by_patient(prior), self._keys.by_patient(surviving)
        entry.refs = [["s", new] if ref == ["s", old] else ref for ref in entry.refs]
        entry.moves += [["SREM", old, entry_id], ["SADD", new, entry_id]]
        entry.ds_changed = True

    def commands(self, call: KeyList) -> list[list[str | int]]:
        """The Redis commands that write every change made to this state, each as
        ``[name, key position in call, args...]`` (``lua/patient.lua``)."""
        return [[name, call.add(key), *args] for name, key, *args in self._commands()]

    def _commands(self) -> list[list[str]]:
        out: list[list[str]] = []
        for entry_id, entry in sorted(self._entries.items()):
            if entry is None:
                continue
            key = self._keys.entry(entry_id)
            if entry.ds_changed:  # its other fields stay: mver names the order's mapping
                ds = dicom_json.dumps(entry.ds)
                out.append(["HSET", key, "ds", ds, "idx", jsontext.dumps(entry.refs)])
            if entry.status_changed and entry.status:
                out.append(["HSET", key, "status", entry.status])
            out += entry.moves
        for pid in sorted(self._record_writes):
            record = self._records[pid]
            if record is None:
                out.append(["DEL", self._keys.patient(pid)])
            else:
                ds = dicom_json.dumps(record)
                out.append(["HSET", self._keys.patient(pid), "ds", ds])
        ttl = str(self._alias_ttl)
        for pid, target in sorted(self._alias_writes.items()):
            key = self._keys.patient_alias(pid)
            if target is None:
                out.append(["DEL", key])
            elif pid in self._alias_kept:
                out.append(["SET", key, target, "KEEPTTL"])
            else:
                out.append(["SET", key, target, "EX", ttl])
        for pid in sorted(self._merged_writes):
            key = self._keys.merged_into(pid)
            out.append(["DEL", key])
            if self._merged[pid]:
                out += [["SADD", key, *sorted(self._merged[pid])], ["EXPIRE", key, ttl]]
        for pid, earliest in sorted(self._time_writes.items()):
            out.append(["HSET", self._keys.patient_time(), self._keys.patient_field(pid), earliest])
        return out

"""Decoded worklist entries, reused while their stored JSON and status are unchanged.

Decoding an entry's DICOM JSON (``dicom_json.dataset_from_json``) is the broker's largest
own cost on a station poll, and scanners poll the same entries again and
again. The store still reads every candidate's ``ds`` and ``status`` from Redis
on every query, so Redis stays the truth: a decoded ``Dataset`` is reused only
when both are byte for byte the ones it was decoded from; anything else (an
updated order, a status change by MPPS or the RIS) is decoded again and
replaces it. An entry that is gone from Redis is not read, so it is never
answered from here.

A cached ``Dataset`` is shared by every query and every association thread
that reads it, so nobody may change it once it is cached. Its readers only
read: ``broker.dicom.matching`` and ``broker.dicom.plan`` (``excluded``,
``sort_key``) look values up, ``broker.dicom.response.build_response`` puts
the entry's own text elements into its answers (nobody changes an answer either,
and pydicom's encoding only reads them) but copies person names (pydicom keeps
their encoded bytes) and sequence items, and ``mwl-broker explain`` only reads and
prints. The other readers
of entries (MPPS, retention, patients, import) decode their own copies.

Bounded by a count, least recently used first out (``broker.common.lru``: reads take
no lock, writes do); 0 turns it off. A reader may decline to fill it (``keep``):
the C-FIND service does for queries over many candidates. Decoding runs outside any lock, so two
threads may decode the same new version at once; the last one is kept.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from broker.common import jsontext
from broker.common.lru import LRU
from broker.worklist import dicom_json

__all__ = ["EntryCache", "decode_entry"]


def decode_entry(raw: bytes, status: bytes | None) -> Dataset:
    """An entry from its stored DICOM JSON, with its current SPS status overlaid.

    The status is kept apart in Redis so that a status change is one field write.
    """
    entry = dicom_json.dataset_from_json(jsontext.loads(raw))
    if status:
        seq = entry.get("ScheduledProcedureStepSequence")
        if not seq or len(seq) != 1:
            raise ValueError("a worklist entry holds exactly one Scheduled Procedure Step item")
        seq[0].ScheduledProcedureStepStatus = status.decode()
    return entry


class EntryCache:
    """Up to ``max_entries`` decoded entries by id, each with the bytes it came from."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be 0 (off) or more")
        self._max = max_entries
        self._items: LRU[str, tuple[bytes, bytes | None, Dataset]] | None = (
            LRU(max_entries) if max_entries else None
        )

    def __repr__(self) -> str:
        return f"EntryCache(max_entries={self._max}, held={len(self)})"

    @property
    def max_entries(self) -> int:
        """How many entries it holds at most (0: off)."""
        return self._max

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else 0

    def entry(
        self, entry_id: str, raw: bytes, status: bytes | None, *, keep: bool = True
    ) -> Dataset:
        """The entry stored as ``raw`` with ``status``: the cached one if it was decoded
        from exactly these bytes, else decoded now (and cached if ``keep``). Never
        mutate it."""
        if self._items is None:
            return decode_entry(raw, status)
        held = self._items.get(entry_id)
        if held is not None and held[0] == raw and held[1] == status:
            return held[2]
        entry = decode_entry(raw, status)
        if keep:
            self._items.put(entry_id, (raw, status, entry))
        return entry

    def discard(self, entry_id: str) -> None:
        """Forget an entry (it is gone from the store)."""
        if self._items is not None:
            self._items.discard(entry_id)

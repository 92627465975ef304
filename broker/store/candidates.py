"""Candidate selection: the ids of the entries a query may match, from the index keys.

Index sets (station, modality, patient, accession) are intersected, and a date
range is applied with the SPS Start Date sorted set, inside Redis: one
read-only Lua script (``lua/select_candidates.lua``) returns only the ids that
pass, so a station poll moves its day's ids over the wire, not every id of the
station. Never a scan.

A query that names no index set (only a date range, or nothing) can instead be read
day by day (``days``): its undated ids first, then each day of the date index in
ascending order, read in bounded chunks, so that a search sorted by start date stops
reading once its page is certain (``broker.services.worklist``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import redis

from broker.errors import store_error
from broker.store import scripts
from broker.store.keys import KeySchema
from broker.store.scripts import ScriptRunner
from broker.worklist.model import CandidateCriteria

__all__ = ["UNDATED", "CandidateSelector"]

_SELECT = scripts.load("select_candidates")
_UNDATED = scripts.load("select_undated")
_CHUNK = 2000  # ids read at a time by ``days``
UNDATED = 0  # the "day" of the entries the date index does not hold


class CandidateSelector:
    """Entry ids that may match a query, narrowed through the index keys."""

    def __init__(self, client: redis.Redis, keys: KeySchema) -> None:
        self._redis = client
        self._scripts = ScriptRunner(client)  # a read-only script: no WAIT to configure
        self._keys = keys

    def __repr__(self) -> str:
        return f"CandidateSelector(prefix={self._keys.prefix!r})"

    def set_keys(self, criteria: CandidateCriteria) -> list[str]:
        """The index sets a query's criteria name (station, modality, patient, accession)."""
        k = self._keys
        return [
            key_of(value)
            for value, key_of in (
                (criteria.station_aet, k.by_station),
                (criteria.modality, k.by_modality),
                (criteria.patient_id, k.by_patient),
                (criteria.accession_number, k.by_accession),
            )
            if value
        ]

    def count(self, criteria: CandidateCriteria) -> int:
        """How many candidates a query that names no index set has (``days`` reads them):
        one ZCOUNT or SCARD, no ids read."""
        if self.set_keys(criteria):
            raise ValueError("count: the criteria name an index set")
        low, high = _range(criteria)
        try:
            if _has_dates(criteria):
                return int(self._redis.zcount(self._keys.by_date(), low, high))
            return int(self._redis.scard(self._keys.all_entries()))
        except redis.RedisError as e:
            raise store_error(e) from e

    def days(
        self, criteria: CandidateCriteria, chunk: int = _CHUNK
    ) -> Iterator[tuple[int, list[str]]]:
        """The candidates of a query that names no index set, a day at a time: first the
        ids the date index does not hold (day ``UNDATED``; none under a date range), then
        each day of the date index (YYYYMMDD, ascending) within the criteria's range, each
        day's ids sorted. The index is read ``chunk`` ids at a time (a day larger than a
        chunk over several reads), so a reader that stops early reads little. Not one
        snapshot: an id is given at most once, but an entry whose date changes while the
        days are read may be missed or found under its old day (its entry, read after,
        is the new one), as an entry removed meanwhile is skipped when read."""
        if self.set_keys(criteria):
            raise ValueError("days: the criteria name an index set")
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        low, high = _range(criteria)
        given: set[str] = set()
        try:
            if not _has_dates(criteria):
                undated = sorted(self._undated(chunk))
                given.update(undated)
                if undated:
                    yield UNDATED, undated
            for day, ids in self._dated(low, high, chunk):
                fresh = sorted(set(ids) - given)
                given.update(fresh)
                if fresh:
                    yield day, fresh
        except redis.RedisError as e:
            raise store_error(e) from e

    def _undated(self, chunk: int) -> Iterator[str]:
        """The ids of every entry but those of the date index (a subset of every entry's:
        the scripts add and remove both together). Looked for only when the two sets'
        sizes differ; then every id is examined inside Redis, ``chunk`` at a time
        (``lua/select_undated.lua``: SSCAN, ZMSCORE), and only the undated move."""
        k = self._keys
        pipe = self._redis.pipeline(transaction=True)  # both counts at one moment
        pipe.scard(k.all_entries())
        pipe.zcard(k.by_date())
        entries, dated = pipe.execute()
        if int(entries) <= int(dated):
            return
        cursor = "0"
        while True:
            step = self._scripts.run(_UNDATED, [k.all_entries(), k.by_date()], [cursor, chunk])
            cursor = _text(step[0])
            yield from (_text(i) for i in step[1])
            if cursor == "0":
                return

    def _dated(self, low: str, high: str, chunk: int) -> Iterator[tuple[int, list[str]]]:
        """The date index's ids from score ``low`` to ``high``, a day at a time: each read
        starts at the day the previous one ended in, past the ids of it already read."""
        first, skip = low, 0  # the next read: from this score, past ``skip`` ids of it
        day = UNDATED
        ids: list[str] = []
        while True:
            rows = cast(
                list[tuple[bytes, float]],
                self._redis.zrangebyscore(
                    self._keys.by_date(), first, high, start=skip, num=chunk, withscores=True
                ),
            )
            for member, score in rows:
                if int(score) != day:
                    if ids:
                        yield day, ids
                    day, ids = int(score), []
                ids.append(_text(member))
            if len(rows) < chunk:
                break
            first, skip = str(day), len(ids)
        if ids:
            yield day, ids

    def ids(self, criteria: CandidateCriteria) -> list[str]:
        """The candidate ids, sorted (as text, so the order does not depend on Redis's locale)."""
        k = self._keys
        set_keys = self.set_keys(criteria)
        has_dates = _has_dates(criteria)
        low, high = _range(criteria)
        try:
            if set_keys:
                args = [low, high, "1" if has_dates else "0"]
                found = self._scripts.run(_SELECT, [*set_keys, k.by_date()], args)
                return sorted(_text(i) for i in found)
            if has_dates:
                ranged = cast(list[bytes], self._redis.zrangebyscore(k.by_date(), low, high))
                return [_text(i) for i in ranged]
            return sorted(_text(i) for i in self._redis.smembers(k.all_entries()))
        except redis.RedisError as e:
            raise store_error(e) from e


def _has_dates(criteria: CandidateCriteria) -> bool:
    return criteria.date_from is not None or criteria.date_to is not None


def _range(criteria: CandidateCriteria) -> tuple[str, str]:
    """The date index's score range of the criteria's SPS Start Date range."""
    low = str(int(criteria.date_from)) if criteria.date_from else "-inf"
    high = str(int(criteria.date_to)) if criteria.date_to else "+inf"
    return low, high


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

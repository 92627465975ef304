"""Candidate selection: the ids of the entries a query may match, from the index keys.

Index sets (station, modality, patient, accession) are intersected, and a date
range is applied with the SPS Start Date sorted set, inside Redis: one
read-only Lua script (``lua/select_candidates.lua``) returns only the ids that
pass, so a station poll moves its day's ids over the wire, not every id of the
station. Never a scan.
"""

from __future__ import annotations

from typing import cast

import redis

from broker.errors import store_error
from broker.store import scripts
from broker.store.keys import KeySchema
from broker.store.scripts import ScriptRunner
from broker.worklist.model import CandidateCriteria

__all__ = ["CandidateSelector"]

_SELECT = scripts.load("select_candidates")


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

    def ids(self, criteria: CandidateCriteria) -> list[str]:
        """The candidate ids, sorted (as text, so the order does not depend on Redis's locale)."""
        k = self._keys
        set_keys = self.set_keys(criteria)
        has_dates = criteria.date_from is not None or criteria.date_to is not None
        low = str(int(criteria.date_from)) if criteria.date_from else "-inf"
        high = str(int(criteria.date_to)) if criteria.date_to else "+inf"
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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

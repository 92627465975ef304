"""Candidate selection: the ids of the entries a query may match, from the index keys.

Index sets (station, modality, patient, accession) are intersected, and a date
range is applied with the SPS Start Date sorted set, inside Redis: one
read-only Lua script returns only the ids that pass, so a station poll moves
its day's ids over the wire, not every id of the station. Never a scan.
"""

from __future__ import annotations

from typing import cast

import redis

from broker.errors import store_error
from broker.store.keys import KeySchema
from broker.worklist.model import CandidateCriteria

__all__ = ["CandidateSelector"]

# KEYS: one or more index sets, then the date zset. ARGV: low, high (YYYYMMDD, or
# -inf / +inf), and "1" when a date range is asked. Returns the ids in every set and,
# with a range, whose date score lies in [low, high] (an id without a score does not),
# unsorted. It starts from the smaller side: the intersection of the sets, filtered by
# ZMSCORE, or the ids in the range, filtered by SMISMEMBER on each set.
_SELECT_LUA = """
local nsets, zkey = #KEYS - 1, KEYS[#KEYS]
if ARGV[3] ~= '1' then
  return redis.call('SINTER', unpack(KEYS, 1, nsets))
end
local low, high = ARGV[1], ARGV[2]
local lo = low == '-inf' and -math.huge or tonumber(low)
local hi = high == '+inf' and math.huge or tonumber(high)
local function keep(ids, cmd, key, test)
  local out = {}
  for first = 1, #ids, 1000 do  -- unpack() has a limit on its values
    local last = math.min(first + 999, #ids)
    local replies = redis.call(cmd, key, unpack(ids, first, last))
    for i = first, last do
      if test(replies[i - first + 1]) then
        out[#out + 1] = ids[i]
      end
    end
  end
  return out
end
local smallest = math.huge
for i = 1, nsets do
  smallest = math.min(smallest, redis.call('SCARD', KEYS[i]))
end
if redis.call('ZCOUNT', zkey, low, high) < smallest then
  local ids = redis.call('ZRANGEBYSCORE', zkey, low, high)
  for i = 1, nsets do
    ids = keep(ids, 'SMISMEMBER', KEYS[i], function(member) return member == 1 end)
  end
  return ids
end
local ids = redis.call('SINTER', unpack(KEYS, 1, nsets))
return keep(ids, 'ZMSCORE', zkey, function(score)
  local s = score and tonumber(score)  -- false: the id has no date score
  return s and s >= lo and s <= hi
end)
"""


class CandidateSelector:
    """Entry ids that may match a query, narrowed through the index keys."""

    def __init__(self, client: redis.Redis, keys: KeySchema) -> None:
        self._redis = client
        self._keys = keys
        self._select = client.register_script(_SELECT_LUA)

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
                found = self._select(
                    keys=[*set_keys, k.by_date()],
                    args=[low, high, "1" if has_dates else "0"],
                    client=self._redis,
                )
                return sorted(_text(i) for i in found)
            if has_dates:
                ranged = cast(list[bytes], self._redis.zrangebyscore(k.by_date(), low, high))
                return [_text(i) for i in ranged]
            return sorted(_text(i) for i in self._redis.smembers(k.all_entries()))
        except redis.RedisError as e:
            raise store_error(e) from e


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

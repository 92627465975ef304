"""Optimistic guards: values read before a Lua script runs, re-checked inside it.

A change that depends on what is in Redis (overlaying a patient record on an
order's entries, moving a patient's entries on a merge) is computed in Python,
where pydicom writes the DICOM JSON, and applied by one script call. The
script first compares the sha1 of every value it was computed from with what
is there now; if another message changed any of them in between, the script
changes nothing and answers ``retry``, and the caller reads again. This is
Redis's WATCH made part of the atomic script, so the change and its dedup
record still commit together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DEDUP_EPILOGUE_LUA",
    "GUARD_LUA",
    "MESSAGE_PROLOGUE_LUA",
    "Guard",
    "GuardKind",
    "guard_payload",
    "members_digest",
    "value_digest",
]


class GuardKind(StrEnum):
    """How the guarded value is read."""

    GET = "get"  # a string key
    HGET = "hget"  # one field of a hash
    MEMBERS = "members"  # a set's members, sorted, joined by "\n"


@dataclass(frozen=True)
class Guard:
    """One value as read: its key (and hash field) and the sha1 of its bytes."""

    kind: GuardKind
    key: str
    digest: str
    field: str = ""


def value_digest(value: bytes | None) -> str:
    """sha1 hex of a value as Redis returns it; a missing value digests as empty."""
    return hashlib.sha1(value or b"", usedforsecurity=False).hexdigest()


def members_digest(members: Iterable[bytes]) -> str:
    """sha1 hex of a set's members as the guard script sees them (sorted, ``\\n``-joined)."""
    return value_digest(b"\n".join(sorted(members)))


def guard_payload(guards: Sequence[Guard]) -> list[list[str]]:
    """The guards as the script reads them: ``[kind, key, field, digest]``."""
    return [[g.kind.value, g.key, g.field, g.digest] for g in guards]


# A Lua prelude: ``guards_hold(p.guards)`` is false when any guarded value changed.
# Entry ids and patient keys are ASCII, so Lua's table.sort orders them as Python does.
GUARD_LUA = """
local function guards_hold(guards)
  for _, g in ipairs(guards or {}) do
    local v
    if g[1] == 'hget' then
      v = redis.call('HGET', g[2], g[3])
    elseif g[1] == 'get' then
      v = redis.call('GET', g[2])
    else
      local m = redis.call('SMEMBERS', g[2])
      table.sort(m)
      v = table.concat(m, '\\n')
    end
    if not v then v = '' end
    if redis.sha1hex(v) ~= g[4] then return false end
  end
  return true
end
"""


# Every message script starts the same way: decode the payload into ``p``;
# answer {"dup", record} if the message was applied before; answer {"retry"}
# if a guard no longer holds. Nothing has been written at either return.
MESSAGE_PROLOGUE_LUA = (
    GUARD_LUA
    + """
local p = cjson.decode(ARGV[1])
if p.dedup then
  local existing = redis.call('GET', p.dedup.key)
  if existing then return {'dup', existing} end
end
if not guards_hold(p.guards) then return {'retry'} end
"""
)

# ...and ends by recording the message's dedup record, in the same atomic call.
DEDUP_EPILOGUE_LUA = """
if p.dedup then redis.call('SET', p.dedup.key, p.dedup.value, 'EX', p.dedup.ttl) end
"""

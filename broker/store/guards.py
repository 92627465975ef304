"""Optimistic guards: values read before a Lua script runs, re-checked inside it.

A change that depends on what is in Redis (overlaying a patient record on an
order's entries, moving a patient's entries on a merge) is computed in Python,
where pydicom writes the DICOM JSON, and applied by one script call. The
script first compares the sha1 of every value it was computed from with what
is there now; if another message changed any of them in between, the script
changes nothing and answers ``retry``, and the caller reads again. This is
Redis's WATCH made part of the atomic script, so the change and its dedup
record still commit together. The check is Lua's ``guards_hold``
(``lua/lib/guards.lua``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from broker.store.scripts import KeyList

__all__ = [
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


def guard_payload(guards: Sequence[Guard], call: KeyList) -> list[list[str | int]]:
    """The guards as the script reads them: ``[kind, key position, field, digest]``, each
    key added to the script's KEYS ``call``."""
    return [[g.kind.value, call.add(g.key), g.field, g.digest] for g in guards]

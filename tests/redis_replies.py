"""Redis replies as the tests' clients get them: bytes, never decoded.

The tests' clients and the broker's own never set ``decode_responses``, so every reply is
bytes; redis-py types its replies for both modes (``bytes | str``, a stream as ``... | None``).
These helpers say so in one place, and fail on a reply that is not bytes.
"""

from __future__ import annotations

from typing import cast

import redis

StreamRows = list[tuple[bytes, dict[bytes, bytes]]]


def as_bytes(reply: object) -> bytes:
    """A reply (a value, a key, a member, a field) as the bytes it is."""
    assert isinstance(reply, bytes), type(reply)
    return reply


def bytes_or_none(reply: object) -> bytes | None:
    """A reply that may be nil (GET or HGET of a missing key or field)."""
    return None if reply is None else as_bytes(reply)


def as_text(reply: object) -> str:
    """A reply (a key, a member, a field) as text."""
    return as_bytes(reply).decode()


def stream_rows(client: redis.Redis, key: str | bytes) -> StreamRows:
    """Every entry of the stream at ``key``, oldest first (XRANGE key - +)."""
    rows = client.xrange(key)
    assert rows is not None
    return cast(StreamRows, rows)


def scored_members(client: redis.Redis, key: str | bytes) -> list[tuple[bytes, float]]:
    """Every member of the sorted set at ``key`` with its score, lowest first."""
    return cast(list[tuple[bytes, float]], client.zrange(key, 0, -1, withscores=True))

"""Whether the store takes writes now, for ``/readyz`` (and ``mwl-broker probe ready``).

A PING says Redis answers; a primary demoted to a replica is said by its ROLE
(``broker.store.sentinel.store_down``). What neither says is whether a write would be
taken: a replica a client was pointed at, a primary whose ``maxmemory`` is reached
with ``noeviction``, one that cannot persist (``MISCONF``), or one short of its
``min-replicas-to-write`` (``NOREPLICAS``). So the check writes: ``SET {p}:ready``
with a token and a 10 s time to live (one small key, whatever the load; it expires by
itself), and names what refused it. Redis's own error code is named, never a value:
the answer holds no patient data.
"""

from __future__ import annotations

import secrets

import redis

from broker.store.keys import KeySchema
from broker.store.sentinel import store_down

__all__ = ["PROBE_TTL_MS", "store_unready"]

PROBE_TTL_MS = 10_000

_REASONS = {
    "READONLY": "Redis is a read-only replica: writes are refused",
    "OOM": "Redis is full (maxmemory reached, no eviction): writes are refused",
    "MISCONF": "Redis cannot persist its data (MISCONF): writes are refused",
    "NOREPLICAS": "Redis has fewer replicas than min-replicas-to-write: writes are refused",
}


def store_unready(client: redis.Redis, keys: KeySchema) -> str | None:
    """Why the store cannot do the broker's work now, or None: it does not answer, it is
    a replica, or it refuses a tiny write (module docstring)."""
    down = store_down(client)
    if down is not None:
        return down
    try:
        client.set(keys.ready_probe(), secrets.token_hex(4), px=PROBE_TTL_MS)
    except redis.ResponseError as e:
        code = str(getattr(e, "status_code", None) or str(e).split(" ", 1)[0]).upper()
        return _REASONS.get(code, f"Redis refused a write ({code[:20] or 'an error'})")
    except (redis.RedisError, OSError):
        return "Redis does not answer"
    return None

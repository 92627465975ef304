"""Reading the audit stream back: newest first, filtered, bounded (``mwl-broker audit``).

The stream is read in pages with ``XREVRANGE``, newest first, from the newest record
back to ``since`` (stream ids are the Redis server's clock in milliseconds, so a time
bound is an id bound and costs nothing), until ``limit`` records matched or
``scan_limit`` were looked at.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import redis

from broker.audit.events import AuditEvent, AuditType, StoredEvent, from_fields
from broker.common.netaddr import Network, peer_ip
from broker.errors import StoreError

__all__ = ["AuditFilter", "read_events"]

_PAGE = 500


@dataclass(frozen=True)
class AuditFilter:
    """Which records to return: every given criterion must hold."""

    since: float | None = None  # epoch seconds
    types: frozenset[AuditType] = frozenset()
    ae: str | None = None  # calling AE title, exact (surrounding spaces ignored)
    network: Network | None = None  # the peer's address lies in it

    def matches(self, event: AuditEvent) -> bool:
        if self.types and event.type not in self.types:
            return False
        if self.ae is not None and event.ae.strip() != self.ae.strip():
            return False
        if self.network is not None:
            ip = peer_ip(event.address)
            if ip is None or ip.version != self.network.version or ip not in self.network:
                return False
        return True


def _entries(client: redis.Redis, stream: str, since: float | None) -> Iterator[StoredEvent]:
    """Every record, newest first, down to ``since``."""
    low = f"{int(since * 1000)}-0" if since is not None else "-"
    high = "+"
    while True:
        try:
            page = client.xrevrange(stream, max=high, min=low, count=_PAGE) or []
        except redis.RedisError as e:
            raise StoreError(f"cannot read the audit trail: {e}") from e
        for raw_id, fields in page:
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            stored = from_fields(entry_id, fields)
            if stored is not None:
                yield stored
            high = f"({entry_id}"
        if len(page) < _PAGE:
            return


def read_events(
    client: redis.Redis,
    stream: str,
    wanted: AuditFilter,
    *,
    limit: int,
    scan_limit: int = 1_000_000,
) -> list[StoredEvent]:
    """At most ``limit`` records that match ``wanted``, newest first."""
    found: list[StoredEvent] = []
    for looked, stored in enumerate(_entries(client, stream, wanted.since), start=1):
        if wanted.matches(stored.event):
            found.append(stored)
            if len(found) >= limit:
                break
        if looked >= scan_limit:
            break
    return found

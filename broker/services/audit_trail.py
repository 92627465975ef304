"""Read the audit trail, newest first (``broker.audit``); each reading is itself recorded
(PS3.15 A.5.3.2 Audit Log Used) with how many records were shown and what was asked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from broker.audit.events import AuditEvent, AuditType, StoredEvent
from broker.audit.stream import AuditFilter, read_events
from broker.audit.writer import NO_AUDIT, AuditSink

__all__ = ["AuditTrailService"]


class AuditTrailService:
    """Reads of the audit stream of one Redis."""

    def __init__(self, client: redis.Redis, stream: str, audit: AuditSink = NO_AUDIT) -> None:
        self._client = client
        self._stream = stream
        self._audit = audit

    def __repr__(self) -> str:
        return f"AuditTrailService(stream={self._stream!r})"

    def read(
        self, wanted: AuditFilter, *, limit: int, asked: Mapping[str, Any] | None = None
    ) -> list[StoredEvent]:
        """The newest ``limit`` records that ``wanted`` selects; ``asked`` (the filter as the
        reader gave it) goes into the record of this reading."""
        found = read_events(self._client, self._stream, wanted, limit=limit)
        details = {"shown": len(found), **(asked or {})}
        self._audit.record(AuditEvent(AuditType.AUDIT_READ, details=details))
        return found

"""Remove expired worklist entries and MPPS instances now (or say what would go).

The same purge the broker runs every ``retention_interval_seconds``
(``broker.store.retention``), with the settings' retention days; each run, a dry
run too (it lists entries), is on the audit trail with its counts.
"""

from __future__ import annotations

from broker.audit.events import AuditEvent, AuditType
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.store.retention import PurgeReport, Retention

__all__ = ["PurgeService"]


class PurgeService:
    """The retention purge on demand."""

    def __init__(self, retention: Retention, audit: AuditSink = NO_AUDIT) -> None:
        self._retention = retention
        self._audit = audit

    def __repr__(self) -> str:
        return f"PurgeService({self._retention!r})"

    def run(self, *, dry_run: bool = False) -> PurgeReport:
        """Purge (or, with ``dry_run``, only find) what the retention policy expires."""
        report = self._retention.run(dry_run=dry_run)
        self._audit.record(_audit_event(report))
        return report


def _audit_event(report: PurgeReport) -> AuditEvent:
    """The purge's record: what was (or would be) removed, counted."""
    entries = len(report.entries) if report.dry_run else report.removed_entries
    mpps = len(report.mpps) if report.dry_run else report.removed_mpps
    details = {"dry_run": report.dry_run, "entries": entries, "mpps": mpps}
    return AuditEvent(AuditType.PURGE, details=details)

"""``mwl-broker purge``: remove expired worklist entries and MPPS instances now.

The same purge the broker runs every ``retention_interval_seconds``
(``broker.store.retention``), with the settings' retention days. With
``--dry-run`` it only lists what would go. It prints counts by reason and, per
entry, its id, status, SPS start date and accession number: never a patient's
name. Works with the broker running or stopped (``broker.cli.connect``).
"""

from __future__ import annotations

import argparse

from broker.audit.events import AuditEvent, AuditType
from broker.cli.common import command_audit, command_options, command_settings, print_table
from broker.cli.connect import redis_for_command
from broker.store.retention import PurgeReport

__all__ = ["add_purge_parser", "run_purge"]

_REASONS = {
    "ended": "ended (COMPLETED, CANCELED, DISCONTINUED) longer ago than retention_ended_days",
    "stale": "never ended, SPS start date more than retention_stale_days ago",
}


def add_purge_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "remove expired worklist entries and MPPS instances (retention_* settings)"
    p = sub.add_parser(
        "purge",
        parents=[command_options()],
        help=text,
        description=(
            "Remove worklist entries whose step ended more than retention_ended_days ago or "
            "whose SPS start date passed more than retention_stale_days ago without the step "
            "ending, and MPPS instances unchanged for retention_mpps_days. Works while the "
            "broker runs."
        ),
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list what would be removed; remove nothing"
    )


def run_purge(args: argparse.Namespace) -> int:
    """Run the purge (or the dry run) and print what went; exit status 0."""
    from broker.app import build_retention, build_store

    settings = command_settings(args)
    with redis_for_command(settings) as conn:
        retention = build_retention(settings, build_store(settings, conn.client))
        report = retention.run(dry_run=args.dry_run)
        command_audit(settings, conn.client, "purge").record(_audit_event(report))
    _print(report)
    return 0


def _audit_event(report: PurgeReport) -> AuditEvent:
    """The purge's record: what was (or would be) removed, counted; a dry run too, as it
    lists entries."""
    entries = len(report.entries) if report.dry_run else report.removed_entries
    mpps = len(report.mpps) if report.dry_run else report.removed_mpps
    details = {"dry_run": report.dry_run, "entries": entries, "mpps": mpps}
    return AuditEvent(AuditType.PURGE, details=details)


def _print(report: PurgeReport) -> None:
    verb = "would remove" if report.dry_run else "removed"
    entries = len(report.entries) if report.dry_run else report.removed_entries
    instances = len(report.mpps) if report.dry_run else report.removed_mpps
    print(f"{verb} {entries} worklist entries and {instances} MPPS instances")
    for reason, text in _REASONS.items():
        print(f"  {reason}: {report.by_reason.get(reason, 0)}  ({text})")
    if not report.dry_run and report.removed_entries < len(report.entries):
        print(
            f"  {len(report.entries) - report.removed_entries} changed while the purge ran "
            "and were kept"
        )
    if report.entries:
        rows = [
            (i.reason, i.status or "-", i.start_date or "-", i.accession or "-", i.entry_id)
            for i in report.entries
        ]
        print_table(("REASON", "STATUS", "SPS DATE", "ACCESSION", "ENTRY"), rows)
    for uid in report.mpps:
        print(f"MPPS {uid}")

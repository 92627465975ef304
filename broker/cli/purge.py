"""``mwl-broker purge``: remove expired worklist entries and MPPS instances now.

The same purge the broker runs every ``retention_interval_seconds``
(``broker.store.retention``), with the settings' retention days. With
``--dry-run`` it only lists what would go. It prints counts by reason and, per
entry, its id, status, SPS start date and accession number: never a patient's
name. Works with the broker running or stopped (``broker.cli.connect``); the work
is ``broker.services.purge``.
"""

from __future__ import annotations

import argparse

from broker.cli.common import Command, Subparsers, command_services, print_table
from broker.cli.options import command_options, settings_from
from broker.store.retention import PurgeReport

__all__ = ["COMMAND"]

_REASONS = {
    "ended": "ended (COMPLETED, CANCELED, DISCONTINUED) longer ago than retention_ended_days",
    "stale": "never ended, SPS start date more than retention_stale_days ago",
}


def add_parser(sub: Subparsers) -> None:
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


def run(args: argparse.Namespace) -> int:
    """Run the purge (or the dry run) and print what went; exit status 0."""
    settings = settings_from(args)
    with command_services(settings, "purge") as (services, _):
        report = services.purge.run(dry_run=args.dry_run)
    _print(report)
    return 0


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


COMMAND = Command("purge", add_parser, run)

"""``mwl-broker backup FILE`` and ``mwl-broker restore FILE``.

The work is ``broker.services.backup``; the file's format is
``broker.services.backup_file``. What is printed is counts by kind and the file's
path: never a value from the file.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from broker.cli.common import Command, Subparsers, command_services, when
from broker.cli.options import command_options, settings_from

__all__ = ["BACKUP", "RESTORE"]

_BACKUP = (
    "Write the broker's data to FILE: worklist entries with their order states and "
    "resend records, patients and aliases, MPPS instances, mapping versions, console users, "
    "API token hashes and the status messages queued for the RIS. Runs while the broker "
    "runs (each order, patient and instance is read whole; the file is not one instant "
    "across them). FILE holds patient data and "
    "password hashes: it is written with mode 0600, under a temporary name first, and "
    "renamed when complete. The message log and the audit trail are not in it."
)
_RESTORE = (
    "Check FILE whole, then write its data into this broker's Redis (stop the brokers "
    "that use it first). Entry ids, indexes and pseudonyms are computed again, so the "
    "broker may have another redis_key_secret. Refused when the Redis holds data already, "
    "unless --replace; if writing fails, what was written is removed again."
)


def _add_backup(sub: Subparsers) -> None:
    p = sub.add_parser("backup", parents=[command_options()], help="write the data to a file")
    p.description = _BACKUP
    p.add_argument("file", type=Path, metavar="FILE", help="the backup file to write")


def _add_restore(sub: Subparsers) -> None:
    p = sub.add_parser("restore", parents=[command_options()], help="restore a backup file")
    p.description = _RESTORE
    p.add_argument("file", type=Path, metavar="FILE", help="the backup file to read")
    p.add_argument(
        "--replace",
        action="store_true",
        help="first remove the worklist, patients, MPPS instances, mapping versions, users, "
        "tokens and sessions this Redis holds (the message log and audit trail stay)",
    )


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{kind}: {n}" for kind, n in sorted(counts.items())) or "nothing"


def run_backup(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with command_services(settings, "backup") as (services, label):
        print(f"Redis: {label}")
        result = services.backup.backup(args.file)
    print(f"written: {args.file} ({_counts(result.counts)})")
    for reason, n in sorted(result.skipped.items()):
        print(f"  left out: {n} {reason}")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with command_services(settings, "restore") as (services, label):
        print(f"Redis: {label}")
        result = services.backup.restore(
            args.file,
            replace=args.replace,
            removing=lambda present: print(f"file checked; removing first: {_counts(present)}"),
        )
    header = result.header
    print(f"restored: {args.file} (format {header.version}, written by mwl-broker "
          f"{header.broker} on {when(header.created)})")  # fmt: skip
    print(f"  records: {_counts(header.counts)}")
    if not result.same_secret:
        print("  the backup was made under another redis_key_secret: keys computed anew")
    for reason, n in sorted(result.skipped.items()):
        print(f"  left out: {n} {reason}")
    return 0


BACKUP = Command("backup", _add_backup, run_backup)
RESTORE = Command("restore", _add_restore, run_restore)

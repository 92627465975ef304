"""``mwl-broker import DIR``: load a DCMTK ``wlmscpfs`` or Orthanc worklist folder.

Works with the broker running (it shares the broker's Redis, so scanners see
the entries at once) or stopped; see ``broker.cli.connect`` and
``broker.services.importer``.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

from broker.cli.common import Command, Subparsers, command_services
from broker.cli.options import command_options, settings_from
from broker.errors import BrokerError
from broker.services.importer import FileOutcome, FileReport

__all__ = ["COMMAND"]


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "import",
        parents=[command_options()],
        help="import a DCMTK wlmscpfs or Orthanc worklist folder (.wl files)",
        description=(
            "Read every .wl file (and any other DICOM Part-10 file) under DIR, sub-folders "
            "included, and put each Scheduled Procedure Step on the worklist. Importing the "
            "same files again updates their entries. Works while the broker runs. Exit "
            "status 1 if any worklist file could not be imported."
        ),
    )
    p.add_argument("folder", type=Path, metavar="DIR", help="the worklist folder")
    p.add_argument("--dry-run", action="store_true", help="read and check the files; write nothing")


def _line(report: FileReport, dry_run: bool) -> str:
    verb = report.outcome.value
    if dry_run and report.outcome in (FileOutcome.IMPORTED, FileOutcome.UPDATED):
        verb = "would be " + verb
    return f"{report.name}: {verb}: {report.detail.removeprefix('(dry run) ')}"


def run(args: argparse.Namespace) -> int:
    """Import the folder and print one line per file; the exit status is 1 on any failure."""
    folder: Path = args.folder
    if not folder.is_dir():
        raise BrokerError(f"{folder} is not a folder")
    settings = settings_from(args)
    # pydicom logs what it warns about; the report says it once, per file.
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)

    counts: Counter[FileOutcome] = Counter()
    with command_services(settings, "import") as (services, label):
        for report in services.importer.run(folder, dry_run=args.dry_run):
            counts[report.outcome] += 1
            print(_line(report, args.dry_run), flush=True)
            for note in report.notes:
                print(f"  note: {note}")
    summary = ", ".join(f"{counts[o]} {o.value}" for o in FileOutcome if counts[o])
    prefix = "dry run, nothing written: " if args.dry_run else ""
    print(f"{prefix}{summary or 'no file found'} (into {label})")
    return 1 if counts[FileOutcome.SKIPPED] else 0


COMMAND = Command("import", add_parser, run)

"""``mwl-broker explain``: why does a scanner (not) see an order?

The entries of an accession number (or a patient ID) are run through the very
checks a C-FIND from that scanner goes through (``broker.dicom.plan``): its
profile, the station scope, the profile's defaults, hidden statuses and each
key of the query the scanner is assumed to send. The assumed query is a
station poll: Scheduled Station AE Title = the scanner's AE title and today's
SPS Start Date, unless the options say otherwise (``--station '*'``,
``--date none``...). With ``--address`` the association's acceptance policy is
checked for that source address too; without it, only whether the AE title
may connect from somewhere. Works while the broker runs; nothing is changed.
"""

from __future__ import annotations

import argparse

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from broker.cli.common import Command, Subparsers, command_services
from broker.cli.options import command_options, settings_from
from broker.dicom.profiles import ScannerProfile
from broker.services.worklist import ExplainRequest, Explanation

__all__ = ["COMMAND"]


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "explain",
        parents=[command_options()],
        help="say why a scanner does or does not see an order",
        description=__doc__.split("\n\n", 1)[1].replace("``", "'") if __doc__ else None,
    )
    p.add_argument("--aet", required=True, metavar="AET", help="the scanner's calling AE title")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--accession", metavar="NUMBER", help="the order's Accession Number")
    which.add_argument("--patient-id", metavar="ID", help="every entry of this Patient ID")
    p.add_argument(
        "--address", metavar="IP", help="the scanner's source address (default: not checked)"
    )
    p.add_argument(
        "--station", metavar="AET", help="Scheduled Station AE Title queried (default: --aet)"
    )
    p.add_argument(
        "--date",
        metavar="DATE",
        help="SPS Start Date queried: YYYYMMDD, a range A-B, or 'none' (default: today)",
    )
    p.add_argument("--modality", metavar="CODE", help="Modality queried (default: none)")


def run(args: argparse.Namespace) -> int:
    """Print the explanation; exit status 0 if the scanner sees an entry, else 1."""
    settings = settings_from(args)
    request = ExplainRequest(
        args.aet, args.accession, args.patient_id, args.address, args.station, args.date,
        args.modality,
    )  # fmt: skip
    with command_services(settings, "explain") as (services, _):
        found = services.worklist.explain(request)
    if found.profile is None:
        print(f"Scanner {args.aet}: {found.refusal}")
    else:
        print(f"Scanner {args.aet}: {_describe(found.profile, found)}")
    print(f"Query assumed: {_describe_query(found.query)}")
    if not found.entries:
        what = f"accession {args.accession}" if args.accession else f"patient ID {args.patient_id}"
        print(
            f"No worklist entry has {what}: the order has not arrived, was taken off the "
            "worklist (cancel, hold, purge), or its mapping gave another value; "
            "'mwl-broker messages list' shows what was received."
        )
        return 1
    for entry, reason in zip(found.entries, found.reasons, strict=True):
        print(f"Entry {_describe_entry(entry)}:")
        if reason is None:
            print(f"  SEEN by {args.aet} with this query")
        else:
            for line in reason:
                print(f"  NOT SEEN: {line}")
    return 0 if found.seen else 1


def _describe(profile: ScannerProfile, found: Explanation) -> str:
    name = "the default profile" if profile.ae_title == "*" else f"[scanners.{profile.ae_title}]"
    if profile.ae_title == "*" and not found.profiled:
        name = "no profile (sees every station)"
    parts = [name]
    if profile.stations is not None:
        parts.append(f"stations {', '.join(sorted(profile.stations))}")
    if profile.date_window is not None:
        parts.append(f"date window {profile.date_window[0]:+d}..{profile.date_window[1]:+d} days")
    if profile.modality:
        parts.append(f"modality {profile.modality}")
    parts.append(f"hides {', '.join(sorted(found.hidden)) or 'nothing'}")
    return "; ".join(parts)


def _describe_query(query: Dataset) -> str:
    step = query.ScheduledProcedureStepSequence[0]
    shown = [f"{e.keyword}={e.value or '(any)'}" for e in step]
    return ", ".join(shown) + " (--station, --date, --modality change it)"


def _describe_entry(entry: Dataset) -> str:
    seq = entry.get("ScheduledProcedureStepSequence")
    step = seq[0] if seq else Dataset()

    def get(ds: Dataset, keyword: str) -> str:
        value = ds.get(keyword, "")
        if isinstance(value, MultiValue | list):
            return ", ".join(str(v) for v in value) or "-"
        return str(value) or "-"

    return (
        f"accession {get(entry, 'AccessionNumber')}, SPS {get(step, 'ScheduledProcedureStepID')}"
        f", station {get(step, 'ScheduledStationAETitle')}, modality {get(step, 'Modality')}"
        f", start {get(step, 'ScheduledProcedureStepStartDate')}"
        f" {get(step, 'ScheduledProcedureStepStartTime')}"
        f", status {get(step, 'ScheduledProcedureStepStatus')}"
    )


COMMAND = Command("explain", add_parser, run)

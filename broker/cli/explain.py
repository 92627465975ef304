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

from broker.cli.common import Command, Subparsers, command_services
from broker.cli.options import command_options, settings_from
from broker.services.explain_text import explanation_lines, record_explain
from broker.services.worklist import ExplainRequest

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
        record_explain(services.audit, request, found)
    hint = " (--station, --date, --modality change it)"
    for line in explanation_lines(request, found, hint=hint):
        print(line)
    return 0 if found.seen else 1


COMMAND = Command("explain", add_parser, run)

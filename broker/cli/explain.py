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

The accession number or patient ID is read from standard input (the first line)
or asked for at the terminal, never taken from the command line, where every
user of the host sees it in the process list.
"""

from __future__ import annotations

import argparse
import sys

from broker.cli.common import Command, Subparsers, command_services
from broker.cli.options import command_options, settings_from
from broker.errors import BrokerError
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
    for option, what in (("--accession", "the order's Accession Number"),
                         ("--patient-id", "every entry of a Patient ID")):  # fmt: skip
        which.add_argument(
            option, nargs="?", const="-", metavar="-",
            help=f"{what}, read from standard input or asked for (never on the command line)",
        )  # fmt: skip
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
    option = "--accession" if args.accession is not None else "--patient-id"
    value = _identifier(option, args.accession if args.accession is not None else args.patient_id)
    accession, patient_id = (value, None) if option == "--accession" else (None, value)
    request = ExplainRequest(
        args.aet, accession, patient_id, args.address, args.station, args.date, args.modality
    )
    with command_services(settings, "explain") as (services, _):
        found = services.worklist.explain(request)
        record_explain(services.audit, request, found)
    hint = " (--station, --date, --modality change it)"
    for line in explanation_lines(request, found, hint=hint):
        print(line)
    return 0 if found.seen else 1


def _identifier(option: str, given: str) -> str:
    """The accession number or patient ID: the first line of standard input, or typed."""
    if given != "-":
        raise BrokerError(
            f"{option}: identifiers are not taken from the command line (every user of this "
            f"host sees it in the process list); give {option} alone and type it, or pipe it "
            "on standard input"
        )
    if sys.stdin.isatty():
        line = input(f"{option.removeprefix('--').replace('-', ' ')}: ")
    else:
        line = sys.stdin.readline()
    value = line.strip()
    if not value:
        raise BrokerError(f"{option}: standard input holds no identifier")
    return value


COMMAND = Command("explain", add_parser, run)

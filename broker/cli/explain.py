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
import datetime as dt

from pydicom import config as dicom_config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from broker.cli.common import command_options, command_settings
from broker.cli.connect import redis_for_command
from broker.common.clock import SYSTEM_CLOCK, local_date
from broker.dicom.find import WorklistFindService
from broker.dicom.profiles import ProfileSet, ScannerProfile, site_zone
from broker.settings import Settings
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria

__all__ = ["add_explain_parser", "run_explain"]


def add_explain_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def run_explain(args: argparse.Namespace) -> int:
    """Print the explanation; exit status 0 if the scanner sees an entry, else 1."""
    settings = command_settings(args)
    zone = site_zone(settings.site_timezone)
    query = _query(args, local_date(SYSTEM_CLOCK, zone))
    with redis_for_command(settings) as conn:
        from broker.app import build_store

        store = build_store(settings, conn.client)
        criteria = (
            CandidateCriteria(accession_number=args.accession)
            if args.accession
            else CandidateCriteria(patient_id=args.patient_id)
        )
        entries = list(store.candidates(criteria))
    profiles = ProfileSet.parse(
        settings.dicom_scanners, allow_unknown=settings.dicom_allow_unknown_callers
    )
    service = _service(settings, store, profiles)
    profile, reasons = service.explain(query, entries, args.aet, args.address)
    if profile is None:
        print(f"Scanner {args.aet}: {_refused(profiles, args.aet, args.address)}")
    else:
        print(f"Scanner {args.aet}: {_describe(profile, settings)}")
    print(f"Query assumed: {_describe_query(query)}")
    if not entries:
        what = f"accession {args.accession}" if args.accession else f"patient ID {args.patient_id}"
        print(
            f"No worklist entry has {what}: the order has not arrived, was taken off the "
            "worklist (cancel, hold, purge), or its mapping gave another value; "
            "'mwl-broker messages list' shows what was received."
        )
        return 1
    seen = 0
    for entry, reason in zip(entries, reasons, strict=True):
        print(f"Entry {_describe_entry(entry)}:")
        if reason is None:
            seen += 1
            print(f"  SEEN by {args.aet} with this query")
        else:
            for line in reason:
                print(f"  NOT SEEN: {line}")
    return 0 if seen else 1


def _service(settings: Settings, store: WorklistStore, profiles: ProfileSet) -> WorklistFindService:
    return WorklistFindService(
        store,
        max_answers=settings.dicom_max_answers,
        character_set=settings.dicom_character_set,
        pn_case_insensitive=settings.dicom_pn_case_insensitive,
        hidden_statuses=frozenset(settings.dicom_hidden_statuses),
        profiles=profiles,
        zone=site_zone(settings.site_timezone),
    )


def _query(args: argparse.Namespace, today: dt.date) -> Dataset:
    station = args.aet if args.station is None else args.station
    date = today.strftime("%Y%m%d") if args.date is None else args.date
    if date.lower() == "none":
        date = ""
    step = Dataset()
    for keyword, value in (
        ("ScheduledStationAETitle", station),
        ("ScheduledProcedureStepStartDate", date),
        ("Modality", args.modality or ""),
    ):
        tag = tag_for_keyword(keyword)
        assert tag is not None
        step.add(DataElement(tag, dictionary_VR(tag), value, validation_mode=dicom_config.IGNORE))
    query = Dataset()
    query.AccessionNumber = ""
    query.PatientID = ""
    query.ScheduledProcedureStepSequence = [step]
    return query


def _refused(profiles: ProfileSet, aet: str, address: str | None) -> str:
    """Why the association would be rejected (the acceptance policy's own words)."""
    refusal = None if address is None else profiles.decide(aet, address).refusal
    if refusal is None:  # no address given: refused from every address
        return (
            "its association would be rejected: no [scanners] table of its own while "
            "dicom_allow_unknown_callers = false"
        )
    return f"its association from {address} would be rejected: {refusal.value}"


def _describe(profile: ScannerProfile, settings: Settings) -> str:
    name = "the default profile" if profile.ae_title == "*" else f"[scanners.{profile.ae_title}]"
    if profile.ae_title == "*" and not settings.dicom_scanners:
        name = "no profile (sees every station)"
    parts = [name]
    if profile.stations is not None:
        parts.append(f"stations {', '.join(sorted(profile.stations))}")
    if profile.date_window is not None:
        parts.append(f"date window {profile.date_window[0]:+d}..{profile.date_window[1]:+d} days")
    if profile.modality:
        parts.append(f"modality {profile.modality}")
    hidden = profile.hidden_statuses
    hidden = frozenset(settings.dicom_hidden_statuses) if hidden is None else hidden
    parts.append(f"hides {', '.join(sorted(hidden)) or 'nothing'}")
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

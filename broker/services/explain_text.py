"""An explanation (``WorklistService.explain``) in words: what ``mwl-broker explain``
prints and the console shows. Each entry is named by its accession, SPS ID, station,
modality, start and status; the reasons are the checks' own words. An explanation shows
entries of an order or a patient, so it is audited (:func:`record_explain`)."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from broker.audit.events import AuditEvent, AuditType
from broker.audit.writer import AuditSink
from broker.dicom.profiles import ScannerProfile
from broker.services.worklist import ExplainRequest, Explanation

__all__ = [
    "describe_entry",
    "describe_profile",
    "describe_query",
    "explanation_lines",
    "record_explain",
]


def record_explain(
    audit: AuditSink, request: ExplainRequest, found: Explanation, *, by: str = ""
) -> None:
    """The explanation's ``entry-read`` record: ``by`` the user, the scanner's AE title, what
    named the entries (an entry id is recorded; an accession number or a patient ID never),
    how many were shown and how many the scanner sees."""
    named = "entry_id" if request.entry_id else "accession" if request.accession else "patient_id"
    details = {"view": "explain", "named_by": named, "entries": len(found.entries),
               "seen": found.seen, "scanner": request.aet}  # fmt: skip
    event = AuditEvent(
        AuditType.ENTRY_READ, user=by, target=request.entry_id or "", details=details
    )
    audit.record(event)


def explanation_lines(request: ExplainRequest, found: Explanation, *, hint: str = "") -> list[str]:
    """The explanation as lines of text; ``hint`` follows the assumed query (the CLI names
    its options there)."""
    aet = request.aet
    if found.profile is None:
        lines = [f"Scanner {aet}: {found.refusal}"]
    else:
        lines = [f"Scanner {aet}: {describe_profile(found.profile, found)}"]
    lines.append(f"Query assumed: {describe_query(found.query)}{hint}")
    if not found.entries:
        if request.entry_id:
            what = "this id"
        elif request.accession:
            what = f"accession {request.accession}"
        else:
            what = f"patient ID {request.patient_id}"
        lines.append(
            f"No worklist entry has {what}: the order has not arrived, was taken off the "
            "worklist (cancel, hold, purge), or its mapping gave another value; "
            "the message log shows what was received."
        )
        return lines
    for entry, reason in zip(found.entries, found.reasons, strict=True):
        lines.append(f"Entry {describe_entry(entry)}:")
        if reason is None:
            lines.append(f"  SEEN by {aet} with this query")
        else:
            lines.extend(f"  NOT SEEN: {line}" for line in reason)
    return lines


def describe_profile(profile: ScannerProfile, found: Explanation) -> str:
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


def describe_query(query: Dataset) -> str:
    step = query.ScheduledProcedureStepSequence[0]
    return ", ".join(f"{e.keyword}={e.value or '(any)'}" for e in step)


def describe_entry(entry: Dataset) -> str:
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

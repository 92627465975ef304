"""The console's worklist search and its CSV export: the same matching as a C-FIND
(``WorklistService.search_as``), with the console's profile (every station, every status,
no default date window) and the DICOMweb search's vocabulary of keys
(``broker.dicom.qido``: keyword or tag, ``Sequence.Keyword`` paths, wild cards, ranges).
Each entry is answered as a summary (:class:`EntrySummary`) with its id.

The summaries hold patient data (names, ids, birth dates), so each request is audited once,
with the user: a search as a ``query`` (``via`` "console", its key names and how each was
matched, how many entries were answered: as a DICOMweb search is), an export as an
``entry-export`` (its key names, how many rows, whether it was cut). Never a value (but a
query's with ``log_phi``, as for every query)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from broker.audit.events import AuditEvent, AuditType, query_keys
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.dicom.qido import QidoError, QidoQuery, parse_query
from broker.errors import BrokerError
from broker.services.worklist import WorklistService

__all__ = ["EXPORT_ROWS", "EntrySummary", "SearchRefused", "console_query", "export_csv", "search"]

EXPORT_ROWS = 5000  # rows of one CSV export; past it the file says it was cut
_RESERVED = frozenset({"includefield", "fuzzymatching", "offset", "limit"})
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class SearchRefused(BrokerError):
    """A search criterion that cannot be used (400): names it and why, not its value."""


@dataclass(frozen=True, repr=False)
class EntrySummary:
    """One entry as the console's list shows it (patient data: no repr of values)."""

    entry_id: str
    accession: str
    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    station_aet: str
    modality: str
    scheduled_date: str
    scheduled_time: str
    procedure_description: str
    status: str
    mapping_version: int | None = None  # the mapping version that made it (None: unknown)

    def __repr__(self) -> str:
        return f"EntrySummary({self.entry_id!r})"


def console_query(
    criteria: Mapping[str, str], *, fuzzy: bool, offset: int, limit: int
) -> QidoQuery:
    """The search's criteria as a whole-entry QIDO query (``SearchRefused`` naming the
    criterion at fault)."""
    params: list[tuple[str, str]] = []
    for name, value in criteria.items():
        if name.strip().lower() in _RESERVED:
            raise SearchRefused(f"criteria.{name}: not a criterion (a field of the request)")
        params.append((name, value))
    params += [("includefield", "all"), ("offset", str(offset)), ("limit", str(limit))]
    params.append(("fuzzymatching", "true" if fuzzy else "false"))
    try:
        return parse_query(params)
    except QidoError as e:
        raise SearchRefused(f"criteria.{e.parameter[:64]}: {e.reason}") from None


def search(
    worklist: WorklistService,
    criteria: Mapping[str, str],
    *,
    fuzzy: bool,
    offset: int,
    limit: int,
    address: str = "",
    audit: AuditSink = NO_AUDIT,
    user: str = "",
) -> tuple[list[EntrySummary], bool]:
    """A page of the entries matching ``criteria``, and whether more matched; a broad one
    takes turns in the broad-query gate as the caller at ``address``. Audited as a
    ``query`` by ``user``."""
    query = console_query(criteria, fuzzy=fuzzy, offset=offset, limit=limit)
    rows, more = _found(worklist, query, limit, address)
    keys, phi = query_keys(query.identifier, audit.log_phi)
    details = {"answers": len(rows), "more": more, "keys": keys, "via": "console"}
    audit.record(AuditEvent(AuditType.QUERY, address=address, user=user, details=details, phi=phi))
    return rows, more


def _found(
    worklist: WorklistService, query: QidoQuery, limit: int, address: str
) -> tuple[list[EntrySummary], bool]:
    page = worklist.search_as(worklist.console_profile(limit), query, address=address)
    versions = worklist.mapping_versions(page.ids) if page.ids else {}
    rows = [
        replace(summary(i, e), mapping_version=versions.get(i))
        for i, e in zip(page.ids, page.answers, strict=True)
    ]
    return rows, page.more


def export_csv(
    worklist: WorklistService,
    criteria: Mapping[str, str],
    *,
    fuzzy: bool,
    rows: int | None = None,
    address: str = "",
    audit: AuditSink = NO_AUDIT,
    user: str = "",
) -> str:
    """The matching entries' summaries as CSV, at most ``rows`` (``EXPORT_ROWS``) of them
    (then a last line says the export was cut). A cell that a spreadsheet would read as a
    formula gets a leading ``'``. Audited as an ``entry-export`` by ``user``."""
    rows = EXPORT_ROWS if rows is None else rows
    query = console_query(criteria, fuzzy=fuzzy, offset=0, limit=rows)
    found, more = _found(worklist, query, rows, address)
    keys, _ = query_keys(query.identifier, False)
    details = {"rows": len(found), "cut": more, "keys": keys}
    audit.record(AuditEvent(AuditType.ENTRY_EXPORT, address=address, user=user, details=details))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([f.name for f in fields(EntrySummary)])
    for row in found:
        writer.writerow([_cell(v) for v in asdict(row).values()])
    if more:
        writer.writerow([f"# cut: more than {rows} entries matched; narrow the criteria"])
    return out.getvalue()


def _cell(value: str | int | None) -> str:
    """A CSV cell: none empty, a number as it is, a text never read as a formula."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    return "'" + value if value.startswith(_FORMULA) else value


def summary(entry_id: str, entry: Dataset) -> EntrySummary:
    seq = entry.get("ScheduledProcedureStepSequence")
    step = seq[0] if seq else Dataset()
    description = _text(step, "ScheduledProcedureStepDescription") or _text(
        entry, "RequestedProcedureDescription"
    )
    return EntrySummary(
        entry_id=entry_id,
        accession=_text(entry, "AccessionNumber"),
        patient_name=_text(entry, "PatientName"),
        patient_id=_text(entry, "PatientID"),
        birth_date=_text(entry, "PatientBirthDate"),
        sex=_text(entry, "PatientSex"),
        station_aet=_text(step, "ScheduledStationAETitle"),
        modality=_text(step, "Modality"),
        scheduled_date=_text(step, "ScheduledProcedureStepStartDate"),
        scheduled_time=_text(step, "ScheduledProcedureStepStartTime"),
        procedure_description=description,
        status=_text(step, "ScheduledProcedureStepStatus"),
    )


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value)

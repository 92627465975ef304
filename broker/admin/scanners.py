"""``/api/scanners``: the scanner profiles, and why a scanner does (not) see an entry.

    GET  /api/scanners            every profile, the broker's defaults filled in (viewer)
    GET  /api/scanners/{aet}      one profile
    POST /api/scanners/explain    ``mwl-broker explain`` as JSON and as its text (viewer)

The accession number goes in the explain request's body, never in the URL. Thin over
``broker.services.scanners``, ``WorklistService.explain`` and
``broker.services.explain_text``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from pydicom.multival import MultiValue

from broker.admin.problems import ApiProblem
from broker.admin.security import Caller, authenticated
from broker.services.application import Services
from broker.services.auth import Role
from broker.services.explain_text import explanation_lines, record_explain
from broker.services.scanners import scanner_views
from broker.services.worklist import ExplainRequest, Explanation

__all__ = ["router"]

router = APIRouter(prefix="/api/scanners", tags=["scanners"])
Viewer = Annotated[Caller, Depends(authenticated(Role.VIEWER))]
_AE = re.compile(r"[ -\[\]-~]{1,16}")  # printable ASCII without backslash
_DATE = re.compile(r"\d{8}|\d{8}-\d{0,8}|-\d{8}|none", re.IGNORECASE)
_MAX_ENTRIES = 100  # entries of one explanation answered (an accession has a few)


class Scanner(BaseModel):
    ae_title: str
    addresses: list[str] = Field(description="source addresses or networks; empty: any")
    stations: list[str] | None = Field(description="the stations it sees; null: every one")
    unassigned: bool
    date_window: str | None = Field(description="days around today; null: any date")
    modality: str | None
    hidden_statuses: list[str]
    max_answers: int
    over_limit: str
    sort: list[str]
    character_set: str
    unrepresentable: str
    mpps_update_others: bool
    dicomweb_tokens: int
    own_table: bool = Field(description="false: the built-in profile of other callers")


class ExplainBody(BaseModel):
    ae_title: str = Field(min_length=1, max_length=16, description="the scanner's AE title")
    address: str | None = Field(None, max_length=64, description="its source address")
    accession: str | None = Field(None, min_length=1, max_length=64)
    entry_id: str | None = Field(None, min_length=1, max_length=64)
    date: str | None = Field(None, max_length=17, description="YYYYMMDD, A-B, or none")
    station: str | None = Field(None, max_length=16, description="station asked (default: AE)")
    modality: str | None = Field(None, max_length=16)


class ExplainedEntry(BaseModel):
    accession: str
    sps_id: str
    station_aet: str
    modality: str
    scheduled_date: str
    scheduled_time: str
    status: str
    seen: bool
    reasons: list[str]


class Explained(BaseModel):
    ae_title: str
    accepted: bool = Field(description="whether its association would be accepted")
    refusal: str
    profile: str | None = Field(description="the profile's AE title (* : the default)")
    query: dict[str, str] = Field(description="the assumed C-FIND's step keys")
    hidden_statuses: list[str]
    entries: list[ExplainedEntry]
    seen: int
    text: str = Field(description="as `mwl-broker explain` prints it")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _scanners(request: Request) -> list[Scanner]:
    s = _services(request)
    return [Scanner(**vars(v)) for v in scanner_views(s.profiles, s.settings, s.auth)]


@router.get("", summary="the scanner profiles")
def scanners(request: Request, _: Viewer) -> list[Scanner]:
    return _scanners(request)


@router.get("/{aet}", summary="one scanner profile", responses={404: {"description": "none"}})
def scanner(request: Request, aet: str, _: Viewer) -> Scanner:
    for found in _scanners(request):
        if found.ae_title == aet.strip():
            return found
    raise ApiProblem(404, "no scanner profile has this AE title")


def _request(body: ExplainBody) -> ExplainRequest:
    if (body.accession is None) == (body.entry_id is None):
        raise ApiProblem(400, "accession, entry_id: give exactly one")
    for name, value in (("ae_title", body.ae_title), ("station", body.station)):
        if value is not None and not (_AE.fullmatch(value) and value.strip()):
            raise ApiProblem(400, f"{name}: an AE title, 1 to 16 printable ASCII characters")
    if body.entry_id is not None and not re.fullmatch(r"[0-9a-f]{1,64}", body.entry_id):
        raise ApiProblem(400, "entry_id: not a worklist entry id")
    if body.address is not None:
        try:
            ipaddress.ip_address(body.address)
        except ValueError:
            raise ApiProblem(400, "address: an IPv4 or IPv6 address") from None
    if body.date is not None and not _DATE.fullmatch(body.date):
        raise ApiProblem(400, "date: YYYYMMDD, a range A-B, or none")
    if body.modality is not None and not re.fullmatch(r"[A-Z0-9_]{1,16}", body.modality):
        raise ApiProblem(400, "modality: a modality code such as CT")
    return ExplainRequest(
        body.ae_title.strip(), body.accession, None, body.address, body.station, body.date,
        body.modality, entry_id=body.entry_id,
    )  # fmt: skip


@router.post(
    "/explain",
    summary="why a scanner does or does not see an entry",
    responses={400: {"description": "a field cannot be used (named)"}},
)
def explain(request: Request, body: ExplainBody, who: Viewer) -> Explained:
    asked, services = _request(body), _services(request)
    found = services.worklist.explain(asked)
    record_explain(services.audit, asked, found, by=who.principal.name)
    step = found.query.ScheduledProcedureStepSequence[0]
    return Explained(
        ae_title=asked.aet,
        accepted=found.profile is not None,
        refusal=found.refusal,
        profile=None if found.profile is None else found.profile.ae_title,
        query={e.keyword: str(e.value or "") for e in step},
        hidden_statuses=sorted(found.hidden),
        entries=_entries(found),
        seen=found.seen,
        text="\n".join(explanation_lines(asked, found)) + "\n",
    )


def _entries(found: Explanation) -> list[ExplainedEntry]:
    rows = []
    for entry, reasons in list(zip(found.entries, found.reasons, strict=True))[:_MAX_ENTRIES]:
        seq = entry.get("ScheduledProcedureStepSequence")
        step = seq[0] if seq else None

        def text(keyword: str, where: Any = step) -> str:
            value = None if where is None else where.get(keyword)
            return "" if value is None else "\\".join(str(v) for v in _values(value))

        rows.append(
            ExplainedEntry(
                accession=text("AccessionNumber", entry),
                sps_id=text("ScheduledProcedureStepID"),
                station_aet=text("ScheduledStationAETitle"),
                modality=text("Modality"),
                scheduled_date=text("ScheduledProcedureStepStartDate"),
                scheduled_time=text("ScheduledProcedureStepStartTime"),
                status=text("ScheduledProcedureStepStatus"),
                seen=reasons is None,
                reasons=list(reasons or ()),
            )
        )
    return rows


def _values(value: Any) -> list[Any]:
    return list(value) if isinstance(value, MultiValue | list) else [value]

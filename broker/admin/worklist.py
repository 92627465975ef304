"""``/api/worklist``: search the worklist as the console sees it, read one entry, change it
by hand, export a search as CSV, and see what a purge would remove.

    POST   /api/worklist/search               summaries of the matching entries (viewer)
    POST   /api/worklist/export               the same as a CSV download (viewer)
    GET    /api/worklist/entries/{id}         the entry as DICOM JSON, with its revision and
                                              mapping version (``?include=dump``: its dump too)
    GET    /api/worklist/entries/{id}/dump    the entry as readable text
    PATCH  /api/worklist/entries/{id}         edit one attribute (editor)
    POST   /api/worklist/entries/{id}/status  set its SPS status (editor)
    POST   /api/worklist/entries/{id}/cancel  cancel it as the RIS would: CANCELED (editor)
    DELETE /api/worklist/entries/{id}         take it off the worklist (editor)
    POST   /api/worklist/purge                a purge's dry run (editor)

Search criteria travel in the body, never the URL (patient data). Every change names the
revision it was made on (``expect``; 409 when the entry changed meanwhile) and a reason
(on the audit trail with the user, the entry id and the attribute's tag, never a value).
Every read of patient data is audited with the user, once per request: a search as a
``query``, an export as ``entry-export``, an entry or its dump as ``entry-read`` (the
console opens an entry with one request, ``include=dump``: one record, view ``json+dump``).
Thin over ``broker.services.console_search`` and ``Services.entries``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from broker.admin.problems import ApiProblem
from broker.admin.security import Caller, authenticated
from broker.services import console_search
from broker.services.application import Services
from broker.services.auth import Role
from broker.worklist.edits import EntryChanged, UnknownEntry

__all__ = ["router"]

router = APIRouter(prefix="/api/worklist", tags=["worklist"])
ENTRY = "/entries/{entry_id}"
MAX_LIMIT = 500
PURGE_ITEMS = 500  # purge items listed in one answer (all are counted)
_T = TypeVar("_T")
Viewer = Annotated[Caller, Depends(authenticated(Role.VIEWER))]
Editor = Annotated[Caller, Depends(authenticated(Role.EDITOR))]
_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the attribute, value, status or reason cannot be used"},
    404: {"description": "no such entry"},
    409: {"description": "the entry changed since it was read, or the change is impossible"},
}


class Criteria(BaseModel):
    criteria: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="keyword or tag (or Sequence.Keyword path) -> value, as a DICOMweb search",
    )
    fuzzy: bool = Field(False, description="match person names case-insensitively")


class SearchRequest(Criteria):
    offset: int = Field(0, ge=0, le=1_000_000)
    limit: int = Field(100, ge=1, le=MAX_LIMIT)


_MAPPING_VERSION = (
    "the number of the mapping version that made the entry (its order's message, received or "
    "reprocessed), as the mapping history lists it; null: unknown (an entry written before "
    "entries kept it, or imported)"
)


class EntrySummary(BaseModel):
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
    mapping_version: int | None = Field(None, description=_MAPPING_VERSION)


class SearchPage(BaseModel):
    entries: list[EntrySummary]
    offset: int
    limit: int
    more: bool


class EntryDocument(BaseModel):
    entry_id: str
    revision: str = Field(description="name it as `expect` in a change")
    status: str
    dataset: dict[str, Any] = Field(description="the entry as DICOM JSON (PS3.18 F.2)")
    mapping_version: int | None = Field(description=_MAPPING_VERSION)
    dump: str | None = Field(
        None, description="the entry as readable text, with `include=dump` (else null)"
    )


class Change(BaseModel):
    expect: str = Field(min_length=1, max_length=64, description="the revision read")
    reason: str = Field(min_length=1, max_length=256, description="why: on the audit trail")


class Edit(Change):
    attribute: str = Field(min_length=1, max_length=64, description="keyword or tag")
    value: str = Field(max_length=256, description="the new value; empty: no value")


class StatusChange(Change):
    status: str = Field(min_length=1, max_length=16)


class Changed(BaseModel):
    entry_id: str
    revision: str = Field(description="the entry's revision now (empty once deleted)")


class PurgeRequest(BaseModel):
    dry_run: bool = True


class PurgeItem(BaseModel):
    entry_id: str
    reason: str
    status: str
    accession: str
    start_date: str


class PurgePreview(BaseModel):
    dry_run: bool
    entries: int
    mpps: int
    by_reason: dict[str, int]
    items: list[PurgeItem] = Field(description=f"the first {PURGE_ITEMS} entries")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _entry_call(call: Callable[[], _T]) -> _T:
    """``call``, its unknown entry a 404 and its conflict a 409."""
    try:
        return call()
    except UnknownEntry:
        raise ApiProblem(404, "no worklist entry has this id") from None
    except EntryChanged as e:
        raise ApiProblem(409, str(e)) from None


@router.post(
    "/search",
    summary="search the worklist (every station and status)",
    responses={400: {"description": "a criterion cannot be used (named)"}},
)
def search(request: Request, body: SearchRequest, who: Viewer) -> SearchPage:
    services = _services(request)
    found, more = console_search.search(
        services.worklist,
        body.criteria,
        fuzzy=body.fuzzy,
        offset=body.offset,
        limit=body.limit,
        address=request.client.host if request.client else "",
        audit=services.audit,
        user=who.principal.name,
    )
    rows = [EntrySummary(**vars(row)) for row in found]
    return SearchPage(entries=rows, offset=body.offset, limit=body.limit, more=more)


@router.post(
    "/export",
    summary="the search's entries as CSV (a download, bounded)",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}},
        400: {"description": "a criterion cannot be used (named)"},
    },
)
def export(request: Request, body: Criteria, who: Viewer) -> Response:
    address = request.client.host if request.client else ""
    services = _services(request)
    text = console_search.export_csv(
        services.worklist, body.criteria, fuzzy=body.fuzzy, address=address,
        audit=services.audit, user=who.principal.name,
    )  # fmt: skip
    headers = {"Content-Disposition": 'attachment; filename="worklist.csv"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)


@router.get(ENTRY, summary="one entry as DICOM JSON, with its revision", responses=_CHANGE_ERRORS)
def entry(
    request: Request,
    entry_id: str,
    who: Viewer,
    include: Annotated[
        Literal["dump"] | None,
        Query(description="`dump`: the readable text too, in the same answer (one read)"),
    ] = None,
) -> EntryDocument:
    entries, user = _services(request).entries, who.principal.name
    view = "json+dump" if include == "dump" else "json"
    stored = _entry_call(lambda: entries.show(entry_id, view=view, by=user))
    return EntryDocument(
        entry_id=stored.entry_id,
        revision=stored.revision,
        status=stored.status,
        dataset=entries.document(stored),
        mapping_version=stored.mapping_version,
        dump=entries.dump(stored) if include == "dump" else None,
    )


@router.get(
    ENTRY + "/dump",
    summary="one entry as readable text (tag, keyword, VR, value)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 404: {"description": "no such entry"}},
)
def entry_dump(request: Request, entry_id: str, who: Viewer) -> Response:
    entries, user = _services(request).entries, who.principal.name
    stored = _entry_call(lambda: entries.show(entry_id, view="dump", by=user))
    headers = {"ETag": f'"{stored.revision}"'}
    return Response(entries.dump(stored), media_type="text/plain; charset=utf-8", headers=headers)


@router.patch(ENTRY, summary="edit one attribute of an entry (editor)", responses=_CHANGE_ERRORS)
def edit(request: Request, entry_id: str, body: Edit, who: Editor) -> Changed:
    entries = _services(request).entries
    user = who.principal.name
    revision = _entry_call(
        lambda: entries.edit(
            entry_id, body.attribute, body.value, expect=body.expect, reason=body.reason, user=user
        )
    )
    return Changed(entry_id=entry_id, revision=revision)


@router.post(
    ENTRY + "/status", summary="set an entry's SPS status (editor)", responses=_CHANGE_ERRORS
)
def status(request: Request, entry_id: str, body: StatusChange, who: Editor) -> Changed:
    entries = _services(request).entries
    user = who.principal.name
    revision = _entry_call(
        lambda: entries.set_status(
            entry_id, body.status.strip().upper(), expect=body.expect, reason=body.reason, user=user
        )
    )
    return Changed(entry_id=entry_id, revision=revision)


@router.post(
    ENTRY + "/cancel",
    summary="cancel an entry as the RIS would: status CANCELED (editor)",
    responses=_CHANGE_ERRORS,
)
def cancel(request: Request, entry_id: str, body: Change, who: Editor) -> Changed:
    entries = _services(request).entries
    user = who.principal.name
    revision = _entry_call(
        lambda: entries.cancel(entry_id, expect=body.expect, reason=body.reason, user=user)
    )
    return Changed(entry_id=entry_id, revision=revision)


@router.delete(ENTRY, summary="take an entry off the worklist (editor)", responses=_CHANGE_ERRORS)
def delete(request: Request, entry_id: str, body: Change, who: Editor) -> Changed:
    entries = _services(request).entries
    user = who.principal.name
    _entry_call(lambda: entries.delete(entry_id, expect=body.expect, reason=body.reason, user=user))
    return Changed(entry_id=entry_id, revision="")


@router.post(
    "/purge",
    summary="what a retention purge would remove (a dry run; editor)",
    responses={400: {"description": "dry_run false: a purge is not run from here"}},
)
def purge(request: Request, body: PurgeRequest, _: Editor) -> PurgePreview:
    if not body.dry_run:
        raise ApiProblem(
            400, "dry_run: only a dry run here; a purge runs on its schedule or `mwl-broker purge`"
        )
    report = _services(request).purge.run(dry_run=True)
    items = [PurgeItem(**vars(item)) for item in report.entries[:PURGE_ITEMS]]
    return PurgePreview(
        dry_run=True,
        entries=len(report.entries),
        mpps=len(report.mpps),
        by_reason=dict(report.by_reason),
        items=items,
    )

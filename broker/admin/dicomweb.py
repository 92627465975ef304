"""``GET /modality-scheduled-procedure-steps``: the DICOMweb worklist Search Transaction
(PS3.18 §14.4), thin over ``broker.dicom.qido`` (parameters), ``WorklistService.search_as``
(the scanner's C-FIND) and ``broker.dicom.dicomweb`` (Accept, rendering).

A DICOMweb client is a bearer token bound to a scanner (``mwl-broker token create
--scanner AET``): it is answered as a C-FIND from that AE title is (its profile's scope,
date window, hidden statuses, answer limit). A console session or a token without a
scanner has no scope to search with: 403. ``scanner_caller`` is shared with the MPPS
routes (``broker.admin.mpps``). A broad search takes turns with broad C-FINDs in the
broker's one gate (``broker.dicom.gate``); refused there, it is a 503 with Retry-After.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from broker.admin.problems import ApiProblem
from broker.admin.security import Caller, authenticated
from broker.audit.record import web_query
from broker.dicom.dicomweb import NotAcceptable, more_results_warning, negotiate, render
from broker.dicom.gate import BroadQueryBusy
from broker.dicom.profiles import ScannerProfile
from broker.dicom.qido import QidoError, parse_query
from broker.errors import DicomServiceError, StoreError
from broker.services.application import Services
from broker.services.worklist import UnknownScanner

__all__ = ["ScannerCaller", "router", "scanner_caller", "service_name"]

router = APIRouter(tags=["dicomweb"])
SEARCH_PATH = "/modality-scheduled-procedure-steps"


class ScannerCaller:
    """A caller with a scanner: its AE title and the profile that scopes it."""

    def __init__(self, caller: Caller, ae_title: str, profile: ScannerProfile) -> None:
        self.caller = caller
        self.ae_title = ae_title
        self.profile = profile

    def __repr__(self) -> str:
        return f"ScannerCaller(ae_title={self.ae_title!r})"


def scanner_caller(
    request: Request, caller: Annotated[Caller, Depends(authenticated())]
) -> ScannerCaller:
    """The dependency of a DICOMweb route: a token bound to a scanner that may connect."""
    scanner = caller.principal.scanner
    if caller.principal.kind != "token" or scanner is None:
        raise ApiProblem(
            403,
            "DICOMweb needs a bearer token bound to a scanner "
            "(mwl-broker token create --scanner AET)",
        )
    services: Services = request.app.state.services
    try:
        profile = services.worklist.profile(scanner)
    except UnknownScanner:
        raise ApiProblem(403, "this token's scanner has no profile it may connect with") from None
    return ScannerCaller(caller, scanner, profile)


def service_name(request: Request) -> str:
    """The origin server named in Warning header fields (PS3.18 8.4): host and port."""
    return request.url.netloc or "mwl-broker"


@router.get(
    SEARCH_PATH,
    summary="search the worklist as the token's scanner (PS3.18 §14.4)",
    responses={
        200: {"content": {"application/dicom+json": {}, "multipart/related": {}}},
        400: {"description": "a query parameter cannot be used (named in detail)"},
        403: {"description": "not a token bound to a scanner that may connect"},
        406: {"description": "no acceptable media type"},
        503: {
            "description": "over the work budget, other broad queries hold the gate "
            "(Retry-After), or the store is unavailable"
        },
    },
)
def search(request: Request, who: Annotated[ScannerCaller, Depends(scanner_caller)]) -> Response:
    try:
        media_type = negotiate(request.headers.get("accept"))
    except NotAcceptable as e:
        raise ApiProblem(406, e.reason) from None
    try:
        query = parse_query(request.query_params.multi_items())
    except QidoError as e:
        raise ApiProblem(400, f"{e.parameter}: {e.reason}") from None
    services: Services = request.app.state.services
    address = request.client.host if request.client else ""
    caller = (who.ae_title, address, who.caller.principal.name)
    try:
        page = services.worklist.search_as(who.profile, query, address=address)
    except DicomServiceError as e:
        web_query(services.audit, query.identifier, caller, refused=e.comment)
        if isinstance(e, BroadQueryBusy) or e.status == 0xA700:
            raise  # 503: waiting for the gate's slots, or over the work budget (problems.py)
        raise ApiProblem(400, e.comment) from None
    except StoreError:
        raise ApiProblem(503, "worklist store unavailable") from None
    web_query(services.audit, query.identifier, caller, answers=len(page.answers))
    rendered = render(page.answers, media_type)
    headers = {}
    if page.more:
        headers["Warning"] = more_results_warning(service_name(request))
    return Response(rendered.body, media_type=rendered.content_type, headers=headers)

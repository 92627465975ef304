"""``/modality-performed-procedure-steps``: the DICOMweb MPPS service (PS3.18 chapter 15),
thin over ``Services.mpps`` (the state machine DIMSE N-CREATE / N-SET share) and the pure
``broker.dicom.mpps_web`` (payloads, refusals as HTTP statuses, DICOM JSON).

    POST /modality-performed-procedure-steps               Create, the UID assigned (201)
    POST /modality-performed-procedure-steps/{uid}         Create with that UID (201)
    POST /modality-performed-procedure-steps/{uid}?update  Update (200)
    GET  /modality-performed-procedure-steps/{uid}         Retrieve (includefield)

The caller is a token bound to a scanner (``broker.admin.dicomweb.scanner_caller``): the
instance records that AE title as its creator, and its profile scopes it, as over DIMSE.
Each create and update is on the audit trail as its DIMSE twin is (``mpps_event``): the
AE title, address and token, the instance, the DIMSE status and why it was refused, the
new state and the linked entries (``broker.audit.record.web_mpps``).
A request body must be ``application/dicom+json`` (else 415). A refusal answers its
problem+json with the DICOM status in a Warning header field; the store unreachable, 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from broker.admin.dicomweb import ScannerCaller, scanner_caller, service_name
from broker.admin.problems import ApiProblem, problem_response
from broker.audit.events import Outcome
from broker.audit.record import web_mpps
from broker.common import correlation
from broker.common.jsontext import dumps
from broker.dicom import mpps_web
from broker.errors import StoreError
from broker.services.application import Services
from broker.worklist.mpps_rules import MppsRefusal, MppsStatus

__all__ = ["router"]

router = APIRouter(tags=["dicomweb"])
BASE = "/modality-performed-procedure-steps"
_T = TypeVar("_T")
_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad payload, UID or parameter (Warning: the DICOM status)"},
    403: {"description": "not a scanner token, or outside its scope"},
    404: {"description": "no such instance"},
    409: {"description": "the UID is in use, or the instance has ended"},
    415: {"description": "the body is not application/dicom+json"},
    503: {"description": "the worklist store is unavailable"},
}


class _Refused(Exception):
    """A refusal: its HTTP answer, and the DIMSE status and comment the audit records."""

    def __init__(self, answer: mpps_web.Problem, refusal: MppsRefusal, outcome: Outcome) -> None:
        super().__init__(answer.detail)
        self.answer = answer
        self.refusal = refusal
        self.outcome = outcome


def _answer(refused: _Refused) -> Response:
    p = refused.answer
    return problem_response(p.status, p.detail, {"Warning": p.warning})


async def _call(request: Request, call: Callable[[], _T], uid: str | None = None) -> _T:
    """``call`` in a worker thread, its log lines with the instance's correlation ID (as
    over DIMSE, ``broker.dicom.mpps``); its refusal or the store down as ``_Refused``."""
    instance = correlation.digest("p", uid) if uid else ""
    try:
        return await run_in_threadpool(correlation.using, instance, call)
    except MppsRefusal as refusal:
        answer = mpps_web.problem(refusal, service_name(request))
        raise _Refused(answer, refusal, Outcome.REFUSED) from None
    except StoreError:
        down = MppsRefusal(MppsStatus.PROCESSING_FAILURE, "worklist store unavailable")
        answer = mpps_web.store_unavailable(service_name(request))
        raise _Refused(answer, down, Outcome.FAILED) from None


def _audit(
    request: Request,
    who: ScannerCaller,
    operation: str,
    uid: str,
    refused: _Refused | None = None,
    **details: Any,
) -> None:
    """One create's or update's audit record (the module docstring)."""
    address = request.client.host if request.client else ""
    caller = (who.ae_title, address, who.caller.principal.name)
    if refused is None:
        event = web_mpps(operation, caller, uid=uid, **details)
    else:
        r = refused.refusal
        event = web_mpps(
            operation, caller, uid=uid, status=r.status, outcome=refused.outcome, reason=r.comment
        )
    _services(request).audit.record(event)


async def _payload(request: Request, uid: str | None) -> Any:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != mpps_web.MEDIA_TYPE:
        raise ApiProblem(415, f"the request body must be {mpps_web.MEDIA_TYPE}")
    body = await request.body()
    return await _call(request, lambda: mpps_web.payload(body, uid=uid))


def _only(request: Request, allowed: frozenset[str]) -> None:
    for name in request.query_params:
        if name not in allowed:
            raise ApiProblem(400, f"{name[:32]!a}: not a parameter of this transaction")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _create(request: Request, who: ScannerCaller, uid: str | None) -> Response:
    mpps = _services(request).mpps
    try:
        ds = await _payload(request, uid)
        created = await _call(
            request,
            lambda: mpps.create(ds, uid=uid, aet=who.ae_title, profile=who.profile),
            uid,
        )
    except _Refused as refused:
        _audit(request, who, "N-CREATE", uid or "", refused)
        return _answer(refused)
    linked = len(created.entries)
    _audit(request, who, "N-CREATE", created.uid, performed="IN PROGRESS", linked=linked)
    location = str(request.url_for("mpps_retrieve", uid=created.uid))
    return Response(status_code=201, headers={"Location": location})


@router.post(
    BASE,
    summary="create an MPPS, its UID assigned (PS3.18 15.4)",
    status_code=201,
    responses=_RESPONSES,
)
async def create(
    request: Request, who: Annotated[ScannerCaller, Depends(scanner_caller)]
) -> Response:
    _only(request, frozenset())
    return await _create(request, who, None)


@router.post(
    BASE + "/{uid}",
    summary="create an MPPS with this UID (PS3.18 15.4), or update it with ?update (15.5)",
    responses=_RESPONSES,
)
async def create_or_update(
    request: Request, uid: str, who: Annotated[ScannerCaller, Depends(scanner_caller)]
) -> Response:
    _only(request, frozenset({"update"}))
    if "update" not in request.query_params:
        return await _create(request, who, uid)
    mpps = _services(request).mpps
    try:
        ds = await _payload(request, uid)
        updated = await _call(
            request,
            lambda: mpps.update(uid, ds, aet=who.ae_title, profile=who.profile),
            uid,
        )
    except _Refused as refused:
        _audit(request, who, "N-SET", uid, refused)
        return _answer(refused)
    result = updated.result
    _audit(request, who, "N-SET", uid, performed=result.status, linked=len(result.entries))
    warning = mpps_web.ignored_warning(updated.ignored, service_name(request))
    return Response(status_code=200, headers={"Warning": warning} if warning else None)


@router.get(
    BASE + "/{uid}",
    name="mpps_retrieve",
    summary="retrieve an MPPS (PS3.18 15.6)",
    responses={200: {"content": {mpps_web.MEDIA_TYPE: {}}}, **_RESPONSES},
)
async def retrieve(
    request: Request, uid: str, who: Annotated[ScannerCaller, Depends(scanner_caller)]
) -> Response:
    _only(request, frozenset({"includefield"}))
    mpps = _services(request).mpps
    fields = request.query_params.getlist("includefield")
    try:
        tags = await _call(request, lambda: mpps_web.included_tags(fields))
        record = await _call(
            request, lambda: mpps.retrieve(uid, aet=who.ae_title, profile=who.profile)
        )
    except _Refused as refused:
        return _answer(refused)
    body = dumps(mpps_web.retrieve_json(record, tags)).encode("utf-8")
    return Response(body, media_type=mpps_web.MEDIA_TYPE)

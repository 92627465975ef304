"""``/api/messages``: the message log and its error list, thin over ``Services.messages``
and ``Services.reprocess`` (as ``mwl-broker messages`` shows them).

    GET  /api/messages                  a page of summaries, newest first, and ``next``
    GET  /api/messages/{id}             the record: ACK sent, errors, entries, the text
    GET  /api/messages/{id}/raw         the bytes as received (a download)
    POST /api/messages/{id}/reprocess   run it through the active mapping again (editor)
    POST /api/messages/{id}/dismiss     take it off the error list (editor)

An unknown id is 404. A reprocess of a message of which only the first bytes were kept
(refused before any mapping, or too large) is 409: the sender must send it again. A
dismissal of a message not on the error list (dismissed or resolved already, or never
refused) is 409. Both changes are audited with the user; so is each read of one message
(``message-read``: its text is patient data), not the list (summaries: no patient data).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from broker.admin.message_filters import OPENAPI_PARAMETERS, message_query
from broker.admin.message_models import (
    MessageDetail,
    MessagePageOut,
    MessageSummaryOut,
    ReprocessOut,
    detail_of,
    reprocessed_of,
    summary_of,
)
from broker.admin.problems import ApiProblem
from broker.admin.security import Caller, authenticated
from broker.dicom.profiles import site_zone
from broker.errors import StoreError
from broker.services.application import Services
from broker.services.auth import Role
from broker.services.messages import MessageConflict, UnknownMessage

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["messages"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such message (unknown id, or past retention)"},
    503: {"description": "the message log is unavailable"},
}
_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"description": "not possible in the message's state (named in detail)"},
}
Viewer = Annotated[Caller, Depends(authenticated(Role.VIEWER))]
Editor = Annotated[Caller, Depends(authenticated(Role.EDITOR))]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _checked(message_id: str) -> str:
    """A message id is a number; anything else names no message (and is not echoed)."""
    if not (message_id.isascii() and message_id.isdigit() and len(message_id) <= 19):
        raise ApiProblem(404, "no such message: message ids are numbers")
    return message_id


@contextmanager
def _answered() -> Iterator[None]:
    """The services' errors as HTTP problems: unknown 404, conflict 409, store down 503."""
    try:
        yield
    except UnknownMessage as e:
        raise ApiProblem(404, str(e)) from None
    except MessageConflict as e:
        raise ApiProblem(409, str(e)) from None
    except StoreError:
        raise ApiProblem(503, "message log unavailable; try again") from None


@router.get(
    "/messages",
    summary="a page of received HL7 messages, newest first (filters in the query string)",
    responses={400: {"description": "a bad filter value (the parameter is named)"}, **_ERRORS},
    openapi_extra={"parameters": OPENAPI_PARAMETERS},
)
def find(request: Request, _: Viewer) -> MessagePageOut:
    settings = request.app.state.settings
    query = message_query(request.query_params.multi_items(), site_zone(settings.site_timezone))
    with _answered():
        page = _services(request).messages.find(query)
    return MessagePageOut(items=[summary_of(s) for s in page.items], next=page.next_before)


@router.get("/messages/{message_id}", summary="one received message", responses=_ERRORS)
def get(request: Request, message_id: str, who: Viewer) -> MessageDetail:
    messages, user = _services(request).messages, who.principal.name
    with _answered():
        record = messages.show(_checked(message_id), view="detail", by=user)
        return detail_of(record, messages.entry_statuses(record))


@router.get(
    "/messages/{message_id}/raw",
    summary="the message's bytes as received (as much as was kept)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **_ERRORS},
)
def raw(request: Request, message_id: str, who: Viewer) -> Response:
    messages, user = _services(request).messages, who.principal.name
    with _answered():
        record = messages.show(_checked(message_id), view="raw", by=user)
    disposition = f'attachment; filename="message-{record.summary.id}.hl7"'
    return Response(
        record.raw,
        media_type="application/octet-stream",
        headers={"Content-Disposition": disposition},
    )


@router.post(
    "/messages/{message_id}/reprocess",
    summary="run a message through the active mapping again (editor)",
    responses=_CHANGE_ERRORS,
)
def reprocess(request: Request, message_id: str, caller: Editor) -> ReprocessOut:
    services = _services(request)
    with _answered():
        done = services.reprocess.reprocess(_checked(message_id), by=caller.principal.name)
    new = None
    if done.new_id:
        with suppress(UnknownMessage, StoreError):  # the answer stands without its record
            new = services.messages.get(done.new_id)
    return reprocessed_of(done, new)


@router.post(
    "/messages/{message_id}/dismiss",
    summary="take a message off the error list without reprocessing it (editor)",
    responses=_CHANGE_ERRORS,
)
def dismiss(request: Request, message_id: str, caller: Editor) -> MessageSummaryOut:
    messages = _services(request).messages
    with _answered():
        messages.dismiss(_checked(message_id), by=caller.principal.name)
        return summary_of(messages.get(message_id).summary)

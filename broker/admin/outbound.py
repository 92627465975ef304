"""``/api/outbound``: the status messages queued for the RIS, per destination, thin over
``Services.outbound`` (as ``mwl-broker outbound`` shows them).

    GET  /api/outbound                                   each destination at a glance
    GET  /api/outbound/{dest}/events?state=&offset=&limit=  waiting or parked events
    GET  /api/outbound/{dest}/events/{id}                one event (no message text)
    GET  /api/outbound/{dest}/events/{id}/message        its HL7 text (patient data; audited)
    POST /api/outbound/{dest}/events/{id}/retry          queue a parked event again (editor)
    POST /api/outbound/{dest}/events/{id}/discard        drop a parked event, with a reason
    POST /api/outbound/{dest}/parked/retry               queue every parked event again

Destinations are the ``[hl7_destinations]`` table names, events their numeric ids: no
patient data in a path. Lists show ids, states, statuses, times and reasons; the
message text (the order's patient) only from its own route, which is audited. Retry
and discard are the editor's, as the worklist's cancel and the message log's dismiss
are: operational changes to order data, each audited with the user (a discard with
the reason given). Unknown destination or event: 404; an event not parked: 409.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from broker.admin.problems import ApiProblem
from broker.admin.security import Caller, authenticated
from broker.errors import StoreError
from broker.services.application import Services
from broker.services.auth import Role
from broker.services.outbound import DestinationSummary, NotParked, UnknownOutbound
from broker.store.outbound import OutboundEvent

__all__ = ["MAX_EVENTS", "router"]

router = APIRouter(prefix="/api/outbound", tags=["outbound"])
MAX_EVENTS = 500  # events per page
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such destination or event"},
    503: {"description": "the store is unavailable"},
}
_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"description": "the event is not parked (it is waiting to be sent)"},
}
Viewer = Annotated[Caller, Depends(authenticated(Role.VIEWER))]
Editor = Annotated[Caller, Depends(authenticated(Role.EDITOR))]
T = TypeVar("T")


class DestinationOut(BaseModel):
    name: str = Field(description="the [hl7_destinations.<name>] table")
    host: str
    port: int
    waiting: int = Field(description="events queued, not yet acknowledged")
    parked: int = Field(description="dead letters: rejected (AE/CE), not mapped, held, queue full")
    oldest_age: float | None = Field(description="seconds the oldest waiting event has waited")
    lease_holder: str | None = Field(description="host:pid of the broker sending; null: none")
    lease_seconds: float = Field(description="seconds left on the holder's lease")
    last_error: str | None = Field(
        description="why the head event is retried, else the newest parked event's reason"
    )


class EventOut(BaseModel):
    id: str
    state: Literal["queued", "parked"]
    status: str = Field(description="the step's new status (STARTED, COMPLETED, …)")
    source: str = Field(description="what changed it: mpps, edit")
    at: float = Field(description="when the status changed (epoch seconds)")
    attempts: int
    reason: str = Field(description="why it is parked or retried; empty when neither")
    entry_id: str


class EventDetailOut(EventOut):
    control: str = Field(description="MSH-10 of its message, the same on every attempt")
    error: str = Field(description="the receiver's ERR text (an AE/CE); empty otherwise")
    built: bool = Field(description="its message was built (when first sent)")


class EventPageOut(BaseModel):
    items: list[EventOut]
    total: int = Field(description="events in this state")
    next: int | None = Field(description="the offset of the next page; null: the last page")


class MessageOut(BaseModel):
    id: str
    text: str = Field(description="the HL7 message, segments separated by CR; empty: not built")


class RetriedOut(BaseModel):
    events: list[str] = Field(description="the ids queued again, in the order they go")


class RetriedAllOut(BaseModel):
    count: int = Field(description="parked events queued again")


class DiscardIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="why (on the audit trail)")


class DiscardedOut(BaseModel):
    id: str
    still_parked: list[str] = Field(
        description="its order's other parked events: they stay parked (and the order's new "
        "events are parked behind them) until retried or discarded; empty: the order's new "
        "events are sent again"
    )


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _checked(event_id: str) -> str:
    """An event id is a number; anything else names no event (and is not echoed)."""
    if not (event_id.isascii() and event_id.isdigit() and len(event_id) <= 19):
        raise ApiProblem(404, "no such event: event ids are numbers")
    return event_id


def _answer(call: Callable[[], T]) -> T:
    try:
        return call()
    except UnknownOutbound as e:
        raise ApiProblem(404, str(e)) from None
    except NotParked as e:
        raise ApiProblem(409, str(e)) from None
    except StoreError:
        raise ApiProblem(503, "the store is unavailable; try again") from None


def _event(e: OutboundEvent) -> dict[str, Any]:
    state = "parked" if e.state == "parked" else "queued"
    return {"id": e.id, "state": state, "status": e.status, "source": e.source, "at": e.at,
            "attempts": e.attempts, "reason": e.reason, "entry_id": e.entry}  # fmt: skip


def _destination(request: Request, s: DestinationSummary) -> DestinationOut:
    d = request.app.state.settings.destinations[s.destination]
    return DestinationOut(
        name=s.destination, host=d.host, port=d.port, waiting=s.waiting, parked=s.parked,
        oldest_age=s.oldest_age, lease_holder=s.lease_holder, lease_seconds=s.lease_seconds,
        last_error=s.last_error,
    )  # fmt: skip


@router.get(
    "",
    summary="each destination: queue depth, age, dead letters, lease, last error",
    responses={503: _ERRORS[503]},
)
def destinations(request: Request, _: Viewer) -> list[DestinationOut]:
    outbound = _services(request).outbound
    summaries = _answer(lambda: [outbound.summary(n) for n in outbound.destinations()])
    return [_destination(request, s) for s in summaries]


@router.get(
    "/{destination}/events",
    summary="a page of a destination's waiting or parked events, oldest first",
    responses=_ERRORS,
)
def events(
    request: Request,
    destination: str,
    _: Viewer,
    state: Annotated[Literal["queued", "parked"], Query()] = "parked",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 100,
) -> EventPageOut:
    outbound = _services(request).outbound
    page = _answer(lambda: outbound.page(destination, state, offset, limit))
    more = offset + len(page.items) < page.total and len(page.items) == limit
    return EventPageOut(
        items=[EventOut(**_event(e)) for e in page.items],
        total=page.total,
        next=offset + limit if more else None,
    )


@router.get("/{destination}/events/{event_id}", summary="one event", responses=_ERRORS)
def event(request: Request, destination: str, event_id: str, _: Viewer) -> EventDetailOut:
    outbound = _services(request).outbound
    e = _answer(lambda: outbound.show(destination, _checked(event_id)))
    return EventDetailOut(**_event(e), control=e.control, error=e.err, built=bool(e.msg))


@router.get(
    "/{destination}/events/{event_id}/message",
    summary="an event's HL7 message text (patient data: the read is audited)",
    responses=_ERRORS,
)
def message(request: Request, destination: str, event_id: str, who: Viewer) -> MessageOut:
    outbound, user = _services(request).outbound, who.principal.name
    text = _answer(lambda: outbound.message(destination, _checked(event_id), by=user))
    return MessageOut(id=event_id, text=text)


@router.post(
    "/{destination}/events/{event_id}/retry",
    summary="queue a parked event again, with its order's parked events (editor)",
    responses=_CHANGE_ERRORS,
)
def retry(request: Request, destination: str, event_id: str, who: Editor) -> RetriedOut:
    outbound, user = _services(request).outbound, who.principal.name
    ids = _answer(lambda: outbound.retry(destination, _checked(event_id), by=user))
    return RetriedOut(events=ids)


@router.post(
    "/{destination}/events/{event_id}/discard",
    summary="drop a parked event for good, with a reason (editor)",
    responses={400: {"description": "a blank reason"}, **_CHANGE_ERRORS},
)
def discard(
    request: Request, destination: str, event_id: str, body: DiscardIn, who: Editor
) -> DiscardedOut:
    outbound, user = _services(request).outbound, who.principal.name
    if not body.reason.strip():
        raise ApiProblem(400, "reason: say why the event is discarded")
    left = _answer(
        lambda: outbound.discard(destination, _checked(event_id), reason=body.reason, by=user)
    )
    return DiscardedOut(id=event_id, still_parked=left)


@router.post(
    "/{destination}/parked/retry",
    summary="queue every parked event of a destination again, in their order (editor)",
    responses=_ERRORS,
)
def retry_all(request: Request, destination: str, who: Editor) -> RetriedAllOut:
    outbound, user = _services(request).outbound, who.principal.name
    return RetriedAllOut(count=_answer(lambda: outbound.retry_all(destination, by=user)))

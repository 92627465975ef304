"""``GET /api/dashboard`` (one snapshot) and ``GET /api/events``: the dashboard's
snapshots as server-sent events (``text/event-stream``, viewer role).

A stream sends a snapshot at once, then whenever its figures changed (looked at every
:data:`TICK` seconds) and at least every :data:`EVERY` seconds. It is bounded: at most
:data:`MAX_STREAMS` at once (503 problem+json past it); each ends when its session or
token no longer stands (logout, expiry, password change, revocation), when the client
goes, and at once when the server stops (:class:`Streams`, which ``AdminServer.stop``
closes), so an open dashboard never holds uvicorn's shutdown. The streams share one
snapshot per tick, so more dashboards cost no more Redis reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from broker.admin.dashboard_models import DashboardOut
from broker.admin.problems import ApiProblem
from broker.admin.security import Caller, auth_of, authenticated
from broker.common.jsontext import dumps
from broker.services.application import Services
from broker.services.auth import Role

__all__ = ["EVERY", "MAX_STREAMS", "TICK", "Streams", "router"]

router = APIRouter(prefix="/api", tags=["dashboard"])

MAX_STREAMS = 4  # event streams open at once (each polls Redis every TICK)
TICK = 1.0  # seconds between looks at the numbers
EVERY = 5.0  # seconds between snapshots at most, changed or not


class Streams:
    """The open event streams of one application: their count and the stop signal."""

    def __init__(self, limit: int = MAX_STREAMS) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()
        self.closing = asyncio.Event()
        self._latest: tuple[float, dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"Streams(open={self.open}, limit={self.limit})"

    def snapshot(self, services: Services, now: float) -> dict[str, Any]:
        """The dashboard's snapshot, shared by the streams that look within one tick."""
        with self._lock:
            if self._latest is not None and now - self._latest[0] < TICK / 2:
                return self._latest[1]
        snapshot = services.dashboard.snapshot().as_json()
        with self._lock:
            self._latest = (now, snapshot)
        return snapshot

    def take(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open -= 1

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self.closing.set()


class _EventStream(StreamingResponse):
    """A streaming response that gives its place back however it ends."""

    def __init__(self, content: AsyncIterator[str], streams: Streams) -> None:
        super().__init__(content, media_type="text/event-stream")
        self._streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._streams.give_back()


def _standing(request: Request, caller: Caller) -> Callable[[], bool]:
    """Whether the caller's session (or bearer token) still stands."""
    auth = auth_of(request)
    if caller.session is not None:
        session_id = caller.session.id
        return lambda: auth.is_live(session_id)
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    return lambda: auth.token_principal(token) is not None


def _look(
    services: Services, streams: Streams, standing: Callable[[], bool], now: float
) -> dict[str, Any] | None:
    """The snapshot, or None when the caller's session is over (in a worker thread)."""
    if not standing():
        return None
    return streams.snapshot(services, now)


def _figures(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot but its times, which change at every tick: what is sent when changed."""
    worklist = snapshot["worklist"]
    stations = {**worklist["stations"], "age_seconds": 0}
    return {**snapshot, "time": 0, "worklist": {**worklist, "stations": stations}}


async def _events(
    request: Request, streams: Streams, standing: Callable[[], bool]
) -> AsyncIterator[str]:
    services: Services = request.app.state.services
    loop = asyncio.get_running_loop()
    sent: dict[str, Any] | None = None
    last = 0.0
    yield "retry: 5000\n\n"
    while not streams.closing.is_set():
        now = loop.time()
        snapshot = await asyncio.to_thread(_look, services, streams, standing, now)
        if snapshot is None:
            yield "event: ended\ndata: {}\n\n"
            return
        figures = _figures(snapshot)
        if figures != sent or now - last >= EVERY:
            sent, last = figures, now
            yield f"event: snapshot\ndata: {dumps(snapshot)}\n\n"
        with contextlib.suppress(TimeoutError):  # the client going: starlette cancels this
            await asyncio.wait_for(streams.closing.wait(), timeout=TICK)


@router.get(
    "/dashboard", summary="one snapshot of the dashboard's numbers", response_model=DashboardOut
)
def dashboard(
    request: Request, _: Annotated[Caller, Depends(authenticated(Role.VIEWER))]
) -> dict[str, Any]:
    services: Services = request.app.state.services
    return services.dashboard.snapshot().as_json()


@router.get(
    "/events",
    summary="the dashboard's snapshots as server-sent events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    request: Request, caller: Annotated[Caller, Depends(authenticated(Role.VIEWER))]
) -> StreamingResponse:
    streams: Streams = request.app.state.streams
    if streams.closing.is_set() or not streams.take():
        raise ApiProblem(
            503,
            f"too many event streams open (at most {streams.limit}); close a dashboard",
            headers={"Retry-After": "10"},
        )
    return _EventStream(_events(request, streams, _standing(request, caller)), streams)

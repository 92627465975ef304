"""``GET /metrics``: the broker's Prometheus metrics (text exposition format), and the
middleware that counts the admin API's requests by route template and status class.

Safe by default: a bearer token or a session of any role, as the rest of the API;
``metrics_allow`` lists the addresses or networks that may scrape without one (a
Prometheus server on the operators' network). The path a request named is never a
label: its route's template is (``/api/worklist/{entry_id}``), or ``unmatched``.
"""

from __future__ import annotations

import functools

from fastapi import APIRouter, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.admin.security import authenticated
from broker.common.metrics import CONTENT_TYPE, BrokerMetrics
from broker.common.netaddr import Network, parse_network, peer_ip
from broker.services.application import Services

__all__ = ["RequestMeter", "router"]

router = APIRouter(tags=["metrics"])


@functools.cache
def _networks(allowed: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(parse_network(text) for text in allowed)


def _allowed(request: Request) -> bool:
    """Whether the caller's address is one ``metrics_allow`` lists."""
    ip = peer_ip(request.client.host) if request.client is not None else None
    if ip is None:
        return False
    networks = _networks(tuple(request.app.state.settings.metrics_allow))
    return any(ip.version == net.version and ip in net for net in networks)


@router.get(
    "/metrics",
    summary="the broker's metrics, Prometheus text format (a token, or an address in "
    "metrics_allow)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}, 401: {"description": "no credentials"}},
)
def metrics(request: Request) -> Response:
    if not _allowed(request):
        authenticated()(request)
    services: Services = request.app.state.services
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)


class RequestMeter:
    """Counts every HTTP request by its route's template and its status class, as its
    answer starts."""

    def __init__(self, app: ASGIApp, *, metrics: BrokerMetrics) -> None:
        self.app = app
        self._requests = metrics.api_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counted = False

        def count(status: int) -> None:
            nonlocal counted
            counted = True
            self._requests(_template(scope), _status_class(status)).inc()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and not counted:
                count(int(message["status"]))  # before the client can see the answer
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if not counted:  # failed before it answered
                count(500)


def _template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


def _status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "5xx"

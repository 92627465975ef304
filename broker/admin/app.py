"""``create_app(services, settings)``: the admin face's FastAPI application.

State is injected, never imported: the application's :class:`Services`, the settings,
and ``listeners`` (what the broker's listeners are, name -> port, None while one is
down; ``broker.app`` hands it in). OpenAPI at ``/api/openapi.json`` (for a logged-in
caller); no docs UI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import FastAPI

from broker.admin import (
    dicomweb,
    events,
    health,
    mappings,
    messages,
    metrics,
    mpps,
    openapi,
    outbound,
    pages,
    scanners,
    session,
    status,
    users,
    worklist,
)
from broker.admin.events import Streams
from broker.admin.middleware import BodyLimit, SecurityHeaders
from broker.admin.problems import install_problem_handler
from broker.admin.security import cookie_policy
from broker.services.application import Services
from broker.settings import Settings

__all__ = ["Listeners", "create_app"]

Listeners = Callable[[], Mapping[str, int | None]]


def _no_listeners() -> Mapping[str, int | None]:
    return {}


def create_app(
    services: Services, settings: Settings, *, listeners: Listeners = _no_listeners
) -> FastAPI:
    """The admin API on ``services`` (see the module docstring)."""
    app = FastAPI(
        title="mwl-broker admin API",
        openapi_url=None,  # served by broker.admin.openapi, to an authenticated caller
        docs_url=None,
        redoc_url=None,
    )
    tls = settings.admin_tls_cert is not None
    app.state.services = services
    app.state.settings = settings
    app.state.listeners = listeners
    app.state.cookie = cookie_policy(tls=tls)
    app.state.streams = Streams()
    install_problem_handler(app)
    for router in (
        health.router,
        metrics.router,
        openapi.router,
        session.router,
        status.router,
        users.router,
        mappings.router,
        worklist.router,
        scanners.router,
        messages.router,
        outbound.router,
        events.router,
        pages.router,
    ):
        app.include_router(router)
    pages.mount_static(app)
    for router in (dicomweb.router, mpps.router):  # DICOMweb (PS3.18), at the root
        app.include_router(router)
    app.add_middleware(BodyLimit, wider={mappings.PREFIX: mappings.MAX_MAPPINGS_BODY})
    app.add_middleware(metrics.RequestMeter, metrics=services.metrics)
    app.add_middleware(SecurityHeaders, tls=tls)  # outermost: every answer gets the headers
    return app

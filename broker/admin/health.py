"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can do its work: Redis
answers and takes a write, every listener is up, a mapping version is loaded); no
authentication, no detail beyond what is down (``broker.store.writable``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from broker.admin.problems import ApiProblem
from broker.services.application import Services
from broker.store.keys import KeySchema
from broker.store.writable import store_unready

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="the broker's process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Redis answers and takes a write, the listeners are up, a mapping version is loaded",
    responses={503: {"description": "not ready (problem+json says what is not)"}},
)
def readyz(request: Request) -> dict[str, str]:
    services: Services = request.app.state.services
    down: list[str] = []
    store = store_unready(services.client, KeySchema(services.settings.redis_key_prefix))
    if store is not None:
        down.append(store)
    listeners = request.app.state.listeners()
    down += [f"the {name} listener is not up" for name, port in listeners.items() if port is None]
    if services.live_mappings.number is None:
        down.append("no mapping version is loaded")
    if down:
        raise ApiProblem(503, "; ".join(down))
    return {"status": "ready"}

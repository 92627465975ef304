"""The worklist and scanners pages' set-up: the console of a site with scanner profiles
(CT1 sees its own station, ALL every one), a mapping version published that schedules
CT orders on a station, and an MLLP listener that hands orders to the same services'
intake as ``serve`` does (real sockets on 127.0.0.1, port 0)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from broker.mllp.client import MLLPClient, summarize_ack
from broker.mllp.server import MLLPServer
from broker.services.application import Services
from tests.broker_runner import MAPPINGS
from tests.integration.admin_helpers import Api, Recorded, running_api
from tests.integration.worklist_api_helpers import site_services

IO_TIMEOUT = 30.0  # a safety net against a hung test, never asserted


@contextmanager
def site_console(client: redis.Redis, tmp_path: Path) -> Iterator[Api]:
    with running_api(site_services(client, tmp_path, Recorded())) as running:
        yield running


def publish_station(services: Services, station: str) -> int:
    """A mapping version that schedules CT orders without a station on ``station``, made
    active (as the broker's reload does on the publish); its number."""
    text = (MAPPINGS / "orders.yaml").read_text(encoding="utf-8")
    assert text.count("rows: {}") == 1
    edited = {Path("orders.yaml"): text.replace("rows: {}", f"rows: {{CT: {station}}}")}
    result = services.mappings.publish(edited, author="test", comment=f"CT on {station}")
    assert services.live_mappings.refresh()
    return result.version.number


@contextmanager
def mllp_listener(services: Services) -> Iterator[int]:
    """An MLLP listener on its own event loop, its messages through ``services.intake``;
    its port."""

    async def handle(raw: bytes, peer: str) -> bytes:
        return await asyncio.to_thread(services.intake.handle, raw, peer)

    server = MLLPServer(
        handle,
        services.intake.reject,
        host="127.0.0.1",
        port=0,
        max_frame_bytes=1 << 20,
        idle_timeout=IO_TIMEOUT,
        max_connections=4,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="mllp-listener", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=IO_TIMEOUT)
        try:
            yield server.port
        finally:
            stop = server.stop(drain_timeout=5.0)
            asyncio.run_coroutine_threadsafe(stop, loop).result(timeout=IO_TIMEOUT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=IO_TIMEOUT)
        loop.close()


def send_over_mllp(port: int, *messages: bytes) -> None:
    """Each message over one MLLP connection; each must be accepted (AA)."""
    with MLLPClient("127.0.0.1", port, timeout=IO_TIMEOUT) as client:
        for message in messages:
            assert summarize_ack(client.send(message)).code == "AA"

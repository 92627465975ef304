"""The dashboard's numbers (``broker.services.dashboard``) from a real redis-server fed
through the intake, and their event stream over real HTTP: the first snapshot at once,
bounded streams, a stream that ends with its session and at once when the server stops."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, closing

import pytest
import redis

from broker.admin.events import MAX_STREAMS
from broker.services.application import Services
from tests.integration.admin_helpers import (
    CALLERS,
    Api,
    admin_settings,
    caller,
    check_route,
    running_api,
    services_for,
)
from tests.integration.hl7_seed import send, send_orders, send_refused, two_step_order

ROUTES = {("GET", "/api/dashboard"): (401, 200, 200, 200, 200)}


@pytest.fixture
def services(redis_client: redis.Redis) -> Services:
    services = services_for(admin_settings(), redis_client)
    services.live_mappings.load()
    return services


@pytest.mark.parametrize("who", CALLERS)
def test_the_snapshot_route_for_every_caller(api: Api, who: str) -> None:
    expected = ROUTES[("GET", "/api/dashboard")][CALLERS.index(who)]
    check_route(api, who, "GET", "/api/dashboard", expected)


def test_the_numbers_count_what_the_intake_did_and_hold_no_patient_value(
    services: Services,
) -> None:
    send_orders(services, 2)
    assert send(services, two_step_order()) == "AA"
    assert send_refused(services) == "AE"
    snap = services.dashboard.snapshot().as_json()
    m, w = snap["messages"], snap["worklist"]
    assert len(m["per_minute"]) == 60 and m["per_minute"][-1] == 4 == m["last_hour"]
    assert m["acks"] == {"AA": 3, "AE": 1, "AR": 0}
    assert (m["errors"], m["total"]) == (1, 4)
    (error,) = m["recent_errors"]
    assert (error["type"], error["location"], error["ack_code"]) == ("ORM^O01", "PID-3", "AE")
    assert w["total"] == 4 and w["by_status"] == {"open": 4, "ended": 0}
    assert w["by_station"] == {"MR1": 1, "MR2": 1}  # the ORMs name no station
    text = json.dumps(snap)
    for value in ("PAT-", "ACC-", "ller", "vergr", "19650412", "19801224"):
        assert value not in text


def _first_event(lines: Iterator[str]) -> tuple[str, dict[str, object]]:
    kind = ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            return kind, json.loads(line[6:])
    raise AssertionError("the stream ended")


def test_a_stream_sends_a_snapshot_then_the_change(api: Api) -> None:
    client, _ = caller(api, "viewer")
    with closing(client), client.stream("GET", "/api/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        kind, first = _first_event(lines)
        assert kind == "snapshot" and first["messages"]["last_hour"] == 0  # type: ignore[index]
        send_orders(api.services, 2)
        while True:  # the next snapshot that shows the change
            kind, snap = _first_event(lines)
            if snap["messages"]["last_hour"] == 2:  # type: ignore[index]
                break


def test_streams_are_bounded_and_one_ends_with_its_session(api: Api) -> None:
    with ExitStack() as stack:
        sessions = []
        for _ in range(MAX_STREAMS):
            client, csrf = caller(api, "viewer")
            stack.callback(client.close)
            stream = stack.enter_context(client.stream("GET", "/api/events"))
            assert stream.status_code == 200
            sessions.append((client, csrf, stream))
        check_route(api, "viewer", "GET", "/api/events", 503)
        client, csrf, stream = sessions[0]
        lines = stream.iter_lines()
        _first_event(lines)
        assert client.delete("/api/session", headers=csrf).status_code == 204
        kinds = [line for line in lines if line.startswith("event: ")]
        assert kinds[-1] == "event: ended"  # and then the stream ended
    check_route(api, "viewer", "GET", "/api/dashboard", 200)


def test_an_open_stream_ends_cleanly_when_the_server_stops(services: Services) -> None:
    with running_api(services) as running:
        client, _ = caller(running, "viewer")
        stack = ExitStack()
        stack.callback(client.close)
        stream = stack.enter_context(client.stream("GET", "/api/events"))
        lines = stream.iter_lines()
        _first_event(lines)
    with stack:  # the server stopped: the stream ended with its last chunk, not cut off
        rest = list(lines)
    assert all(not line.startswith("event: ended") for line in rest)


def test_a_stream_without_a_session_is_refused(api: Api) -> None:
    check_route(api, "none", "GET", "/api/events", 401)

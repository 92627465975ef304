"""Requests the HTTP parser refuses before the application sees them (a malformed request
line, headers too large, a bad Content-Length): a 400 problem+json, the connection
closed, and the server goes on serving; past the server's limit of connections, a 503
problem+json with Retry-After. Raw sockets against the real admin server."""

from __future__ import annotations

import socket
from contextlib import ExitStack
from http.client import HTTPConnection
from urllib.parse import urlsplit

import pytest
import redis

from broker.common import jsontext
from broker.services.application import Services
from tests.integration.admin_helpers import Api, admin_settings, running_api, services_for


@pytest.fixture
def services(redis_client: redis.Redis) -> Services:
    services = services_for(admin_settings(), redis_client)
    services.live_mappings.load()
    return services


def exchange(api: Api, request: bytes) -> bytes:
    """Send ``request`` on a new connection; read until the server closes it."""
    parts = urlsplit(api.url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


BAD = {
    "request line": b"GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    "not HTTP (TLS)": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "headers never ending": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000,
    "bad Content-Length": b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
    "two Content-Lengths": (
        b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
    ),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_an_unparsable_request_is_a_400_problem_and_the_server_goes_on(api: Api, kind: str) -> None:
    answer = exchange(api, BAD[kind])
    head, _, body = answer.partition(b"\r\n\r\n")
    line, headers = status_of(head)
    assert line.startswith("HTTP/1.1 400 "), line
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = jsontext.loads(body)
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    assert "malformed HTTP request" in problem["detail"]
    with api.client() as client:  # the server still answers
        assert client.get("/healthz").status_code == 200


def status_of(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return lines[0], headers


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /healthz?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ],
)
def test_whole_but_oversized_requests_are_refused_by_the_application(
    api: Api, request_bytes: bytes, status: int
) -> None:
    head, _, body = exchange(api, request_bytes).partition(b"\r\n\r\n")
    line, headers = status_of(head)
    assert line.startswith(f"HTTP/1.1 {status} "), line
    assert headers["content-type"] == "application/problem+json"
    assert jsontext.loads(body)["status"] == status
    with api.client() as client:
        assert client.get("/healthz").status_code == 200


def test_the_admin_servers_connections_send_without_waiting_for_acks() -> None:
    # Nagle on, a response written in parts (headers, then body) waited for the client's
    # delayed ACK; asyncio turns it off only on sockets made with IPPROTO_TCP
    from broker.admin.server import _bind

    listener = _bind("127.0.0.1", 0)
    listener.setblocking(True)
    with listener, socket.create_connection(listener.getsockname()[:2], timeout=30):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def hold(api: Api) -> HTTPConnection:
    """A connection the server has counted (it answered on it) and keeps: a request begun
    on it stops the keep-alive timer that would close it."""
    parts = urlsplit(api.url)
    assert parts.hostname is not None and parts.port is not None
    connection = HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("GET", "/healthz")
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200
    assert connection.sock is not None
    connection.sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    return connection


def test_past_its_connection_limit_the_server_answers_503_problem_then_serves_again(
    services: Services,
) -> None:
    limit = 3
    with running_api(services, max_concurrency=limit) as api:
        with ExitStack() as held:
            for _ in range(limit):  # up to the limit, connections are served
                held.callback(hold(api).close)
            head, _, body = exchange(api, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").partition(
                b"\r\n\r\n"
            )
        line, headers = status_of(head)
        assert line.startswith("HTTP/1.1 503 "), line
        assert headers["content-type"] == "application/problem+json"
        assert headers["retry-after"] == "5"
        assert headers["connection"] == "close"
        problem = jsontext.loads(body)
        assert problem["status"] == 503 and problem["title"] == "Service Unavailable"
        assert "too many connections or requests" in problem["detail"]
        with api.client() as client:  # the held connections closed: served again
            assert client.get("/healthz").status_code == 200

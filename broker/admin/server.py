"""The admin face on the broker's event loop: uvicorn's ``Config`` and ``Server``, driven
by the broker (``broker.app``) like its other listeners.

The socket is bound here, so a port in use is a :class:`ConfigError` naming
``admin_port`` (uvicorn would exit the process), and port 0 gives any free port.
uvicorn installs no signal handler and configures no logging: the broker owns both.
TLS uses the broker's one server context (``broker.common.tls``: TLS 1.2+, BCP 195).

A request h11 cannot parse (a malformed request line, headers past its 16 KiB, a bad
Content-Length or Transfer-Encoding) never reaches the application: uvicorn answers
400 itself and closes the connection. :class:`_ProblemH11` makes that answer
problem+json like every other error, and so its 503 past the server's limit of
connections and requests at once: uvicorn's own check (plain text) is turned off and
:class:`_Limited` answers in its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Generator
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from broker.admin.events import Streams
from broker.admin.problems import PROBLEM_JSON, problem_body
from broker.errors import ConfigError

__all__ = ["MAX_CONCURRENCY", "AdminServer"]

log = logging.getLogger(__name__)

_GRACE = 5  # seconds open requests may take to finish when the broker stops
# connections open and requests running at once; past either, a request is answered 503
# before the application (the console is for a few people; each request may take a
# worker thread)
MAX_CONCURRENCY = 64
_BUSY_RETRY = b"5"  # seconds, the Retry-After of that 503
_KEEP_ALIVE = 15  # seconds an idle keep-alive connection stays open


_UNPARSABLE = problem_body(
    400, "malformed HTTP request (request line, headers or their size, or message framing)"
).encode()


_BUSY = problem_body(
    503, "the server has too many connections or requests at once; try again shortly"
).encode()
_BUSY_HEADERS = [
    (b"content-type", PROBLEM_JSON.encode()),
    (b"content-length", str(len(_BUSY)).encode()),
    (b"retry-after", _BUSY_RETRY),
    (b"connection", b"close"),
]


class _Limited:
    """The application behind the server's limit: a request finding more than ``limit``
    connections open or requests running, its own included (its task is in the set
    before it runs), is answered 503 problem+json with ``Retry-After``, its connection
    closed, its body unread. So ``limit`` connections are served (uvicorn's own check,
    ``>=`` before the task is added, refused the ``limit``-th)."""

    def __init__(self, app: ASGIApp, connections: set[Any], tasks: set[Any], limit: int) -> None:
        self.app, self._connections, self._tasks, self._limit = app, connections, tasks, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._limit
        if scope["type"] == "http" and (len(self._connections) > limit or len(self._tasks) > limit):
            log.warning("admin API: over %d connections or requests at once: answered 503", limit)
            await send({"type": "http.response.start", "status": 503, "headers": _BUSY_HEADERS})
            await send({"type": "http.response.body", "body": _BUSY})
            return
        await self.app(scope, receive, send)


class _ProblemH11(H11Protocol):
    """uvicorn's h11 protocol, its own answers as problem+json: the 400 to a request it
    cannot parse, and the 503 past ``limit_concurrency``. uvicorn checks that limit as a
    request arrives and runs its plain-text answer instead of the application; here its
    check is off (``limit_concurrency`` None on this connection) and the application it
    runs is :class:`_Limited`, which checks the same counts (the server's shared sets of
    connections and of request tasks) as the request starts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit, self.limit_concurrency = self.limit_concurrency, None
        if limit is not None:
            self.app = _Limited(self.app, self.connections, self.tasks, limit)

    def send_400_response(self, msg: str) -> None:
        headers = [(b"content-type", PROBLEM_JSON.encode()), (b"connection", b"close")]
        try:
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers)))
            self.transport.write(self.conn.send(h11.Data(data=_UNPARSABLE)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:  # no response can be sent in this state
            pass
        self.transport.close()


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: ``serve`` stops it, not SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class AdminServer:
    """Serves ``app`` on ``host``:``port`` (HTTPS with ``tls``), to at most
    ``max_concurrency`` connections and requests at once (:class:`_Limited`)."""

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        max_concurrency: int = MAX_CONCURRENCY,
    ) -> None:
        self._host, self._port, self._tls = host, port, tls
        self._app = app
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=_ProblemH11,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=_GRACE,
            limit_concurrency=max_concurrency,
            timeout_keep_alive=_KEEP_ALIVE,
            ssl_context_factory=(lambda _config, _default: tls) if tls is not None else None,
        )
        self._server = _Server(config)
        self._socket: socket.socket | None = None
        self._port_bound: int | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"AdminServer(host={self._host!r}, port={self.port!r}, tls={self._tls is not None})"

    @property
    def port(self) -> int | None:
        """The bound port (the one the system chose for 0), None before start."""
        return self._port_bound

    @property
    def scheme(self) -> str:
        return "https" if self._tls is not None else "http"

    async def start(self) -> None:
        """Bind and serve; ConfigError when the address cannot be used."""
        self._socket = sock = _bind(self._host, self._port)
        self._port_bound = int(sock.getsockname()[1])
        server = self._server
        server.config.load()
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup(sockets=[sock])
        self._task = asyncio.create_task(server.main_loop(), name="admin-server")

    async def stop(self) -> None:
        """Stop accepting, let open requests end (at most a few seconds), close."""
        task, self._task = self._task, None
        if task is None:
            return
        streams = getattr(self._app.state, "streams", None)
        if isinstance(streams, Streams):
            streams.close()  # open event streams end now, not after the grace period
        self._server.should_exit = True
        await task
        sock, self._socket = self._socket, None
        await self._server.shutdown(sockets=[sock] if sock is not None else None)


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=128)
    except OSError as e:
        raise ConfigError("admin_port", f"cannot listen on {host}:{port}: {e}") from e
    # Nagle off on every connection (they inherit it from the listener): asyncio turns it
    # off only for sockets whose proto is IPPROTO_TCP, which create_server's (0) is not, and
    # a response written in two parts (headers, body) then waited for the client's delayed
    # ACK, 40 ms a request on Linux (bench/RESULTS.md, the admin console benchmark)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock

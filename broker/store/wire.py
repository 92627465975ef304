"""Where the step pipeline meets redis-py: the one place that relies on its internals.

``broker.store.steps.StepPipeline`` sends a step and goes on (to decode and map the
next messages) while Redis executes it, and reads the replies later; with several
steps in flight on one connection it waits for the oldest one's replies *or* for new
work. redis-py's public API cannot do that: a ``Pipeline`` writes its commands and
reads their replies in one ``execute()``, and a client gives no handle to wait on.
Doing it through the public API would take a thread per connection waiting in
``execute()``, one more thread to share the GIL with, and groups of messages would
queue behind each other's round trips instead of overlapping: the intake's figures
(``bench/RESULTS.md``) rest on that overlap. So :class:`RedisWire` drives one
connection with redis-py's connection methods (``pack_commands``,
``send_packed_command``, ``read_response``, ``can_read``) and waits on its socket
(``_sock``, a private attribute) with ``select``.

Every use of those internals is in :class:`RedisWire`. ``SUPPORTED`` is the range of
redis-py versions it is written for: from pyproject's floor (5.0, where these methods
have their present form) up to the next major version, not read yet; the lock
(``requirements/*.txt``) pins 8.2.0, the one the tests run. ``tests/unit/
test_wire_support.py`` fails when the installed redis-py is outside the range, so an
upgrade past it is a deliberate step: read this class against the new version, then
widen ``SUPPORTED``.
"""

from __future__ import annotations

import select
from typing import Any, cast

import redis
from redis.connection import Connection
from redis.exceptions import ResponseError

__all__ = ["SUPPORTED", "RedisWire", "supported"]

SUPPORTED = ((5, 0), (9, 0))  # redis-py versions: from the first, up to (not with) the second


def supported(version: str) -> bool:
    """Whether redis-py ``version`` (``"8.2.0"``) is one :class:`RedisWire` was checked with."""
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    low, high = SUPPORTED
    return len(parts) == 2 and low <= parts < high


class RedisWire:
    """One connection of ``client``'s pool, written to and read from separately.

    Used by one thread. The connection is made on first use and again after
    :meth:`close`; the one connection object is kept (the pool counts every one it made).
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._connection: Connection | None = None

    def __repr__(self) -> str:
        return f"RedisWire(connected={self._connection is not None})"

    def send(self, commands: list[tuple[Any, ...]], *, check_health: bool) -> None:
        """Write ``commands`` without reading their replies. ``check_health``: a PING first
        if the connection was idle past the client's health-check interval (its reply is
        read at once: only with nothing else in flight)."""
        connection = self._connect()
        # connect() first: a Sentinel client's connection asks the sentinels for the
        # primary there (send_packed_command alone would connect to its default address)
        connection.connect()  # type: ignore[no-untyped-call]
        packed = connection.pack_commands(commands)  # type: ignore[no-untyped-call]
        connection.send_packed_command(packed, check_health=check_health)  # type: ignore[no-untyped-call]

    def read(self, count: int) -> list[Any]:
        """The next ``count`` replies, in order; an error reply in place of its command's."""
        connection = self._connect()
        replies: list[Any] = []
        for _ in range(count):
            try:
                replies.append(connection.read_response())
            except ResponseError as e:  # an error reply answers its own command
                replies.append(e)
        return replies

    def ready(self, wakeup: int) -> bool:
        """Wait until a reply can be read (True) or file descriptor ``wakeup`` is readable
        (False). True also when the connection failed: :meth:`read` meets the failure."""
        connection = self._connect()
        try:
            if connection.can_read(0):  # replies already buffered, or the connection failed
                return True
            sock = connection._sock  # redis-py keeps no public handle on it
        except Exception:
            return True
        if sock is None or getattr(sock, "pending", lambda: 0)():
            return True  # no socket (read() meets that), or TLS holds decrypted bytes
        readable, _, _ = select.select([sock, wakeup], [], [], connection.socket_timeout)
        return wakeup not in readable

    def close(self) -> None:
        """Close the connection; the next call opens it again."""
        if self._connection is not None:
            self._connection.disconnect()  # type: ignore[no-untyped-call]

    def _connect(self) -> Connection:
        if self._connection is None:
            self._connection = cast(Connection, self._client.connection_pool.make_connection())
        return self._connection

    @staticmethod
    def round_trip(client: redis.Redis, commands: list[tuple[Any, ...]]) -> list[Any]:
        """``commands`` as one pipeline of ``client`` (no MULTI): its public API, and the
        last untyped call; error replies are returned in place, not raised."""
        pipe = client.pipeline(transaction=False)
        for args in commands:
            pipe.execute_command(*args)  # type: ignore[no-untyped-call]
        return list(pipe.execute(raise_on_error=False))

"""The step pipeline's use of redis-py internals (``broker.store.wire``) is checked against
the installed redis-py: a version it was not checked with fails here, loudly, before a
broker runs on it."""

from __future__ import annotations

from typing import Any

import redis
from redis.connection import Connection, UnixDomainSocketConnection

from broker.store.wire import SUPPORTED, supported


def test_the_installed_redis_py_is_one_the_wire_was_checked_with() -> None:
    low, high = SUPPORTED
    assert supported(redis.__version__), (
        f"redis-py {redis.__version__} is not in {low} <= version < {high}: read "
        "broker/store/wire.py (RedisWire) against this version, then widen SUPPORTED"
    )


def test_the_connection_still_has_what_the_wire_uses() -> None:
    for kind in (Connection, UnixDomainSocketConnection):
        for method in ("pack_commands", "send_packed_command", "read_response", "can_read"):
            assert callable(getattr(kind, method, None)), f"{kind.__name__}.{method}"
        assert callable(getattr(kind, "disconnect", None))
    # redis-py leaves these untyped, as the wire sees them
    unix: Any = UnixDomainSocketConnection
    tcp: Any = Connection
    # the socket RedisWire.ready waits on: None until connected
    assert unix(path="/nonexistent")._sock is None
    packed = tcp().pack_commands([("PING",), ("ECHO", "x")])
    assert b"".join(packed) == b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n"


def test_versions_outside_the_checked_range_are_refused() -> None:
    low, high = SUPPORTED
    assert supported(".".join(map(str, low)) + ".0")
    assert not supported(".".join(map(str, high)) + ".0")
    assert not supported("4.6.0") and not supported("not a version")

"""Redis through Redis Sentinel: the sentinels say which server is the primary.

With ``redis_sentinels`` (``"host:port"`` of each sentinel) and
``redis_sentinel_master`` (the service they monitor), the broker's client is
redis-py's ``Sentinel(...).master_for(...)``: every new connection asks the
sentinels for the primary's address, and a connection to a server that became a
replica fails (READONLY is a connection error there). During a failover the
broker's writes fail with connection errors, which intake answers with a NAK
(AR, "store unavailable"): nothing is acknowledged that was not stored. The next
connection goes to the new primary; Lua scripts are loaded again on NOSCRIPT
(``broker.store.steps``); the mapping channel's subscription is renewed by
redis-py's pub/sub on reconnection.

Timeouts are bounded: ``redis_timeout`` for a command, at most 2 s to connect,
at most 1 s for a sentinel to answer, two quick retries of a connection; so a
failover shows as NAKs for its own duration, not as senders left waiting.

TLS: with ``redis_tls_ca`` set, the sentinels and the Redis servers they name
are reached over TLS (client certificate: ``redis_tls_cert``/``redis_tls_key``),
the certificates and host names checked as for ``rediss://``.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from broker.errors import ConfigError
from broker.store.connection import (
    RedisTLS,
    _tls_options,
    check_durability,
    connect_external,
    redact_url,
)

if TYPE_CHECKING:
    from broker.settings import Settings

__all__ = [
    "SENTINEL_CONNECT_TIMEOUT",
    "client_like",
    "connect_sentinel",
    "connect_site",
    "open_site_redis",
    "replica_confirmation",
    "sentinel_address",
    "sentinel_label",
    "sentinel_recipe",
    "store_down",
]

log = logging.getLogger(__name__)

SENTINEL_CONNECT_TIMEOUT = 2.0  # seconds to connect to a Redis server (at most)
_SENTINEL_TIMEOUT = 1.0  # seconds a sentinel may take to answer (at most)
_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")  # host:port, [v6]:port


def sentinel_address(text: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:26379"`` for IPv6) of a sentinel; ValueError if it is not one."""
    match = _ADDRESS.match(text.strip())
    if match is None or not 0 < int(match[2]) <= 65535:
        raise ValueError(f"{text!r} is not host:port")
    return match[1].strip("[]"), int(match[2])


def sentinel_label(settings: Settings) -> str:
    """Where the broker's Redis is, said for a person (no password)."""
    where = ", ".join(settings.redis_sentinels)
    return f"Redis Sentinel service {settings.redis_sentinel_master!r} (sentinels {where})"


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.25, base=0.05), 2)


def connect_sentinel(settings: Settings) -> redis.Redis:
    """A client of the primary of ``redis_sentinel_master`` (module docstring)."""
    for name in ("redis_tls_ca", "redis_tls_cert", "redis_tls_key"):
        path = getattr(settings, name)
        if path is not None and not os.access(path, os.R_OK):
            raise ConfigError(name, f"cannot read {path}")
    timeout = settings.redis_timeout
    tls: dict[str, Any] = {}
    if settings.redis_tls_ca is not None:
        files = RedisTLS(settings.redis_tls_ca, settings.redis_tls_cert, settings.redis_tls_key)
        tls = {"ssl": True, **_tls_options("rediss://sentinel", files)}
    sentinel_options: dict[str, Any] = {
        "socket_timeout": min(timeout, _SENTINEL_TIMEOUT),
        "socket_connect_timeout": min(timeout, _SENTINEL_TIMEOUT),
        **tls,
    }
    if settings.redis_sentinel_password:
        sentinel_options["password"] = settings.redis_sentinel_password
    sentinels = [sentinel_address(text) for text in settings.redis_sentinels]
    manager = Sentinel(sentinels, sentinel_kwargs=sentinel_options)
    client: redis.Redis = manager.master_for(
        settings.redis_sentinel_master,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, SENTINEL_CONNECT_TIMEOUT),
        health_check_interval=30,
        retry=_retry(),
        password=settings.redis_password or None,
        **tls,
    )
    return client


def client_like(
    connection: tuple[type[redis.Connection], dict[str, Any]], sentinel: dict[str, Any] | None
) -> redis.Redis:
    """A new client made from what :func:`sentinel_recipe` or a pool's options say (in
    another process: the search process)."""
    kind, options = connection
    if sentinel is None:
        return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=kind, **options))
    manager = Sentinel(sentinel["addresses"], sentinel_kwargs=sentinel["options"])
    options = {**options, "retry": _retry()}
    client: redis.Redis = manager.master_for(sentinel["service"], connection_class=kind, **options)
    return client


def sentinel_recipe(client: redis.Redis) -> dict[str, Any] | None:
    """The sentinels, their options and the service of a client made by
    :func:`connect_sentinel` (None for another client): picklable."""
    pool = client.connection_pool
    if not isinstance(pool, SentinelConnectionPool):
        return None
    manager = pool.sentinel_manager
    addresses, options = [], {}
    for sentinel in manager.sentinels:
        kwargs = sentinel.connection_pool.connection_kwargs
        addresses.append((kwargs["host"], kwargs["port"]))
    for name, value in manager.sentinel_kwargs.items():
        if name != "retry":
            options[name] = value
    return {"addresses": addresses, "options": options, "service": pool.service_name}


def replica_confirmation(client: redis.Redis) -> str:
    """``"WAITAOF"`` when the server has it (Redis 7.2+: a replica confirms the write is in
    its append-only file), else ``"WAIT"`` (a replica confirms it received the write)."""
    info = client.info("server")
    version = str(info.get("redis_version", "0")) if isinstance(info, dict) else "0"
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    return "WAITAOF" if parts >= (7, 2) else "WAIT"


def connect_site(settings: Settings) -> tuple[redis.Redis, str, str]:
    """A client of the site's Redis (``redis_url`` or ``redis_sentinels``), where it is
    said for a person, and the setting that names it."""
    if settings.redis_sentinels:
        return connect_sentinel(settings), sentinel_label(settings), "redis_sentinels"
    assert settings.redis_url is not None
    return connect_external(settings), redact_url(settings.redis_url), "redis_url"


def open_site_redis(settings: Settings) -> tuple[redis.Redis, str]:
    """:func:`connect_site`, checked at start-up: it answers, it will not lose what the
    broker acknowledges (or ``redis_allow_unsafe``), and how replicas confirm writes."""
    client, label, setting = connect_site(settings)
    try:
        client.ping()
        problems = check_durability(client)
    except redis.RedisError as e:
        client.close()
        raise ConfigError(setting, f"cannot reach Redis at {label}: {e}") from e
    if problems:
        detail = "; ".join(problems)
        if not settings.redis_allow_unsafe:
            client.close()
            raise ConfigError(
                setting,
                f"Redis at {label} could lose acknowledged orders: {detail}. Fix the server "
                "configuration, or set redis_allow_unsafe = true to run anyway.",
            )
        log.warning("Redis at %s is not durable (%s); running anyway as configured", label, detail)
    if settings.redis_wait_replicas:
        try:
            how = replica_confirmation(client)
        except redis.RedisError:  # INFO refused to this user: the first write finds out
            how = "WAITAOF if the server has it, else WAIT"
        log.info(
            "an AA waits for %d replica(s) to confirm each write (%s; WAITAOF: in their "
            "append-only files, Redis 7.2+; WAIT: received)",
            settings.redis_wait_replicas,
            how,
        )
    return client, label


def store_down(client: redis.Redis) -> str | None:
    """Why the store cannot take writes now, or None: Redis does not answer, or the server
    answering is a replica (a primary demoted in a failover, until the connection moves)."""
    try:
        client.ping()
    except (redis.RedisError, OSError):
        return "Redis does not answer"
    try:
        role = client.role()
    except (redis.RedisError, OSError):  # ROLE refused to this ACL user: PING must do
        return None
    first = role[0] if isinstance(role, list | tuple) and role else b""
    if first in (b"slave", "slave"):
        return "Redis is a read-only replica (a failover is under way)"
    return None

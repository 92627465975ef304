"""Redis for a one-off command (``messages``, later ``import``): share it, never fight over it.

With ``redis_url`` or ``redis_sentinels`` the command uses that Redis. With the embedded Redis, a
running broker owns the redis-server on its data directory (it holds the data
directory's lock, and the pidfile names a live redis-server), so the command
connects to that server's unix socket; when no broker runs, the command starts
the embedded server itself for its own duration (and stops it again, AOF
flushed), after shutting down one a dead broker left behind. A broker that
starts meanwhile refuses to share the data directory and says why.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from broker.errors import BrokerError
from broker.settings import Settings
from broker.store.connection import (
    EmbeddedRedis,
    connect,
    data_dir_in_use,
    running_embedded,
)
from broker.store.sentinel import connect_site

__all__ = ["CommandRedis", "redis_for_command"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandRedis:
    """A connected client and where it points, said for a person."""

    client: redis.Redis
    label: str


@contextlib.contextmanager
def redis_for_command(settings: Settings) -> Iterator[CommandRedis]:
    """Open the broker's Redis for the duration of a command (see the module docstring)."""
    if settings.redis_external:
        client, label, _setting = connect_site(settings)
        with _client(client, label) as c:
            yield c
        return
    data_dir = settings.data_dir / "redis"
    running = running_embedded(data_dir)
    if running is not None and data_dir_in_use(data_dir):
        pid, socket_path = running
        label = f"the running broker's embedded Redis (pid {pid}, {data_dir})"
        client = connect(f"unix://{socket_path}", timeout=settings.redis_timeout)
        with _client(client, label) as c:
            yield c
        return
    if not (data_dir / "appendonly.aof").exists() and not (data_dir / "appendonlydir").exists():
        log.info("no broker data in %s yet; starting an empty embedded Redis", data_dir)
    server = EmbeddedRedis(
        data_dir, binary=settings.redis_server_binary, max_memory=settings.redis_max_memory
    )
    server.start()
    try:
        label = f"embedded Redis started for this command ({data_dir})"
        with _client(connect(server.url, timeout=settings.redis_timeout), label) as c:
            yield c
    finally:
        server.stop()


@contextlib.contextmanager
def _client(client: redis.Redis, label: str) -> Iterator[CommandRedis]:
    try:
        try:
            client.ping()
        except (redis.RedisError, OSError) as e:
            raise BrokerError(f"cannot reach {label}: {e}") from e
        yield CommandRedis(client, label)
    finally:
        client.close()

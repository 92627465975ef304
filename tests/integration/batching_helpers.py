"""The batching tests' shared parts: a client that counts its round trips, a client of no
server, and Redis's count of blocked clients (readiness for a BLPOP in flight)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


class CountingRedis(redis.Redis):
    """A real client that counts the pipelines it sends (one round trip each), and the
    commands it sends outside a pipeline."""

    pipelines = 0
    direct = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        CountingRedis.pipelines += 1
        return super().pipeline(*args, **kwargs)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        CountingRedis.direct += 1
        execute: Any = super().execute_command  # untyped in redis-py
        return execute(*args, **options)


def unreachable(tmp_path: Path) -> redis.Redis:
    """A client of a server that is not there (no retries, to keep the test short)."""
    socket = str(tmp_path / "none.sock")
    return redis.Redis(unix_socket_path=socket, socket_timeout=1, retry=Retry(NoBackoff(), 0))


def blocked_clients(client: redis.Redis) -> int:
    return int(client.info("clients")["blocked_clients"])

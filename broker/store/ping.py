"""A PING to Redis every few seconds from a thread of its own: the round trip and the
failures in the broker's metrics (``mwl_broker_redis_roundtrip_seconds``,
``mwl_broker_redis_errors_total``).

Measured beside the work rather than on it: the intake's and the C-FIND's Redis calls
pay nothing, and the figure is what any call waits for on the wire and in Redis's queue.
"""

from __future__ import annotations

import threading
import time

import redis

from broker.common.metrics import BrokerMetrics

__all__ = ["PING_INTERVAL", "RedisPing"]

PING_INTERVAL = 5.0  # seconds between two PINGs


class RedisPing:
    """PINGs ``client`` every ``interval`` seconds until :meth:`stop`."""

    def __init__(
        self, client: redis.Redis, metrics: BrokerMetrics, interval: float = PING_INTERVAL
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"RedisPing(interval={self._interval})"

    def start(self) -> RedisPing:
        self._thread = threading.Thread(target=self._loop, name="redis-ping", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def ping(self) -> None:
        """One PING, measured (or counted as an error)."""
        started = time.perf_counter()
        try:
            self._client.ping()
        except (redis.RedisError, OSError):
            self._metrics.redis_errors.inc()
            return
        self._metrics.redis_seconds.observe(time.perf_counter() - started)

    def _loop(self) -> None:
        while True:
            self.ping()
            if self._stop.wait(self._interval):
                return

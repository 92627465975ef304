"""``/readyz`` asks Redis for a write, not only a PING: a real redis-server made a
read-only replica, or full (``maxmemory`` tiny with ``noeviction``), makes the broker
not ready, and the answer names why (no patient data); back to normal, ready again."""

from __future__ import annotations

import socket

import httpx
import redis

from broker.store.connection import EmbeddedRedis
from broker.store.keys import KeySchema
from broker.store.writable import store_unready
from tests.integration.admin_helpers import admin_settings, running_api, services_for


def _ready(client: httpx.Client) -> tuple[int, str]:
    answer = client.get("/readyz")
    return answer.status_code, answer.json().get("detail", "")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_read_only_replica_and_a_full_redis_are_not_ready(redis_client: redis.Redis) -> None:
    services = services_for(admin_settings(), redis_client)
    services.live_mappings.load()
    with running_api(services) as api, api.client() as client:
        assert _ready(client) == (200, "")
        redis_client.config_set("maxmemory-policy", "noeviction")
        redis_client.config_set("maxmemory", "1")
        try:
            full = _ready(client)
        finally:
            redis_client.config_set("maxmemory", "0")
        assert full[0] == 503 and "maxmemory reached" in full[1], full
        assert _ready(client) == (200, "")

        redis_client.replicaof("127.0.0.1", _closed_port())  # a replica of a primary gone
        try:
            replica = _ready(client)
        finally:
            redis_client.replicaof("NO", "ONE")
        assert replica[0] == 503 and "read-only replica" in replica[1], replica
        assert _ready(client) == (200, "")


def test_a_write_refused_behind_a_ping_that_answers(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    """``replica-read-only`` seen by the write itself: ROLE denied to the broker's user
    (an ACL), so only the write can tell."""
    keys = KeySchema("mwl")
    redis_client.acl_setuser("probe", enabled=True, passwords=["+pw"], keys=["*"],
                             commands=["+ping", "+set", "-role"])  # fmt: skip
    limited = redis.Redis.from_url(redis_server.url, username="probe", password="pw")
    try:
        assert store_unready(limited, keys) is None
        assert redis_client.pttl(keys.ready_probe()) > 0  # the probe's key expires by itself
        redis_client.replicaof("127.0.0.1", _closed_port())
        try:
            why = store_unready(limited, keys)
        finally:
            redis_client.replicaof("NO", "ONE")
        assert why == "Redis is a read-only replica: writes are refused"
    finally:
        limited.close()

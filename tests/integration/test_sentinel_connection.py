"""The broker's Sentinel client against real sentinels (``tests.sentinel_cluster``):
start-up checks that name the setting, the search process's client, a primary demoted
while connected, and which confirmation (WAIT or WAITAOF) the server gets."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from broker.cli.connect import redis_for_command
from broker.errors import ConfigError, StoreError
from broker.services.broad_search import WorkerSpec
from broker.settings import Settings, load_settings
from broker.store.sentinel import (
    client_like,
    open_site_redis,
    replica_confirmation,
    sentinel_recipe,
    store_down,
)
from broker.store.worklist import WorklistStore
from broker.worklist.model import OrderAction, OrderChange
from tests.conftest import KEYS, TEST_SECRET, require_tool
from tests.sentinel_cluster import SERVICE, ClusterTLS, SentinelCluster
from tests.tls_certs import issue, make_ca
from tests.waiting import wait_for


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    server = require_tool("redis-server", "redis-server")
    require_tool("redis-sentinel", "redis-sentinel")
    with SentinelCluster(tmp_path / "redis", server) as running:
        yield running


def settings_for(cluster: SentinelCluster, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_sentinels": cluster.sentinels,
        "redis_sentinel_master": SERVICE,
        "redis_password": cluster.password,
        "redis_sentinel_password": cluster.sentinel_password,
        "redis_key_secret": TEST_SECRET.decode(),
        **overrides,
    }
    return load_settings(environ={}, overrides=values)


def test_start_up_errors_name_the_sentinels_and_never_a_password(
    cluster: SentinelCluster,
) -> None:
    for wrong, says in (
        ({"redis_sentinel_master": "other"}, "No master found for 'other'"),
        ({"redis_sentinel_password": "not-it"}, "cannot reach Redis"),
    ):
        with pytest.raises(ConfigError) as info:
            open_site_redis(settings_for(cluster, **wrong))
        assert info.value.setting == "redis_sentinels"
        assert says in info.value.message
        assert cluster.password not in info.value.message
        assert cluster.sentinel_password not in info.value.message


def test_the_server_says_which_confirmation_replicas_give(
    cluster: SentinelCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "broker.store.sentinel")
    client, label = open_site_redis(settings_for(cluster, redis_wait_replicas=1))
    try:
        version = str(client.info("server")["redis_version"])
        major, minor = (int(p) for p in version.split(".")[:2])
        expected = "WAITAOF" if (major, minor) >= (7, 2) else "WAIT"
        assert replica_confirmation(client) == expected
        assert f"({expected};" in caplog.text
        assert SERVICE in label and cluster.password not in caplog.text
        store = WorklistStore(client, keys=KEYS, wait_replicas=1)
        store.apply([OrderChange("O1", OrderAction.CANCEL)], None)  # two replicas confirm
    finally:
        client.close()


def test_a_command_reaches_the_primary_the_sentinels_name(cluster: SentinelCluster) -> None:
    with redis_for_command(settings_for(cluster)) as conn:
        assert conn.label.startswith(f"Redis Sentinel service '{SERVICE}'")
        conn.client.set("from-a-command", "1")
    with cluster.client(cluster.primary_port()) as primary:
        assert primary.get("from-a-command") == b"1"


def test_the_search_process_client_follows_the_primary_too(cluster: SentinelCluster) -> None:
    client, _ = open_site_redis(settings_for(cluster))
    recipe = pickle.loads(pickle.dumps(sentinel_recipe(client)))
    connection = pickle.loads(pickle.dumps(WorkerSpec.connection_of(client)))
    child = client_like(connection, recipe)
    try:
        child.set("probe", "1")
        old = cluster.primary_port()
        cluster.kill(old)
        wait_for(lambda: cluster.primary_port() != old, "a replica promoted")
        with cluster.client(old) as gone:
            assert store_down(gone) == "Redis does not answer"
        # a write and its read-back on the primary the sentinels name, as one condition: on
        # a loaded machine a sentinel may fail over once more (the new primary silent past
        # down-after-milliseconds), and a write the next primary had not replicated is gone
        wait_for(lambda: _sets(child) and _primary_holds(cluster, b"2"),
                 "the child's client writes to the new primary")  # fmt: skip
    finally:
        child.close()
        client.close()


def test_a_primary_demoted_under_the_broker_is_left_for_the_new_one(
    cluster: SentinelCluster,
) -> None:
    """A coordinated failover keeps the old primary up, as a replica: the broker's open
    connection is refused (READONLY, a connection error for the Sentinel client) and the
    next write goes to the new primary."""
    client, _ = open_site_redis(settings_for(cluster))
    store = WorklistStore(client, keys=KEYS)
    change = [OrderChange("O1", OrderAction.CANCEL)]
    try:
        store.apply(change, None)
        old = cluster.primary_port()
        cluster.fail_over()
        wait_for(lambda: cluster.primary_port() != old, "the failover")
        with cluster.client(old) as demoted:
            wait_for(lambda: demoted.info("replication")["role"] == "slave", "old one demoted")
            assert store_down(demoted) == "Redis is a read-only replica (a failover is under way)"
        wait_for(lambda: _applies(store, change), "a write on the new primary")
        assert store_down(client) is None  # readyz: ready again
    finally:
        client.close()


def _sets(client: redis.Redis) -> bool:
    try:
        client.set("probe", "2")
    except redis.RedisError:
        return False
    return True


def _primary_holds(cluster: SentinelCluster, value: bytes) -> bool:
    with cluster.client(cluster.primary_port()) as primary:
        try:
            return bool(primary.get("probe") == value)
        except redis.RedisError:  # failed over again meanwhile
            return False


def _applies(store: WorklistStore, change: list[OrderChange]) -> bool:
    try:
        store.apply(change, None)
    except StoreError:
        return False
    return True


def test_sentinels_and_servers_over_tls_with_redis_tls_ca(tmp_path: Path) -> None:
    server = require_tool("redis-server", "redis-server")
    require_tool("redis-sentinel", "redis-sentinel")
    ca = make_ca(tmp_path / "certs", "Redis test CA")
    pair = issue(ca, tmp_path / "certs", "redis", ip="127.0.0.1")
    tls = ClusterTLS(ca.cert, pair.cert, pair.key)
    with SentinelCluster(tmp_path / "redis", server, tls=tls) as cluster:
        with pytest.raises(ConfigError) as info:  # TLS is only on with redis_tls_ca
            open_site_redis(settings_for(cluster))
        assert info.value.setting == "redis_sentinels"
        client, _ = open_site_redis(settings_for(cluster, redis_tls_ca=ca.cert))
        try:
            store = WorklistStore(client, keys=KEYS, wait_replicas=1)
            store.apply([OrderChange("O1", OrderAction.CANCEL)], None)
            assert store.count() == 0  # a cancel of nothing: written, confirmed, no entry
        finally:
            client.close()

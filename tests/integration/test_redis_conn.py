"""Embedded redis-server life cycle and the durability check of a configured Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from broker.errors import ConfigError
from broker.store.connection import EmbeddedRedis, check_durability, connect, redact_url


def test_embedded_server_is_durable_and_keeps_data(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    with EmbeddedRedis(data) as server:
        client = connect(server.url)
        assert check_durability(client) == []
        client.set("k", "v")
        client.close()
    assert (data / "appendonly.aof").exists()
    with EmbeddedRedis(data) as server:
        client = connect(server.url)
        assert client.get("k") == b"v"
        client.close()


def test_second_server_on_same_data_dir_is_refused(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis"), pytest.raises(ConfigError) as info:
        EmbeddedRedis(tmp_path / "redis").start()
    assert info.value.setting == "data_dir"
    assert "in use by another process" in info.value.message


def test_long_data_dir_still_gets_a_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedRedis(deep) as server:
        assert connect(server.url).ping()


def test_non_durable_server_is_reported(redis_client: redis.Redis) -> None:
    redis_client.config_set("appendonly", "no")
    redis_client.config_set("appendfsync", "everysec")
    redis_client.config_set("maxmemory-policy", "allkeys-lru")
    problems = check_durability(redis_client)
    assert [p.split(" ", 1)[0] for p in problems] == [
        "appendonly",
        "appendfsync",
        "maxmemory-policy",
    ]
    assert "need 'always'" in problems[1]


def test_redact_url_hides_password() -> None:
    assert redact_url("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
    assert "pw" not in redact_url("rediss://:pw@host")
    assert redact_url("unix:///tmp/x.sock") == "unix:///tmp/x.sock"


def test_relative_data_dir_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with EmbeddedRedis(Path("data") / "redis") as server:
        assert connect(server.url).ping()
    assert (tmp_path / "data" / "redis" / "appendonly.aof").exists()

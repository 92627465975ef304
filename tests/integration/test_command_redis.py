"""Redis for one-off commands: share a running broker's embedded server, or run one briefly."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.cli.connect import redis_for_command
from broker.errors import BrokerError
from broker.settings import load_settings
from broker.store.connection import EmbeddedRedis, running_embedded


def test_connects_to_the_running_embedded_server_even_with_a_long_path(tmp_path: Path) -> None:
    data = tmp_path / ("d" * 60) / ("e" * 60)  # socket path too long: it lives in /tmp
    server = EmbeddedRedis(data / "redis")
    server.start()
    try:
        found = running_embedded(data / "redis")
        assert found is not None and found[1] == server.socket_path
        settings = load_settings(environ={}, overrides={"data_dir": data})
        with redis_for_command(settings) as conn:
            assert "running broker" in conn.label
            conn.client.set("k", "v")
        assert server.socket_path.exists(), "the command must not stop the broker's server"
    finally:
        server.stop()
    assert not (data / "redis" / "redis.sock.path").exists()


def test_starts_and_stops_its_own_server_when_no_broker_runs(tmp_path: Path) -> None:
    settings = load_settings(environ={}, overrides={"data_dir": tmp_path})
    with redis_for_command(settings) as conn:
        assert "started for this command" in conn.label
        conn.client.set("kept", "1")
        assert running_embedded(tmp_path / "redis") is not None
    assert running_embedded(tmp_path / "redis") is None
    with redis_for_command(settings) as conn:
        assert conn.client.get("kept") == b"1"  # AOF: the data outlives the command


def test_unreachable_redis_url_is_a_clear_error(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/nothing.sock"
    settings = load_settings(environ={}, overrides={"redis_url": url, "redis_timeout": 1})
    with pytest.raises(BrokerError, match="cannot reach"), redis_for_command(settings):
        pass

"""Shared fixtures: real redis-server processes, real stores."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import settings as hypothesis_settings

from broker.store.connection import EmbeddedRedis
from broker.store.keys import KeySchema
from broker.store.worklist import WorklistStore

# The site secret of the tests' key schema (``broker.store.keys``): pseudonyms in key names
TEST_SECRET = b"the tests' redis_key_secret, 32+ bytes long"
KEYS = KeySchema("mwl", TEST_SECRET)


def keys_for(prefix: str) -> KeySchema:
    """The tests' key schema under another prefix."""
    return KeySchema(prefix, TEST_SECRET)


# `make fuzz` (HYPOTHESIS_PROFILE=fuzz): the property tests with many more examples, no
# per-example deadline; the default profile is hypothesis's own (CI's fuzz smoke).
hypothesis_settings.register_profile("fuzz", max_examples=20_000, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def require_tool(name: str, package: str = "dcmtk") -> str:
    """The path of an external tool; in CI a missing tool fails the test, elsewhere it skips."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package {package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A real redis-server of its own, on a unix socket in the test's directory."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def store(redis_client: redis.Redis) -> WorklistStore:
    return WorklistStore(redis_client, keys=KEYS)


@pytest.fixture
def redis7_client(tmp_path: Path) -> Iterator[redis.Redis]:
    """A client of the system's redis-server (Debian 12: Redis 7.0), run as the embedded one
    is: for what differs from the wheel's Redis 6.2 (``redis_client``)."""
    binary = require_tool("redis-server", "redis-server")
    server = EmbeddedRedis(tmp_path / "redis7", binary=Path(binary))
    server.start()
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    try:
        yield client
    finally:
        client.close()
        server.stop()

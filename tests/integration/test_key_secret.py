"""The site secret of the key pseudonyms (``broker.store.key_secret``): where it comes from, that
it survives restarts, and that a broker with another one does not start."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
import redis

from broker.errors import ConfigError
from broker.mllp.client import MLLPClient, summarize_ack
from broker.store.connection import EmbeddedRedis
from broker.store.key_secret import EMBEDDED_SECRET_FILE
from broker.worklist.model import CandidateCriteria
from tests.broker_runner import DATA, broker_settings, running_broker
from tests.conftest import KEYS

ORDER = (DATA / "orm_o01_nw_latin1.hl7").read_bytes().replace(b"\r\n", b"\r")


def test_the_embedded_redis_gets_a_secret_of_its_own_that_lasts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_broker(broker_settings(data_dir)) as broker:
        assert broker.store is not None
        broker.store.client.hset("probe", "x", "1")
    secret = data_dir / EMBEDDED_SECRET_FILE
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(secret.read_text()) > 40
    first = secret.read_text()
    with running_broker(broker_settings(data_dir)) as broker:  # the same secret again
        assert broker.store is not None and broker.store.client.exists("probe")
    assert secret.read_text() == first
    assert (tmp_path / "other" / EMBEDDED_SECRET_FILE).exists() is False
    with running_broker(broker_settings(tmp_path / "other")):
        assert (tmp_path / "other" / EMBEDDED_SECRET_FILE).read_text() != first


def test_a_changed_secret_stops_the_broker_before_it_serves(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_broker(broker_settings(data_dir)) as broker:
        assert broker.endpoints is not None
        with MLLPClient("127.0.0.1", broker.endpoints.hl7_port, timeout=30) as client:
            assert summarize_ack(client.send(ORDER)).code == "AA"
    (data_dir / EMBEDDED_SECRET_FILE).write_text("a new secret that was not the one used\n")
    with pytest.raises(ConfigError) as refused, running_broker(broker_settings(data_dir)):
        pass
    assert refused.value.setting == "redis_key_secret"
    assert "a new secret" not in str(refused.value)
    server = EmbeddedRedis(data_dir / "redis")  # the data are untouched
    server.start()
    try:
        db = redis.Redis.from_url(server.url)
        assert db.scard(KEYS.all_entries()) == 1
        db.close()
    finally:
        server.stop()


def test_an_external_redis_needs_the_setting(
    tmp_path: Path, redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    without = broker_settings(tmp_path / "data", redis_url=redis_server.url, redis_key_secret=None)
    with pytest.raises(ConfigError) as refused, running_broker(without):
        pass
    assert refused.value.setting == "redis_key_secret" and "redis_url" in refused.value.message
    assert not (tmp_path / "data" / EMBEDDED_SECRET_FILE).exists()  # none made up
    caplog.set_level(logging.DEBUG)
    secret = KEYS.secret.decode() if KEYS.secret else ""
    with running_broker(broker_settings(tmp_path / "data", redis_url=redis_server.url)) as b:
        assert b.store is not None and b.store.keys.fingerprint() == KEYS.fingerprint()
        assert list(b.store.candidates(CandidateCriteria())) == []
    assert secret and secret not in caplog.text

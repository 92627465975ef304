"""Data written by the previous release (``tests/data/redis_schema2.json``, made by
``tests/schema2_data.py``) is read by this one: started on it, the broker answers the
same C-FIND queries with the same entries, and the user, token and mapping versions
work; a backup of it restores to the same answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from broker.app import Broker
from broker.cli import main
from broker.store.connection import EmbeddedRedis
from broker.store.keys import SCHEMA_VERSION
from broker.store.schema_version import schema_status
from tests import schema1_data as s1
from tests import schema2_data as s2
from tests.broker_runner import running_broker

FIXTURE: dict[str, Any] = json.loads(s2.FIXTURE.read_text(encoding="utf-8"))


def previous_release_data(data_dir: Path) -> Path:
    """A broker data directory whose embedded Redis holds the previous release's dump."""
    server = EmbeddedRedis(data_dir / "redis")
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        s1.load(client, FIXTURE["redis"])
        client.close()
    finally:
        server.stop()
    return data_dir


@pytest.fixture
def upgraded(tmp_path: Path) -> Iterator[Broker]:
    data_dir = previous_release_data(tmp_path / "data")
    with running_broker(s2.settings(data_dir)) as broker:
        yield broker


def test_the_previous_release_data_answers_as_it_did(upgraded: Broker) -> None:
    ports, services = upgraded.endpoints, upgraded.services
    assert ports is not None and services is not None and upgraded.store is not None
    assert schema_status(upgraded.store.client, upgraded.store.keys).version == SCHEMA_VERSION
    assert s2.answers(ports.dicom_port, ports.ae_title) == FIXTURE["answers"]
    assert services.mapping_versions.active_number() == 2
    assert services.auth.login(s2.USER, s2.PASSWORD, "127.0.0.1").principal.name == s2.USER
    assert services.auth.token_principal(FIXTURE["token"]) is not None


def test_a_backup_of_the_previous_release_data_restores_the_answers(
    upgraded: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MWL_BROKER_REDIS_KEY_SECRET", s2.SECRET)
    backup = tmp_path / "old.mwlbackup"
    assert main(["backup", str(backup), "--data-dir", str(tmp_path / "data")]) == 0
    monkeypatch.delenv("MWL_BROKER_REDIS_KEY_SECRET")
    fresh = tmp_path / "fresh"
    assert main(["restore", str(backup), "--data-dir", str(fresh)]) == 0
    with running_broker(s2.settings(fresh, redis_key_secret=None)) as broker:
        assert broker.endpoints is not None
        found = s2.answers(broker.endpoints.dicom_port, broker.endpoints.ae_title)
        assert found == FIXTURE["answers"]

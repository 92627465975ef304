"""Fixtures shared by integration modules that were split by responsibility."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest
import redis

from broker.app import build_dicom_server
from broker.dicom.server import DicomServer, configure_pynetdicom_logging
from broker.services.application import Services
from tests.integration.admin_helpers import Api, Recorded, running_api
from tests.integration.batching_helpers import CountingRedis
from tests.integration.mllp_server_helpers import SECRET, SERVER_LOGGER


@pytest.fixture
def server_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The MLLP server's log at DEBUG, checked for patient data after the test (the MLLP
    server modules use it for every test: ``pytestmark``)."""
    caplog.set_level(logging.DEBUG, logger=SERVER_LOGGER)
    yield caplog
    assert SECRET.decode() not in caplog.text
    assert "DOE" not in caplog.text


@pytest.fixture
def counting(redis_client: redis.Redis) -> redis.Redis:
    """A client of the test's redis-server that counts its round trips (from zero)."""
    CountingRedis.pipelines = CountingRedis.direct = 0
    kwargs = redis_client.connection_pool.connection_kwargs
    return CountingRedis(unix_socket_path=kwargs["path"], socket_timeout=5)


@pytest.fixture
def audit() -> Recorded:
    """An audit sink that keeps the records a test's parts make."""
    return Recorded()


@pytest.fixture
def api(services: Services) -> Iterator[Api]:
    """The admin API on the module's ``services``, served until the test ends."""
    with running_api(services) as running:
        yield running


@pytest.fixture
def editor(api: Api) -> Iterator[httpx.Client]:
    """A client holding the editor's session, its CSRF token sent with every request."""
    client, csrf = api.login("editor")
    client.headers["X-CSRF-Token"] = csrf
    with closing(client):
        yield client


@pytest.fixture
def dicom(services: Services) -> Iterator[DicomServer]:
    """The broker's DICOM server as ``serve`` wires it, on the module's ``services``."""
    configure_pynetdicom_logging()
    server = build_dicom_server(services)
    server.start()
    try:
        yield server
    finally:
        server.stop()

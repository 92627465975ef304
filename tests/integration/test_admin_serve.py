"""The admin API inside the whole broker (``serve``): its port, readiness, HTTPS, stop."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx
import pytest

from broker.services.auth import Role
from tests.broker_runner import broker_settings, running_broker
from tests.integration.admin_helpers import PASSWORD
from tests.integration.dicom_find_helpers import entry, put
from tests.tls_certs import issue, make_ca


def test_the_broker_serves_the_admin_api_on_its_loop(tmp_path: Path) -> None:
    with running_broker(broker_settings(tmp_path / "data")) as broker:
        endpoints = broker.endpoints
        assert endpoints is not None and endpoints.admin_port not in (None, 0, 8080)
        url = endpoints.admin_url
        assert url == f"http://127.0.0.1:{endpoints.admin_port}"
        assert broker.services is not None
        broker.services.auth.add_user("root", PASSWORD, Role.ADMIN, by="test")
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/readyz").json() == {"status": "ready"}
            login = client.post("/api/session", json={"user": "root", "password": PASSWORD})
            assert login.status_code == 200
            status = client.get("/api/status").json()
        assert status["listeners"] == {"hl7": endpoints.hl7_port, "dicom": endpoints.dicom_port}
        assert status["mapping_version"] == 1
    with pytest.raises(httpx.TransportError):  # stopped with the broker
        httpx.get(f"{url}/healthz", timeout=5)


def test_a_broad_search_runs_in_the_search_process_until_the_broker_stops(
    tmp_path: Path,
) -> None:
    settings = broker_settings(tmp_path / "data", dicom_broad_query_candidates=2)
    with running_broker(settings) as broker:
        assert broker.endpoints is not None and broker.services is not None
        services = broker.services
        put(services.store, *(entry(f"ACC-{n}", "CT1", "20261201") for n in range(3)))
        services.auth.add_user("root", PASSWORD, Role.ADMIN, by="test")
        with httpx.Client(base_url=str(broker.endpoints.admin_url), timeout=60) as client:
            login = client.post("/api/session", json={"user": "root", "password": PASSWORD})
            client.headers["X-CSRF-Token"] = login.json()["csrf"]
            found = client.post("/api/worklist/search", json={"criteria": {}})
        assert found.status_code == 200
        assert [e["accession"] for e in found.json()["entries"]] == ["ACC-0", "ACC-1", "ACC-2"]
        child = services.broad_searches.pid  # on the embedded Redis's socket
        assert child is not None and child != os.getpid()
    assert services.broad_searches.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_admin_enabled_false_means_no_admin_port(tmp_path: Path) -> None:
    with running_broker(broker_settings(tmp_path / "data", admin_enabled=False)) as broker:
        assert broker.endpoints is not None
        assert broker.endpoints.admin_port is None and broker.endpoints.admin_url is None


def test_https_with_a_secure_host_only_cookie(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "pki")
    server = issue(ca, tmp_path / "pki", "broker", ip="127.0.0.1")
    settings = broker_settings(
        tmp_path / "data", admin_tls_cert=server.cert, admin_tls_key=server.key
    )
    with running_broker(settings) as broker:
        assert broker.endpoints is not None and broker.services is not None
        url = broker.endpoints.admin_url
        assert url is not None and url.startswith("https://127.0.0.1:")
        broker.services.auth.add_user("root", PASSWORD, Role.ADMIN, by="test")
        trust = ssl.create_default_context(cafile=str(ca.cert))
        with httpx.Client(base_url=url, timeout=30, verify=trust) as client:
            login = client.post("/api/session", json={"user": "root", "password": PASSWORD})
            assert login.status_code == 200
            cookie = login.headers["set-cookie"]
            assert cookie.startswith("__Host-mwlb_session=")
            assert "secure" in cookie.lower() and "httponly" in cookie.lower()
            assert login.headers["strict-transport-security"].startswith("max-age=")
            assert client.get("/api/session").json()["user"] == "root"
        with pytest.raises(httpx.TransportError):  # plain HTTP is not spoken there
            httpx.get(url.replace("https://", "http://") + "/healthz", timeout=5)

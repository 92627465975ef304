"""Schemathesis over the admin API's OpenAPI document, against the app served over real
HTTP (uvicorn on 127.0.0.1 port 0, a real redis-server).

Every operation of the document, as ``create_app`` builds it, so routes added later are
walked without a change here: no 5xx, the status codes, content types, headers and bodies
as the document declares them. Each case gets fresh credentials (a new admin token; for the
DICOMweb routes a new token bound to a scanner), so an operation that ends a session,
revokes a token or disables a user cannot break the next case. Deterministic and bounded:
derandomized, a few examples per operation, a timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from broker.admin.app import create_app
from broker.admin.openapi import openapi_document
from broker.services.application import Services
from broker.services.auth import Role
from broker.settings import Settings, load_settings
from tests.broker_runner import MAPPINGS
from tests.integration.admin_helpers import Api, running_api, services_for

SCANNER = "CT1"
CONFIG = f"""
[scanners.{SCANNER}]
addresses = ["127.0.0.1"]
scope = "all"
date_window = "any"
[hl7_destinations.ris]
host = "127.0.0.1"
port = 2575
"""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 6  # per operation


def settings_for(tmp_path: Path) -> Settings:
    config = tmp_path / "broker.toml"
    config.write_text(CONFIG, encoding="utf-8")
    overrides = {"admin_host": "127.0.0.1", "admin_port": 0, "mappings_dir": MAPPINGS}
    return load_settings(config_file=config, environ={}, overrides=overrides)


def _document() -> dict[str, object]:
    """The document as the app builds it (no Redis is reached: the client never connects)."""
    settings = load_settings(environ={}, overrides={"mappings_dir": MAPPINGS})
    client = redis.Redis(unix_socket_path="/nonexistent/redis.sock")
    return openapi_document(create_app(Services(settings, client), settings))


schema = schemathesis.openapi.from_dict(_document())
# The dashboard's event stream never ends by itself, so a call could not be validated; it
# is tested over real HTTP in test_admin_dashboard (first snapshot, change, bound, end).
STREAMS = ("/api/events",)


@pytest.fixture
def api(redis_client: redis.Redis, tmp_path: Path) -> Iterator[Api]:
    services = services_for(settings_for(tmp_path), redis_client)
    services.live_mappings.load()
    with running_api(services) as running:
        yield running


def credentials(api: Api, path: str) -> dict[str, str]:
    """A new token for this case: bound to the scanner for a DICOMweb route."""
    auth = api.services.auth
    if path.startswith("/api/") or path in ("/healthz", "/readyz"):
        text, _ = auth.create_token(Role.ADMIN, label="schemathesis", by="test")
    else:
        text, _ = auth.create_token(Role.VIEWER, label="dicomweb", by="test", scanner=SCANNER)
    return {"Authorization": f"Bearer {text}"}


def test_the_served_document_is_the_one_walked(api: Api) -> None:
    with api.client(headers=credentials(api, "/api/")) as client:
        served = client.get("/api/openapi.json").json()
    assert served == _document()
    assert set(STREAMS) <= set(served["paths"])  # the exclusion names real paths


@pytest.mark.timeout(60)
@schema.exclude(path=list(STREAMS)).parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(api: Api, case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(
        base_url=api.url, headers=credentials(api, case.path), checks=CHECKS, timeout=30
    )

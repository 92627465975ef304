"""The application's services (``broker.services.application``): built on first use, each
with only the parts it needs, on a real redis-server."""

from __future__ import annotations

import pytest
import redis

from broker.app import build_services
from broker.audit.events import AuditEvent, AuditType
from broker.errors import BrokerError
from broker.services.application import Services
from broker.settings import load_settings
from tests.broker_runner import MAPPINGS
from tests.conftest import TEST_SECRET

ENVIRON = {"MWL_BROKER_REDIS_KEY_SECRET": TEST_SECRET.decode()}


class Recorded:
    """An audit sink that keeps what it is given."""

    log_phi = False

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)


def _services(client: redis.Redis, audit: Recorded | None = None) -> Services:
    settings = load_settings(environ=ENVIRON, overrides={"mappings_dir": MAPPINGS})
    return build_services(settings, client, audit) if audit else build_services(settings, client)


def test_mapping_and_message_services_never_build_the_worklist_store(
    redis_client: redis.Redis,
) -> None:
    services = _services(redis_client)
    assert services.mappings.history(5) == ([], None)
    assert services.messages.count() == 0
    assert "store" not in vars(services)  # no key secret check, no key migration
    assert services.purge.run(dry_run=True).dry_run
    assert "store" in vars(services)


def test_a_service_raises_what_went_wrong_and_records_what_it_changed(
    redis_client: redis.Redis,
) -> None:
    audit = Recorded()
    services = _services(redis_client, audit)
    with pytest.raises(BrokerError, match="no message 404 in the message log"):
        services.messages.get("404")
    services.mappings.publish(author="tester", comment="first")
    report = services.purge.run()
    assert report.removed_entries == 0
    assert [e.type for e in audit.events] == [AuditType.MAPPING_PUBLISH, AuditType.PURGE]

"""``mwl-broker outbound discard`` and ``retry --all`` on a real redis-server: what a
discard leaves parked of its order, the reason required, every parked event retried."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from broker.audit.events import AuditType
from broker.audit.stream import AuditFilter
from broker.cli import main
from broker.services.application import Services
from broker.store.connection import EmbeddedRedis
from tests.integration.admin_helpers import site_services
from tests.integration.outbound_helpers import queue
from tests.integration.test_admin_outbound import SITE, seed
from tests.integration.test_services import ENVIRON


@pytest.fixture
def services(
    redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Services:
    """The site of the API test, its events seeded: 1 parked (AE), 2 held behind it, 3
    waiting; the commands get the key secret from the environment."""
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    services = site_services(redis_client, tmp_path, SITE)
    seed(services)
    return services


@pytest.fixture
def config(services: Services, tmp_path: Path) -> Path:
    return tmp_path / "broker.toml"


def outbound(config: Path, server: EmbeddedRedis, *args: str) -> int:
    return main(["outbound", *args, "--config", str(config), "--redis-url", server.url])


def test_discard_names_what_stays_parked_and_retry_all_sends_the_rest(
    config: Path, redis_server: EmbeddedRedis, services: Services,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    assert (
        outbound(config, redis_server, "discard", "ris", "1", "--reason", "closed in the RIS") == 0
    )
    out = capsys.readouterr().out
    assert "discarded event 1 of ris; its order's event(s) 2 stay parked" in out
    assert outbound(config, redis_server, "list") == 0
    listing = capsys.readouterr().out
    assert "ris: 1 waiting, 1 parked\n  sending: nobody; oldest waiting" in listing
    assert "last error: held: an earlier event" not in listing
    assert outbound(config, redis_server, "retry", "ris", "--all") == 0
    assert "queued again for ris: 1 parked event(s)" in capsys.readouterr().out
    q = queue(services.store)
    assert q.queued() == ["2", "3"] and q.parked() == []
    kinds = frozenset({AuditType.OUTBOUND_RETRY, AuditType.OUTBOUND_DISCARD})
    trail = [s.event for s in services.audit_trail.read(AuditFilter(types=kinds), limit=9)]
    assert [e.type for e in trail] == [AuditType.OUTBOUND_RETRY, AuditType.OUTBOUND_DISCARD]
    assert trail[1].reason == "closed in the RIS" and trail[1].target == "1"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("discard", "ris", "2", "--reason", "  "), "--reason"),
        (("retry", "ris"), "an event ID or --all"),
        (("retry", "ris", "1", "--all"), "an event ID or --all"),
        (("discard", "ris", "3", "--reason", "r"), "not parked"),
        (("discard", "elsewhere", "1", "--reason", "r"), "no destination 'elsewhere'"),
    ],
)
def test_bad_calls_name_the_option(
    config: Path, redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...], named: str,
) -> None:  # fmt: skip
    assert outbound(config, redis_server, *args) != 0
    assert named in capsys.readouterr().err


def test_discard_without_a_reason_is_refused_by_the_parser(
    config: Path, redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        outbound(config, redis_server, "discard", "ris", "1")
    assert "--reason" in capsys.readouterr().err

"""MSH-7 ahead of the broker's clock: refused at MSH-7, nothing stored (a real Redis).

A message dated in the future would make the sender's real updates after it look
older and be skipped, cancels included: a stranger could hide orders that way, and
a RIS with a wrong clock does it by accident.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis

from broker.common.clock import ManualClock
from broker.mapping.registry import MappingRegistry
from broker.mllp.client import summarize_ack
from broker.services.routing import HL7Router, RouterConfig
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria
from tests.broker_runner import DATA, MAPPINGS
from tests.conftest import KEYS
from tests.messages import own_messages

NOW = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
ORDER = (DATA / "orm_o01_nw_latin1.hl7").read_bytes()  # MSH-7 20261125083000, no offset


def router(client: redis.Redis, skew: float = 600.0) -> HL7Router:
    registry = MappingRegistry.load(MAPPINGS)
    config = RouterConfig(max_clock_skew=skew, clock=ManualClock(NOW.timestamp()))
    return HL7Router(WorklistStore(client, keys=KEYS), lambda: registry, config)


def dated(moment: str, control_id: str = "ORM-1001") -> bytes:
    """The README order with MSH-7 (and MSH-10) replaced."""
    return ORDER.replace(
        b"20261125083000||ORM^O01|ORM-1001", f"{moment}||ORM^O01|{control_id}".encode()
    )


def test_a_message_ten_years_ahead_is_refused_at_msh7(redis_client: redis.Redis) -> None:
    ack = summarize_ack(router(redis_client).handle(dated("20361125083000+0000"), "p"))
    assert ack.code == "AE"
    assert ack.errors == ("MSH-7 102 Data type error",)
    assert "3653 days ahead of this broker's clock" in ack.text
    assert "nothing was stored" in ack.text
    assert WorklistStore(redis_client, keys=KEYS).count() == 0
    assert list(WorklistStore(redis_client, keys=KEYS).candidates(CandidateCriteria())) == []


def test_within_the_allowed_skew_the_message_is_taken(redis_client: redis.Redis) -> None:
    five_minutes = (NOW + timedelta(minutes=5)).strftime("%Y%m%d%H%M%S+0000")
    ack = summarize_ack(router(redis_client).handle(dated(five_minutes), "p"))
    assert ack.code == "AA"
    eleven = (NOW + timedelta(minutes=11)).strftime("%Y%m%d%H%M%S+0000")
    late = summarize_ack(router(redis_client).handle(dated(eleven, "ORM-2"), "p"))
    assert late.code == "AE" and "11 min ahead" in late.text


def test_the_senders_zone_is_applied_before_comparing(redis_client: redis.Redis) -> None:
    """08:30 in UTC+09:00 is 23:30 the day before in UTC: in the past, not ahead."""
    tokyo = dated("20261125173000+0900")
    assert summarize_ack(router(redis_client).handle(tokyo, "p")).code == "AA"


def test_zero_turns_the_check_off(redis_client: redis.Redis) -> None:
    ack = summarize_ack(router(redis_client, skew=0).handle(dated("20361125083000"), "p"))
    assert ack.code == "AA"


def test_a_message_without_a_usable_msh7_is_not_refused_for_it(redis_client: redis.Redis) -> None:
    ack = summarize_ack(router(redis_client).handle(dated("notadate"), "p"))
    assert ack.code == "AA"


def test_patient_updates_are_held_to_the_same_clock(redis_client: redis.Redis) -> None:
    adt = dict(own_messages())["adt-A08"].replace(b"|20261125083000|", b"|20361125083000|", 1)
    ack = summarize_ack(router(redis_client).handle(adt, "p"))
    assert ack.code == "AE" and len(ack.errors) == 1
    assert ack.errors[0].startswith("MSH-7 102 Data type error: MSH-7 (date/time of message)")

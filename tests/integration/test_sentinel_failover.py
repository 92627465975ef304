"""A broker on Redis Sentinel while its primary is killed: real redis-server processes (a
primary, two replicas, three sentinels), four MLLP senders that resend what was not
acknowledged (``tests.sentinel_failover``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.sentinel_failover import SENDERS, run_failover

PER_SENDER = 50


@pytest.mark.parametrize("wait_replicas", [1, 0])
def test_the_primary_killed_mid_burst_every_order_is_answered_and_the_broker_follows(
    tmp_path: Path, wait_replicas: int
) -> None:
    server = require_tool("redis-server", "redis-server")
    require_tool("redis-sentinel", "redis-sentinel")
    outcome = run_failover(tmp_path, server, wait_replicas=wait_replicas, per_sender=PER_SENDER)
    assert outcome.new_primary != outcome.old_primary  # the sentinels promoted a replica
    assert outcome.unanswered == 0  # every order was answered, in the end AA
    assert len(outcome.acknowledged) == SENDERS * PER_SENDER
    assert outcome.answers["AA"] == SENDERS * PER_SENDER  # each one once
    refusals = sum(n for code, n in outcome.answers.items() if code != "AA")
    assert refusals > 0  # the failover was seen: NAKs (AR), resent, then AA
    assert "AE" not in outcome.answers  # a lost store is "resend later", not a fault
    assert outcome.ready_after_failover
    if wait_replicas:
        assert outcome.lost == set()  # every acknowledged order is on the new primary

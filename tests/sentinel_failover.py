"""The failover scenario: a broker on Redis Sentinel, four senders, the primary killed.

Each sender sends its orders one at a time and resends one until it is answered
AA (after a NAK or a lost connection, as a RIS interface engine does). Once
``kill_after`` orders were acknowledged the primary gets SIGKILL; the sentinels
promote a replica and the broker follows. Afterwards the orders on the new
primary are compared with the ones acknowledged. Used by the test and by
``bench/sentinel_failover.py``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from broker.mllp.client import split_messages
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria
from tests.broker_runner import DATA, broker_settings, running_broker
from tests.conftest import KEYS, TEST_SECRET
from tests.resend import ResendingClient
from tests.sentinel_cluster import SERVICE, SentinelCluster
from tests.waiting import wait_for

SENDERS = 4
_TEMPLATE = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
_RESEND_PAUSE = 0.05  # a sender's pause before it resends a message not acknowledged


def order(n: int) -> bytes:
    """A distinct order: control ID, patient, order numbers, accession ACC-<n>, UIDs."""
    return _TEMPLATE.replace(b"1001", str(n).encode())


@dataclass
class Outcome:
    """What the senders saw and what the new primary holds."""

    answers: Counter[str] = field(default_factory=Counter)  # AA, AR, AE, "no answer"
    acknowledged: set[int] = field(default_factory=set)
    unanswered: int = 0  # orders a sender gave up on (none: every one ended AA)
    stored: set[int] = field(default_factory=set)  # on the new primary
    old_primary: int = 0
    new_primary: int = 0
    refused_seconds: float = 0.0  # from the kill to the last answer that was not AA
    ready_after_failover: bool = False  # /readyz said 200 once the senders were done
    longest_wait: float = 0.0  # the longest an order waited for its AA, resends included
    failovers: int = 0  # switches to another primary (more than one: a busy new primary
    # was taken for down too, and replaced)

    @property
    def lost(self) -> set[int]:
        return self.acknowledged - self.stored


class _Sender(threading.Thread):
    def __init__(self, index: int, port: int, count: int, outcome: Outcome) -> None:
        super().__init__(name=f"sender-{index}", daemon=True)
        self._numbers = [30_000 + index + SENDERS * k for k in range(count)]
        self._client = ResendingClient(lambda: port, pause=_RESEND_PAUSE)
        self._outcome = outcome
        self.last_refusal = 0.0

    def run(self) -> None:
        deadline = time.monotonic() + 60
        try:
            for n in self._numbers:
                code, first_sent = "", time.monotonic()
                for attempt in self._client.attempts(order(n), deadline):
                    code = attempt.code
                    self._outcome.answers[code] += 1
                    if code == "AA":
                        self._outcome.acknowledged.add(n)
                        waited = attempt.answered - first_sent
                        self._outcome.longest_wait = max(self._outcome.longest_wait, waited)
                    else:
                        self.last_refusal = attempt.answered
                if code != "AA":
                    self._outcome.unanswered += 1
        finally:
            self._client.close()


def run_failover(
    folder: Path, server: str, *, wait_replicas: int, per_sender: int = 50, kill_after: int = 40
) -> Outcome:
    """The scenario (module docstring), in ``folder``, with ``server`` (redis-server)."""
    outcome = Outcome()
    with SentinelCluster(folder / "redis", server) as cluster:
        settings = broker_settings(
            folder / "data",
            redis_sentinels=cluster.sentinels,
            redis_sentinel_master=SERVICE,
            redis_password=cluster.password,
            redis_sentinel_password=cluster.sentinel_password,
            redis_wait_replicas=wait_replicas,
            redis_key_secret=TEST_SECRET.decode(),
        )
        with running_broker(settings) as broker:
            assert broker.endpoints is not None
            port = broker.endpoints.hl7_port
            senders = [_Sender(i, port, per_sender, outcome) for i in range(SENDERS)]
            for sender in senders:
                sender.start()
            wait_for(lambda: len(outcome.acknowledged) >= kill_after, "orders acknowledged")
            outcome.old_primary = cluster.primary_port()
            cluster.kill(outcome.old_primary)
            killed = time.monotonic()
            for sender in senders:
                sender.join(90)
            last = max(sender.last_refusal for sender in senders)
            outcome.refused_seconds = max(0.0, last - killed)
            ready = httpx.get(f"{broker.endpoints.admin_url}/readyz", timeout=30)
            outcome.ready_after_failover = ready.status_code == 200
        outcome.new_primary = cluster.primary_port()
        outcome.failovers = cluster.failovers()
        with cluster.client(outcome.new_primary) as client:
            outcome.stored = _accessions(client)
    return outcome


def _accessions(client: redis.Redis) -> set[int]:
    store = WorklistStore(client, keys=KEYS)
    return {
        int(str(ds.AccessionNumber).removeprefix("ACC-"))
        for ds in store.candidates(CandidateCriteria())
    }

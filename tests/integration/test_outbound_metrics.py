"""The outbound metrics over a real receiver process and a real Redis: attempts by
outcome (AA, AE, timeout, connection error), the delivery histogram, and the queue
gauges read at scrape time (queued, oldest age, dead letters), labelled by the
configured destination only."""

from __future__ import annotations

from pathlib import Path

import redis
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry

from broker.common.clock import SYSTEM_CLOCK
from broker.common.metrics import BrokerMetrics
from broker.store.worklist import WorklistStore
from tests.conftest import KEYS
from tests.integration.outbound_helpers import Receiver, put_orders, queue, sender, set_status

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _metrics(store: WorklistStore) -> BrokerMetrics:
    metrics = BrokerMetrics(destinations=["ris"])
    q = queue(store)

    def state() -> dict[str, tuple[int, int, float]]:
        waiting, parked, at = q.depth()
        return {"ris": (waiting, parked, SYSTEM_CLOCK.now() - at if at is not None else 0.0)}

    metrics.outbound.state = state
    metrics.outbound.state_ttl = 0.0  # every scrape reads afresh
    return metrics


def _samples(metrics: BrokerMetrics) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _attempts(samples: Samples, outcome: str) -> float:
    return _value(samples, "mwl_broker_outbound_attempts_total", destination="ris",
                  outcome=outcome)  # fmt: skip


def test_queued_to_a_stopped_receiver_then_delivered(store: WorklistStore, tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "got.jsonl")
    receiver.start()
    receiver.kill()  # its port is now closed: connections are refused
    metrics = _metrics(store)
    for entry_id in put_orders(store, 3):
        set_status(store, entry_id, "STARTED")
    worker = sender(store, receiver.destination(), metrics.outbound)
    assert worker.step() > 0
    before = _samples(metrics)
    assert _value(before, "mwl_broker_outbound_queued", destination="ris") == 3
    assert _value(before, "mwl_broker_outbound_oldest_age_seconds", destination="ris") >= 0
    assert _value(before, "mwl_broker_outbound_dead_letters", destination="ris") == 0
    assert _attempts(before, "connection_error") == 1

    receiver.start()
    try:
        for _ in range(3):
            assert worker.step() == 0.0
    finally:
        worker.close()
        receiver.kill()
    assert len(receiver.records()) == 3
    after = _samples(metrics)
    assert _attempts(after, "AA") == 3
    assert _value(after, "mwl_broker_outbound_delivery_seconds_count", destination="ris") == 3
    assert _value(after, "mwl_broker_outbound_queued", destination="ris") == 0
    assert _value(after, "mwl_broker_outbound_oldest_age_seconds", destination="ris") == 0


def test_an_ae_is_a_dead_letter_and_no_answer_a_timeout(
    store: WorklistStore, tmp_path: Path
) -> None:
    receiver = Receiver(tmp_path / "got.jsonl")
    receiver.start(answer="ae")
    metrics = _metrics(store)
    first, second = put_orders(store, 2)
    set_status(store, first, "STARTED")
    worker = sender(store, receiver.destination(), metrics.outbound)
    try:
        assert worker.step() == 0.0
        worker.close()
        receiver.kill()
        receiver.start(answer="none")
        set_status(store, second, "STARTED")
        worker = sender(store, receiver.destination(ack_timeout=0.3), metrics.outbound)
        assert worker.step() > 0
    finally:
        worker.close()
        receiver.kill()
    samples = _samples(metrics)
    assert _attempts(samples, "AE") == 1 and _attempts(samples, "timeout") == 1
    assert _value(samples, "mwl_broker_outbound_dead_letters", destination="ris") == 1
    assert _value(samples, "mwl_broker_outbound_queued", destination="ris") == 1
    names = {n for n, _ in samples if n.startswith("mwl_broker_outbound")}
    assert all(dict(labels).get("destination") in (None, "ris") for n, labels in samples
               if n in names)  # fmt: skip


def test_a_scrape_while_redis_is_down_counts_an_error_and_answers(tmp_path: Path) -> None:
    """The queue gauges are left out (never a 500), the Redis errors counter says why."""
    gone = redis.Redis(unix_socket_path=str(tmp_path / "no-redis.sock"), socket_timeout=1,
                       retry=Retry(NoBackoff(), 0))  # fmt: skip
    store = WorklistStore(gone, keys=KEYS)
    metrics = _metrics(store)
    first = _samples(metrics)
    assert not any(name == "mwl_broker_outbound_queued" for name, _ in first)
    # the counter is read before the queues in one scrape: the next one shows it
    assert _value(_samples(metrics), "mwl_broker_redis_errors_total") == 1

"""A destination over TLS against a real TLS MLLP receiver process: with the site's CA
and a client certificate the status is delivered (the receiver saw the certificate);
a receiver whose certificate the CA did not sign gets nothing, and the event stays
queued, retried, counted as a connection error and logged, without patient data."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from broker.common.metrics import BrokerMetrics
from broker.hl7.destinations import Destination
from broker.store.worklist import WorklistStore
from tests.integration.outbound_helpers import Receiver, put_orders, queue, sender, set_status
from tests.tls_certs import Pair, issue, make_ca


def _pki(folder: Path) -> dict[str, Pair]:
    ca, other = make_ca(folder), make_ca(folder / "other", "Other CA")
    return {
        "ca": ca,
        "receiver": issue(ca, folder, "ris", ip="127.0.0.1"),
        "client": issue(ca, folder, "MWL_BROKER"),
        "impostor": issue(other, folder / "other", "ris", ip="127.0.0.1"),
    }


def _over_tls(receiver: Receiver, pki: dict[str, Pair]) -> Destination:
    c = pki["client"]
    return receiver.destination(tls_ca=pki["ca"].cert, tls_cert=c.cert, tls_key=c.key)


def _attempts(metrics: BrokerMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "mwl_broker_outbound_attempts_total", {"destination": "ris", "outcome": outcome}
    )
    return value or 0.0


def test_delivered_over_tls_with_a_client_certificate(store: WorklistStore, tmp_path: Path) -> None:
    pki = _pki(tmp_path / "pki")
    receiver = Receiver(tmp_path / "got.jsonl")
    server = pki["receiver"]
    receiver.start(tls=(str(server.cert), str(server.key), str(pki["ca"].cert)))
    metrics = BrokerMetrics(destinations=["ris"])
    (entry_id,) = put_orders(store, 1)
    set_status(store, entry_id, "STARTED")
    worker = sender(store, _over_tls(receiver, pki), metrics.outbound)
    try:
        assert worker.step() == 0.0
    finally:
        worker.close()
        receiver.kill()
    (got,) = receiver.records()
    assert got["status"] == "IP" and got["client"] == "MWL_BROKER"
    assert queue(store).head() is None and _attempts(metrics, "AA") == 1


def test_an_untrusted_receiver_gets_nothing_and_the_event_waits(
    store: WorklistStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pki = _pki(tmp_path / "pki")
    receiver = Receiver(tmp_path / "got.jsonl")
    impostor = pki["impostor"]
    receiver.start(tls=(str(impostor.cert), str(impostor.key)))
    metrics = BrokerMetrics(destinations=["ris"])
    (entry_id,) = put_orders(store, 1)
    set_status(store, entry_id, "STARTED")
    q = queue(store)
    (event_id,) = q.queued()
    worker = sender(store, _over_tls(receiver, pki), metrics.outbound)
    caplog.set_level(logging.WARNING, logger="broker.services.outbound_sender")
    try:
        assert worker.step() > 0 and worker.step() > 0  # retried, with a backoff
    finally:
        worker.close()
        receiver.kill()
    assert receiver.records() == []
    event = q.event(event_id)
    assert event is not None and event.state == "queued" and event.attempts == 2
    assert q.queued() == [event_id]  # never dropped
    assert _attempts(metrics, "connection_error") == 2 and _attempts(metrics, "AA") == 0
    said = [r.getMessage() for r in caplog.records if f"event {event_id} " in r.getMessage()]
    assert len(said) == 2 and all("certificate verify failed" in m for m in said), said
    assert not any(s in m for m in said for s in ("DOE", "P-0", "ACC-0", "O-0"))

    server = pki["receiver"]  # the right receiver back: the waiting event is delivered
    receiver.start(tls=(str(server.cert), str(server.key)))
    worker = sender(store, _over_tls(receiver, pki), metrics.outbound)
    try:
        assert worker.step() == 0.0
    finally:
        worker.close()
        receiver.kill()
    assert [r["status"] for r in receiver.records()] == ["IP"] and q.head() is None

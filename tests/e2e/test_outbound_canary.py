"""PHI canaries on the way back to the RIS: a broker logging JSON at DEBUG takes the
canary order from a configured sender, a modality reports it IN PROGRESS and COMPLETED,
the status messages reach a real receiver; then the receiver is down and a hand cancel
of another canary order waits and fails. No log line and no metric holds a canary (the
receiver got the messages, which do)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from broker.mllp.client import MLLPClient, summarize_ack
from tests.broker_runner import running_broker
from tests.e2e.test_phi_canary import canary_lines, orders, patient_flows, perform
from tests.integration.outbound_helpers import Receiver
from tests.integration.test_outbound_correlation import json_lines
from tests.integration.test_outbound_serve import config_for, settings_for
from tests.redis_replies import as_text
from tests.waiting import wait_for

pytestmark = pytest.mark.interop


def test_no_canary_in_the_outbound_logs_and_metrics(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "got.jsonl")
    receiver.start()
    config = config_for(tmp_path, receiver.port)
    try:
        with (
            json_lines(logging.DEBUG) as out,
            running_broker(settings_for(config, tmp_path / "data")) as broker,
        ):
            assert broker.endpoints is not None and broker.services is not None
            nw, second = orders()[0], patient_flows()[1]  # two orders, two patients
            with MLLPClient("127.0.0.1", broker.endpoints.hl7_port, timeout=30) as client:
                assert summarize_ack(client.send(nw)).code == "AA"
            perform(broker.endpoints.dicom_port, broker.endpoints.ae_title)
            wait_for(lambda: len(receiver.records()) >= 2, "IP and CM at the receiver")
            receiver.kill()
            with MLLPClient("127.0.0.1", broker.endpoints.hl7_port, timeout=30) as client:
                assert summarize_ack(client.send(second)).code == "AA"
            services, store = broker.services, broker.services.store
            ids = [as_text(m) for m in store.client.smembers(store.keys.all_entries())]
            (waiting,) = [e for e in map(services.entries.read, ids) if e.status == "SCHEDULED"]
            services.entries.cancel(waiting.entry_id, expect=waiting.revision, reason="r",
                                    user="t")  # fmt: skip
            wait_for(lambda: "not delivered" in out.getvalue(), "the failure logged")
            metrics = services.metrics.exposition().decode()
    finally:
        receiver.kill()
    assert [r["status"] for r in receiver.records()] == ["IP", "CM"]
    assert 'outcome="connection_error"' in metrics and canary_lines(metrics) == []
    text = out.getvalue()
    assert "delivered" in text and canary_lines(text) == []

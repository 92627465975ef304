"""The correlation ID of an order's message follows it to its status events: a broker
with JSON logs takes an order over MLLP from a configured sender, a hand cancel queues
the status event, the sender delivers it to a real receiver, and the sender's line
saying so carries the message's correlation ID (and the entry id the intake's line
named), no patient data; the broker's metrics count the delivery."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from broker.common.logsafety import safety_handler
from tests.broker_runner import running_broker
from tests.integration.outbound_helpers import Receiver
from tests.integration.test_outbound_serve import config_for, send_order, settings_for
from tests.redis_replies import as_text
from tests.waiting import wait_for


@contextmanager
def json_lines(level: int = logging.INFO) -> Iterator[io.StringIO]:
    """Every log line (``level`` and up) as JSON, as ``log_format = "json"`` writes them."""
    out = io.StringIO()
    handler = safety_handler(out, log_phi=False, log_format="json")
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(before)


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


def test_the_orders_correlation_id_reaches_the_delivery_line(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "got.jsonl")
    receiver.start()
    config = config_for(tmp_path, receiver.port)
    try:
        with json_lines() as out, running_broker(settings_for(config, tmp_path / "data")) as b:
            assert send_order(b, 7) == "AA"
            assert b.services is not None
            store = b.services.store
            (entry_id,) = [as_text(m) for m in store.client.smembers(store.keys.all_entries())]
            entry = b.services.entries.read(entry_id)
            b.services.entries.cancel(entry.entry_id, expect=entry.revision, reason="r", user="t")
            wait_for(lambda: len(receiver.records()) >= 1, "the cancel at the receiver")
            wait_for(lambda: any("delivered" in x["message"] for x in _lines(out)), "logged")
            registry = b.services.metrics.registry
            ris = {"destination": "ris"}
            attempts = registry.get_sample_value(
                "mwl_broker_outbound_attempts_total", {**ris, "outcome": "AA"}
            )
            assert attempts == 1  # the broker's senders count into its /metrics
            assert registry.get_sample_value("mwl_broker_outbound_queued", ris) == 0
            assert registry.get_sample_value("mwl_broker_outbound_dead_letters", ris) == 0
    finally:
        receiver.kill()
    lines = _lines(out)
    (intake,) = [x for x in lines if entry.entry_id in x.get("entries", [])]
    (delivered,) = [x for x in lines if x["logger"].endswith("outbound_sender")
                    and "delivered" in x["message"]]  # fmt: skip
    assert intake["correlation_id"].startswith("m-")
    assert delivered["correlation_id"] == intake["correlation_id"]
    assert delivered["entry"] == entry.entry_id and delivered["destination"] == "ris"
    assert delivered["status"] == "CANCELED" and delivered["ack_code"] == "AA"
    text = json.dumps(delivered)
    assert not any(s in text for s in ("PLC-", "FIL-", "ACC-", "PAT-", "ller", "Schmidt"))

"""Status back to the RIS through a running broker: an order over MLLP from a configured
sender, the modality's MPPS over DICOM, the status messages at a real receiver process;
an AE parks the message and ``mwl-broker outbound`` lists, shows and retries it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from broker.app import Broker
from broker.mllp.client import MLLPClient, split_messages, summarize_ack
from broker.settings import Settings, load_settings
from broker.store.connection import EmbeddedRedis
from broker.store.entry_edits import StoredEntry
from tests.broker_runner import DATA, MAPPINGS, running_broker
from tests.conftest import TEST_SECRET
from tests.e2e.test_mpps_cycle import modality, n_create_from, worklist
from tests.integration.hl7_seed import order
from tests.integration.outbound_helpers import Receiver
from tests.scu import create_then_complete
from tests.waiting import wait_for

pytestmark = pytest.mark.interop


def config_for(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "broker.toml"
    config.write_text(
        '[hl7_senders.RIS]\naddresses = ["127.0.0.1"]\ndestination = "ris"\n'
        f'[hl7_destinations.ris]\nhost = "127.0.0.1"\nport = {port}\n'
        "ack_timeout = 5\nretry_first = 0.05\nretry_max = 0.5\n"
    )
    return config


def settings_for(config: Path, data: Path, **more: Any) -> Settings:
    overrides = {"hl7_host": "127.0.0.1", "hl7_port": 0, "dicom_host": "127.0.0.1",
                 "dicom_port": 0, "admin_host": "127.0.0.1", "admin_port": 0, "data_dir": data,
                 "mappings_dir": MAPPINGS, "hl7_idle_timeout": 30, **more}  # fmt: skip
    if more.get("redis_url"):
        overrides["redis_key_secret"] = TEST_SECRET.decode()
    return load_settings(config_file=config, environ={}, overrides=overrides)


def send_order(broker: Broker, n: int | None = None) -> str:
    assert broker.endpoints is not None
    message = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
    if n is not None:
        message = order(n)
    with MLLPClient("127.0.0.1", broker.endpoints.hl7_port, timeout=30) as client:
        return summarize_ack(client.send(message)).code


def outbound(config: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", "outbound", *args, "--config", str(config),
         "--data-dir", str(data), "--mappings-dir", str(MAPPINGS)],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("MWL_BROKER_")},
    )  # fmt: skip


def test_mpps_and_a_hand_cancel_reach_the_ris_and_an_ae_is_parked_and_retried(
    tmp_path: Path,
) -> None:
    receiver = Receiver(tmp_path / "got.jsonl")
    receiver.start()
    config, data = config_for(tmp_path, receiver.port), tmp_path / "data"
    try:
        with running_broker(settings_for(config, data)) as broker:
            assert send_order(broker) == "AA"
            with modality(broker) as assoc:
                (item,) = worklist(assoc)
                create_then_complete(assoc, n_create_from(item))
            wait_for(lambda: len(receiver.records()) >= 2, "IP and CM at the receiver")
            got = [(r["order"], r["status"]) for r in receiver.records()]
            assert got == [("PLC-1001", "IP"), ("PLC-1001", "CM")]

            listing = outbound(config, data, "list")
            assert listing.returncode == 0 and "ris: 0 waiting, 0 parked" in listing.stdout
            _ae_then_retry(broker, receiver, config, data)
    finally:
        receiver.kill()


def _ae_then_retry(broker: Broker, receiver: Receiver, config: Path, data: Path) -> None:
    receiver.kill()
    receiver.start(answer="ae")
    assert broker.services is not None and send_order(broker, 1) == "AA"
    entries, store = broker.services.entries, broker.services.store
    ids = [
        m.decode() if isinstance(m, bytes) else m
        for m in store.client.smembers(store.keys.all_entries())
    ]
    (entry,) = (e for e in map(entries.read, ids) if e.status == "SCHEDULED")
    entries.cancel(entry.entry_id, expect=entry.revision, reason="patient left", user="t")
    wait_for(lambda: "1 parked" in outbound(config, data, "list").stdout, "the AE'd event parked")
    listing = outbound(config, data, "list").stdout
    (event_id,) = re.findall(r"^(\d+)\s+parked", listing, flags=re.MULTILINE)
    shown = outbound(config, data, "show", "ris", event_id)
    assert "unknown order" in shown.stdout and "ORC|" not in shown.stdout
    with_message = outbound(config, data, "show", "ris", event_id, "--message").stdout
    assert "ORC|OC|PLC-900001|FIL-900001||CA|" in with_message
    receiver.kill()
    receiver.start(answer="aa")
    retried = outbound(config, data, "retry", "ris", event_id)
    assert retried.returncode == 0, retried.stderr
    wait_for(lambda: "0 waiting, 0 parked" in outbound(config, data, "list").stdout, "sent")
    assert receiver.records()[-1]["status"] == "CA"
    unknown = outbound(config, data, "retry", "ris", "999999")
    assert unknown.returncode != 0 and "no event 999999" in unknown.stderr


def test_two_brokers_on_one_redis_send_through_one_connection(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    receiver = Receiver(tmp_path / "got.jsonl")
    receiver.start()
    config = config_for(tmp_path, receiver.port)
    first = settings_for(config, tmp_path / "a", redis_url=redis_server.url)
    second = settings_for(config, tmp_path / "b", redis_url=redis_server.url)
    try:
        with running_broker(first) as a, running_broker(second) as b:
            for n in range(12):
                assert send_order(a if n % 2 else b, n) == "AA"
            brokers = [a, b]
            for n, entry in enumerate(_entries(a)):
                services = brokers[n % 2].services
                assert services is not None
                services.entries.cancel(entry.entry_id, expect=entry.revision, reason="r", user="t")
            wait_for(lambda: len(receiver.records()) >= 12, "every cancel at the receiver")
    finally:
        receiver.kill()
    records = receiver.records()
    assert len({r["control"] for r in records}) == len(records) == 12
    assert {r["open"] for r in records} == {1} and len({r["connection"] for r in records}) == 1


def _entries(broker: Broker) -> list[StoredEntry]:
    assert broker.services is not None
    store, entries = broker.services.store, broker.services.entries
    members = store.client.smembers(store.keys.all_entries())
    return [entries.read(m.decode() if isinstance(m, bytes) else m) for m in sorted(members)]

"""A broker on its embedded Redis restarted after dying while it held a destination's
lease: status messages go out at once, not after the lease expires (the data directory's
lock means no other broker can be sending). Found by the crash-safety soak (``tests.crash``),
where each SIGKILL held back the RIS's status messages for the lease's whole lifetime."""

from __future__ import annotations

from pathlib import Path

from broker.app import build_services
from broker.store.connection import EmbeddedRedis, connect
from tests.broker_runner import running_broker
from tests.e2e.test_mpps_cycle import modality, n_create_from, worklist
from tests.integration.outbound_helpers import Receiver
from tests.integration.test_outbound_serve import config_for, send_order, settings_for
from tests.scu import create_then_complete
from tests.waiting import wait_for

_AN_HOUR_MS = 3_600_000


def test_a_lease_left_by_a_dead_run_does_not_hold_back_the_status(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "got.jsonl")
    receiver.start()
    config, data = config_for(tmp_path, receiver.port), tmp_path / "data"
    settings = settings_for(config, data)
    with EmbeddedRedis(data / "redis") as server:  # the run that died, holding the lease
        client = connect(server.url)
        services = build_services(settings, client)
        assert services.outbound_queues["ris"].acquire("a-dead-run", _AN_HOUR_MS)
        services.close()
        client.close()
    try:
        with running_broker(settings) as broker:
            assert send_order(broker) == "AA"
            with modality(broker) as assoc:
                (item,) = worklist(assoc)
                create_then_complete(assoc, n_create_from(item))
            wait_for(lambda: len(receiver.records()) >= 2, "IP and CM at the receiver")
    finally:
        receiver.kill()
    assert [r["status"] for r in receiver.records()] == ["IP", "CM"]

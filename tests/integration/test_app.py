"""The composed broker: restarts keep entries, Redis down never gives AA, unsafe Redis refused."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.app import Broker
from broker.errors import ConfigError
from broker.mllp.client import MLLPClient, split_messages, summarize_ack
from broker.store.connection import EmbeddedRedis, connect
from tests.broker_runner import DATA, broker_settings, running_broker
from tests.scu import ModalityWorklistInformationFind, identifier_of


def send(broker: Broker, path: Path) -> list[str]:
    assert broker.endpoints is not None
    with MLLPClient("127.0.0.1", broker.endpoints.hl7_port, timeout=30) as client:
        return [summarize_ack(client.send(m)).code for m in split_messages(path.read_bytes())]


def query_all(broker: Broker) -> list[Dataset]:
    """A broad MWL query with a pynetdicom SCU."""
    assert broker.endpoints is not None
    ae = AE(ae_title="TEST_SCU")
    ae.add_requested_context(ModalityWorklistInformationFind)
    identifier = Dataset()
    identifier.PatientName = ""
    identifier.PatientID = ""
    sps = Dataset()
    sps.Modality = ""
    sps.ScheduledProcedureStepID = ""
    identifier.ScheduledProcedureStepSequence = [sps]
    assoc = ae.associate(
        "127.0.0.1", broker.endpoints.dicom_port, ae_title=broker.endpoints.ae_title
    )
    assert assoc.is_established
    answers = []
    try:
        for status, ds in assoc.send_c_find(identifier, ModalityWorklistInformationFind):
            assert status is not None and status.Status in (0x0000, 0xFF00, 0xFF01)
            if status.Status in (0xFF00, 0xFF01):
                answers.append(identifier_of(ds))
    finally:
        assoc.release()
    return answers


def test_entries_survive_a_restart(tmp_path: Path) -> None:
    settings = broker_settings(tmp_path / "data")
    with running_broker(settings) as broker:
        assert send(broker, DATA / "omi_o23_two_ipc_utf8.hl7") == ["AA"]
    with running_broker(settings) as broker:
        answers = query_all(broker)
    assert sorted(
        a.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID for a in answers
    ) == [
        "SPS-2001A",
        "SPS-2001B",
    ]
    assert {str(a.PatientName) for a in answers} == {"Øvergård^Zoë^Åsa"}


def test_redis_down_means_no_aa_and_recovery_after(tmp_path: Path) -> None:
    redis_server = EmbeddedRedis(tmp_path / "external")
    redis_server.start()
    try:
        settings = broker_settings(tmp_path / "data", redis_url=redis_server.url)
        with running_broker(settings) as broker:
            redis_server.stop()
            assert send(broker, DATA / "orm_o01_nw_latin1.hl7") == ["AR"]
            redis_server.start()
            assert send(broker, DATA / "orm_o01_nw_latin1.hl7") == ["AA"]
            assert len(query_all(broker)) == 1
    finally:
        redis_server.stop()


def test_non_durable_redis_is_refused_unless_allowed(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "external") as redis_server:
        client = connect(redis_server.url)
        client.config_set("appendfsync", "everysec")
        client.close()
        settings = broker_settings(tmp_path / "data", redis_url=redis_server.url)
        with pytest.raises(ConfigError) as info, running_broker(settings):
            pass
        assert info.value.setting == "redis_url"
        assert "appendfsync" in info.value.message
        unsafe = broker_settings(
            tmp_path / "data", redis_url=redis_server.url, redis_allow_unsafe=True
        )
        with running_broker(unsafe) as broker:
            assert send(broker, DATA / "orm_o01_nw_latin1.hl7") == ["AA"]


def test_unreachable_redis_url_is_a_clear_start_up_error(tmp_path: Path) -> None:
    settings = broker_settings(
        tmp_path / "data", redis_url=f"unix://{tmp_path}/nothing.sock", redis_timeout=1
    )
    with pytest.raises(ConfigError) as info, running_broker(settings):
        pass
    assert info.value.setting == "redis_url"
    assert "cannot reach" in info.value.message


def test_a_redis_crash_under_load_loses_no_acknowledged_order(tmp_path: Path) -> None:
    """Redis is killed (SIGKILL) while 4 senders keep orders in flight, then restarted.

    Every message is answered (AA, or AR while Redis is away), none hangs, and no
    order answered AA is missing afterwards: the senders resend what got AR, as a
    RIS does, and the worklist then holds every order exactly once.
    """
    template = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
    senders, per_sender = 4, 40

    def order(sender: int, n: int) -> bytes:  # control ID, order numbers, UIDs: all distinct
        return template.replace(b"1001", str(10_000 + sender * 1000 + n).encode())

    redis_server = EmbeddedRedis(tmp_path / "external")
    redis_server.start()
    try:
        settings = broker_settings(tmp_path / "data", redis_url=redis_server.url)
        with running_broker(settings) as broker:
            assert broker.endpoints is not None and broker.store is not None
            port, store = broker.endpoints.hl7_port, broker.store

            def send_all(sender: int) -> list[tuple[bytes, str]]:
                with MLLPClient("127.0.0.1", port, timeout=30) as client:
                    return [
                        (raw, summarize_ack(client.send(raw)).code)
                        for raw in (order(sender, n) for n in range(per_sender))
                    ]

            def crash_when_busy() -> None:
                probe = connect(redis_server.url)
                while int(probe.scard(store.keys.all_entries())) < 30:
                    time.sleep(0.005)  # waiting for the load to be under way
                probe.close()
                process = redis_server._process
                assert process is not None
                process.kill()
                process.wait()
                if process.stderr is not None:
                    process.stderr.close()
                time.sleep(0.3)
                redis_server.start()

            with ThreadPoolExecutor(senders + 1) as pool:
                crash = pool.submit(crash_when_busy)
                answered = [
                    a
                    for f in [pool.submit(send_all, s) for s in range(senders)]
                    for a in f.result()
                ]
                crash.result()
            assert {code for _, code in answered} <= {"AA", "AR"}
            refused = [raw for raw, code in answered if code != "AA"]
            with MLLPClient("127.0.0.1", port, timeout=30) as client:
                for raw in refused:  # the sender's retry
                    assert summarize_ack(client.send(raw)).code == "AA"
            assert store.count() == senders * per_sender
    finally:
        redis_server.stop()
